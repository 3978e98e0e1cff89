-- Messages written in the same transaction as the money move they report
-- (a signer's usage events), delivered at least once afterwards. event_key
-- is the receiver's de-duplication key.
CREATE TABLE outbox (
    id           {{ID}},
    event_key    TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    subject      TEXT NOT NULL,
    at           BIGINT NOT NULL,
    body         {{BLOB}} NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
