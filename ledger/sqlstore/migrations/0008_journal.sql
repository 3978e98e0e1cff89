-- The embedded journal store (ledger/journal) keeps these tables as a
-- projection of its journal: the last journal record applied here, written
-- in the same transaction as the record's rows, so that a record is
-- projected exactly once.
CREATE TABLE journal_state (
    id         BIGINT PRIMARY KEY,
    projected  BIGINT NOT NULL
);
INSERT INTO journal_state (id, projected) VALUES (1, 0);
