-- Retention: byoc ledger archive moves final jobs and their entries out of
-- the live tables. Each archive batch leaves a row here: what it moved and
-- the archived jobs' counters summed, so that conservation still adds up.
CREATE TABLE archives (
    id         {{ID}},
    before_at  BIGINT NOT NULL,            -- jobs closed before this (unix microseconds)
    at         BIGINT NOT NULL,            -- when the batch ran
    jobs       BIGINT NOT NULL,
    entries    BIGINT NOT NULL,
    credited   {{AMOUNT}} NOT NULL,        -- Σ of the archived jobs' counters
    charged    {{AMOUNT}} NOT NULL,
    moved_in   {{AMOUNT}} NOT NULL,
    moved_out  {{AMOUNT}} NOT NULL,
    file       TEXT NOT NULL               -- where the archived rows were written
);

-- Per live account (a pool), the flows of its archived entries: carried
-- forward so that its counters still equal carried + live entries.
CREATE TABLE archive_carry (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id),
    credited   {{AMOUNT}} NOT NULL,
    charged    {{AMOUNT}} NOT NULL,
    moved_in   {{AMOUNT}} NOT NULL,
    moved_out  {{AMOUNT}} NOT NULL
);

-- Archive keeps the jobs a winning ticket names; this finds them.
CREATE INDEX winners_account ON winners (account_id);

-- Deleting an archived job checks the foreign key accounts.pool_id, which
-- without an index is a scan of all accounts per job (hours for a million
-- jobs). Migration 3 dropped this index as used by no query; archive uses
-- it. A job insert writes one more index entry.
CREATE INDEX accounts_pool ON accounts (pool_id) WHERE pool_id IS NOT NULL;
