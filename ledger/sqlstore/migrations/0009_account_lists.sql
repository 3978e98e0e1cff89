-- The lists of accounts the consoles, /admin/pools and `byoc ledger pools`
-- read (ListAccounts with a kind, and a state) found their few pools and
-- open holds by scanning every account: 0.3-0.4 s of CPU a read on a
-- ledger of a million jobs (docs/performance.md). Partial indexes hold
-- only those rows: the jobs' hot path pays nothing for pools, and for a
-- job one entry while it is open.
-- ListAccounts writes the kind and state into its SQL as literals:
-- PostgreSQL's generic plan of a prepared statement cannot match a bound
-- parameter to an index's condition (SQLite re-plans with the values).
CREATE INDEX accounts_pools ON accounts (id) WHERE kind = 'pool';
CREATE INDEX accounts_open_jobs ON accounts (id) WHERE kind = 'job' AND state = 'open';
