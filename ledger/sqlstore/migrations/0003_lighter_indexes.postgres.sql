-- accounts_pool is used by no query; the idempotency key's index holds only
-- entries that have a key.
DROP INDEX accounts_pool;
CREATE UNIQUE INDEX entries_key ON entries (idem_key) WHERE idem_key IS NOT NULL;
ALTER TABLE entries DROP CONSTRAINT entries_idem_key_key;
