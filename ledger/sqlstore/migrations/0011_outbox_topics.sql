-- A sink reads the undelivered events of its own topics (PendingOutbox
-- with topics): a signer's alert sink found its few alerts by going over
-- every pending usage event, millions while the usage sink is down.
CREATE INDEX outbox_pending_topic ON outbox (topic, id) WHERE delivered_at IS NULL;
