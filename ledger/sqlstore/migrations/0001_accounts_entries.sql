-- Pools and jobs. The counters only grow; balance = credited - charged + moved_in - moved_out.
CREATE TABLE accounts (
    id          {{ID}},
    ref         TEXT NOT NULL UNIQUE,      -- kind \x1f sender \x1f name \x1f customer
    kind        TEXT NOT NULL,             -- pool | job
    sender      TEXT NOT NULL,
    name        TEXT NOT NULL,             -- capability (pool) or job id (job)
    customer    TEXT NOT NULL,
    pool_ref    TEXT NOT NULL,             -- jobs: their pool's ref; pools: ''
    pool_id     BIGINT REFERENCES accounts (id),
    state       TEXT NOT NULL,             -- open | closed | expired
    balance     {{AMOUNT}} NOT NULL,
    credited    {{AMOUNT}} NOT NULL,
    charged     {{AMOUNT}} NOT NULL,
    moved_in    {{AMOUNT}} NOT NULL,
    moved_out   {{AMOUNT}} NOT NULL,
    ttl_us      BIGINT NOT NULL,
    opened_at   BIGINT NOT NULL,           -- unix microseconds
    updated_at  BIGINT NOT NULL,
    expires_at  BIGINT,                    -- open jobs only
    closed_at   BIGINT
);
CREATE INDEX accounts_expiry ON accounts (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX accounts_sender ON accounts (sender, kind);
CREATE INDEX accounts_pool ON accounts (pool_id) WHERE pool_id IS NOT NULL;

-- Every movement of money. from_id / to_id NULL = outside (credit / charge).
CREATE TABLE entries (
    id            {{ID}},
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    from_id       BIGINT REFERENCES accounts (id),
    to_id         BIGINT REFERENCES accounts (id),
    amount        {{AMOUNT}} NOT NULL,
    idem_key      TEXT UNIQUE,             -- at most one entry per idempotency key
    input_hash    TEXT,
    balance_after {{AMOUNT}} NOT NULL
);
CREATE INDEX entries_from ON entries (from_id) WHERE from_id IS NOT NULL;
CREATE INDEX entries_to ON entries (to_id) WHERE to_id IS NOT NULL;
