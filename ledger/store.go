package ledger

import (
	"context"
	"errors"
	"time"
)

// Store keeps the ledger durably. Implementations (ledger/sqlite,
// ledger/postgres) are dumb on purpose: they load and save rows; every rule
// lives in this package. All of them pass the conformance suite in
// ledger/ledgertest.
type Store interface {
	// Update runs fn in one read-write transaction and commits it when fn
	// returns nil; it rolls back when fn returns an error or panics. When the
	// store reports a transient conflict (serialization failure, deadlock,
	// busy database, unique violation from a concurrent writer), or fn
	// returns an error wrapping ErrConflict, Update rolls back and runs fn
	// again, a bounded number of times, so fn must have no effects outside
	// tx.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction that sees one consistent snapshot.
	View(ctx context.Context, fn func(ReadTx) error) error
	// Writers is how many Update transactions this store runs well at once
	// (1 for an embedded single-writer database).
	Writers() int
	// Close releases the store's connections.
	Close() error
}

// ReadTx reads the ledger. Times come back in UTC with microsecond precision.
type ReadTx interface {
	// LoadAccounts returns those of refs that exist and the pools of the
	// jobs among them, in any order. Inside an Update it locks all of them
	// until the transaction ends, in ref order (so that concurrent writers
	// cannot deadlock on them), where the store has row locks.
	LoadAccounts(ctx context.Context, refs []Ref) ([]Account, error)
	// EntriesByKey returns the entries carrying any of these idempotency keys.
	EntriesByKey(ctx context.Context, keys []string) ([]Entry, error)
	// Entries returns an account's entries, oldest first, at most limit
	// (0 = all), starting after entry ID after.
	Entries(ctx context.Context, accountID int64, after int64, limit int) ([]Entry, error)
	// ListAccounts returns accounts matching f, ordered by ID, at most f.Limit.
	ListAccounts(ctx context.Context, f AccountFilter) ([]Account, error)
	// ExpiredJobs returns refs of open jobs with ExpiresAt ≤ now, at most limit.
	ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]Ref, error)
	// NextExpiry returns the earliest ExpiresAt of an open job, and false
	// when no job is open.
	NextExpiry(ctx context.Context) (time.Time, bool, error)
	// ScanEntries calls fn for every entry in ID order (used by Verify).
	ScanEntries(ctx context.Context, fn func(Entry) error) error
	// ScanAccounts calls fn for every account in ID order (used by Verify).
	ScanAccounts(ctx context.Context, fn func(Account) error) error
	// NonceState returns, for each session that exists among the queries,
	// how many nonces it holds, its expiry and which of the queried nonces
	// are recorded in it. A session that does not exist is absent from the
	// map.
	NonceState(ctx context.Context, queries []NonceQuery) (map[string]SessionState, error)
	// Winners returns winning tickets in the given state ("" = all), oldest
	// first, at most limit (0 = all).
	Winners(ctx context.Context, state string, limit int) ([]Winner, error)
	// Winner returns one winning ticket by key, nil when there is none.
	Winner(ctx context.Context, key string) (*Winner, error)
	// Checkpoint returns what archives moved out of the live tables.
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// PendingOutbox returns undelivered outbox events with an ID above
	// after, of topics (all when none), by ID, at most limit.
	PendingOutbox(ctx context.Context, after int64, limit int, topics ...string) ([]OutboxEvent, error)
}

// Tx reads and writes the ledger inside Update.
type Tx interface {
	ReadTx
	// InsertAccounts inserts new accounts and sets their IDs. A ref that
	// already exists is ErrConflict (a concurrent writer created it; Update
	// retries). PoolID of a job must already be a real ID.
	InsertAccounts(ctx context.Context, accts []*Account) error
	// UpdateAccounts saves balance, counters, state and times by ID.
	UpdateAccounts(ctx context.Context, accts []*Account) error
	// InsertEntries appends entries. An entry whose key is already taken is
	// not inserted, and InsertEntries returns ErrKeyTaken: the caller then
	// abandons the transaction.
	InsertEntries(ctx context.Context, entries []*Entry) error
	// RecordNonces adds nonces to ticket sessions, each of which held Count
	// nonces when this transaction read it (0: it did not exist), creating
	// a session if needed and raising its expiry to at least Expiry. A
	// session or nonce changed or recorded meanwhile by another writer is
	// ErrConflict.
	RecordNonces(ctx context.Context, sessions []SessionNonces) error
	// InsertWinners queues winning tickets; a ticket already queued (by
	// key) is left as it is.
	InsertWinners(ctx context.Context, winners []*WinnerRow) error
	// UpdateWinner applies u to winning ticket key if it is in state from,
	// stamping it with now, and reports whether it did.
	UpdateWinner(ctx context.Context, key, from string, u WinnerUpdate, now time.Time) (bool, error)
	// ForgetSessions deletes sessions with expiry ≤ expiry and their nonces.
	ForgetSessions(ctx context.Context, expiry int64) (int, error)
	// ArchivableJobs returns, ordered by ID, at most limit closed or
	// expired jobs closed before before that no winning ticket names.
	ArchivableJobs(ctx context.Context, before time.Time, limit int) ([]Account, error)
	// EntriesOf returns every entry from or to any of the accounts, by ID.
	EntriesOf(ctx context.Context, accountIDs []int64) ([]Entry, error)
	// Archive deletes the batch's entries and jobs, adds its carried flows
	// and records it. Rows another writer deleted meanwhile are
	// ErrConflict.
	Archive(ctx context.Context, b ArchiveBatch) error
	// InsertOutbox appends outbox events (their IDs are not read back). A
	// key already taken is ErrKeyTaken.
	InsertOutbox(ctx context.Context, events []*OutboxEvent) error
	// MarkDelivered sets the delivery time of the outbox events with these
	// IDs that have none yet.
	MarkDelivered(ctx context.Context, ids []int64, at time.Time) error
}

// RowWriter is a Tx that writes a batch's rows in one call (for a
// database across a network: one round trip instead of four). WriteRows
// does what InsertAccounts (of the new pools, then of the new jobs),
// UpdateAccounts, InsertEntries and RecordNonces would do one after the
// other, each given rows, and returns the first of their errors. The new
// accounts come with temporary IDs (negative), which the PoolID of a new
// job and the From and To of entries may name; WriteRows gives the new
// accounts their IDs and replaces the temporary ones where they are named.
type RowWriter interface {
	WriteRows(ctx context.Context, created, changed []*Account, entries []*Entry, sessions []SessionNonces) error
}

// Prefetcher is a Tx that reads what a batch needs in one call (for a
// database across a network: one round trip instead of two): Prefetch
// returns what LoadAccounts(refs) and NonceState(queries) would, and locks
// the same rows in the same order.
type Prefetcher interface {
	Prefetch(ctx context.Context, refs []Ref, queries []NonceQuery) ([]Account, map[string]SessionState, error)
}

// NonceQuery asks which of Nonces a ticket session holds.
type NonceQuery struct {
	Session string
	Nonces  []uint32
}

// SessionState is a stored ticket session as NonceState reads it.
type SessionState struct {
	Count    int
	Expiry   int64
	Recorded []uint32 // of the nonces asked about
}

// SessionNonces are nonces to add to a ticket session (RecordNonces).
type SessionNonces struct {
	Session string
	Expiry  int64
	Count   int   // nonces held when read; 0 for a new session
	Read    int64 // expiry when read (Expiry is no raise unless above)
	Nonces  []uint32
}

// AccountFilter selects accounts for ListAccounts. Zero fields match all.
type AccountFilter struct {
	Kind   Kind
	State  State
	Sender string
	// PoolID lists the jobs of one pool.
	PoolID int64
	// AfterID pages: only accounts with a larger ID.
	AfterID int64
	// IDs, when not empty, selects only these accounts.
	IDs   []int64
	Limit int
	// Newest lists the newest accounts first (largest ID), so a Limit
	// keeps the most recent ones: the console's recent jobs.
	Newest bool
}

// ErrConflict is what a store returns for a transient conflict with a
// concurrent writer; Update retries on it and returns it only when the
// retries are used up.
var ErrConflict = errors.New("ledger store: conflict with a concurrent transaction")

// ErrKeyTaken is what InsertEntries returns when an entry's idempotency key
// is already taken.
var ErrKeyTaken = errors.New("ledger store: idempotency key already taken")
