-- Winning tickets' redemption on chain (docs/chain.md): the transaction
-- signed for a ticket, written before it is broadcast (hash, nonce and raw
-- bytes, to broadcast it again after a crash), what the redemption paid
-- (WinningTicketTransfer), why it waits or died, and how many transactions
-- were sent. States: queued, submitted, redeemed, dead.
ALTER TABLE winners ADD COLUMN tx_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE winners ADD COLUMN tx_nonce BIGINT NOT NULL DEFAULT -1;
ALTER TABLE winners ADD COLUMN tx_raw {{BLOB}};
ALTER TABLE winners ADD COLUMN payout {{AMOUNT}};
ALTER TABLE winners ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE winners ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE winners ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE winners SET state = 'dead' WHERE state = 'failed';
-- The redeemer reads each sender's queue.
CREATE INDEX winners_sender ON winners (sender, state, queued_at);
