-- Ticket sessions (a PM recipientRandHash) and the nonces seen in each, so a
-- replayed ticket is refused also after a restart. Forgotten after expiry.
CREATE TABLE ticket_sessions (
    session  TEXT PRIMARY KEY,
    expiry   BIGINT NOT NULL,              -- PM: the params' expiration block
    nonces   BIGINT NOT NULL               -- how many rows ticket_nonces holds for it
);
CREATE INDEX ticket_sessions_expiry ON ticket_sessions (expiry);

CREATE TABLE ticket_nonces (
    session  TEXT NOT NULL,
    nonce    BIGINT NOT NULL,
    PRIMARY KEY (session, nonce)
);

-- Winning tickets waiting for redemption; one row per ticket hash.
CREATE TABLE winners (
    ticket_key   TEXT PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    sender       TEXT NOT NULL,
    session      TEXT NOT NULL,
    face_value   {{AMOUNT}} NOT NULL,
    redeem_after BIGINT NOT NULL,
    payload      {{BLOB}} NOT NULL,
    queued_at    BIGINT NOT NULL,
    state        TEXT NOT NULL             -- queued | redeemed | failed
);
CREATE INDEX winners_state ON winners (state, queued_at);
