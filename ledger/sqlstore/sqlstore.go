// Package sqlstore implements ledger.Store on database/sql for every SQL
// database byoc supports. The schema and the queries are written once; a
// Dialect supplies the few differences (column types, placeholders, row
// locks, error classification). ledger/sqlite and ledger/postgres open
// connections and pick the dialect; no driver is imported here.
//
// One file per aggregate: sqlstore.go the store, its transactions and
// statement cache; schema.go the migrations; accounts.go pools and jobs;
// entries.go the journal; tickets.go ticket sessions, nonces and winners;
// raw.go the driver-connection write path; arrays.go the batch
// statements on array parameters.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"byoc/ledger"
)

// Dialect is what differs between databases.
type Dialect struct {
	Name string
	// Types replaces {{NAME}} markers in the schema, e.g. {{AMOUNT}}.
	Types map[string]string
	// Numbered placeholders ($1, $2 …) instead of ?.
	Numbered bool
	// LockClause is appended to reads inside Update (" FOR UPDATE").
	LockClause string
	// MigrationLock / MigrationUnlock serialize migrations across processes.
	MigrationLock, MigrationUnlock string
	// HasTable counts the tables named by its one argument (0 or 1) in the
	// schema the store uses.
	HasTable string
	// IsConflict reports a transient error worth retrying the transaction
	// for: busy, serialization failure, deadlock, unique violation.
	IsConflict func(error) bool
	// ReadOptions are the options of View transactions.
	ReadOptions *sql.TxOptions
	// PrepareBatchStatements keeps the batch statements prepared on the
	// write handle. Right for a single write connection (SQLite); a driver
	// with its own per-connection statement cache (pgx) does better without,
	// since database/sql re-prepares a statement on every transaction that
	// lands on another connection.
	PrepareBatchStatements bool
	// PollContext checks the context before each statement and runs the
	// statement itself with a context that cannot be canceled. Right for
	// SQLite, whose driver otherwise starts a goroutine per statement to
	// interrupt it on cancellation, which costs more than a short
	// statement; a lock wait is bounded by busy_timeout instead.
	PollContext bool
	// RowStatements is how many accounts (or ticket sessions) at most
	// InsertAccounts and UpdateAccounts (RecordNonces) write with one plain
	// statement each rather than one statement for all: cheaper for a few rows in an embedded database,
	// where a statement costs no round trip. The driver must implement
	// LastInsertId.
	RowStatements int
	// RawWrites runs Update's transactions on the driver connection
	// directly (see raw.go). For a single write connection only.
	RawWrites bool
	// Arrays reads and writes a batch's rows with one statement of array
	// parameters each (see arrays.go) instead of a statement per piece of
	// rows: for a database a round trip away (PostgreSQL). The statements
	// call the functions byoc_prefetch and byoc_write_rows, which a
	// migration of the dialect creates, so that their plans are made once
	// per connection. The driver must take []string and []int64 arguments
	// as arrays.
	Arrays bool
	// DeferredSync, if set, is run first in an Update whose operations may
	// be acknowledged before they are durable (ledger.SyncDeferred), to
	// commit without waiting for the disk.
	DeferredSync string
	// IntegerAmounts binds an amount that fits in an int64 as an integer
	// rather than as its decimal text, for a database whose amount
	// columns store an integer as that same text (SQLite's TEXT
	// affinity): the driver need not copy a string per amount.
	IntegerAmounts bool
	// Pipeline, if set, gives the Pipe through which Update runs its
	// transactions on a driver connection of the write handle (see
	// pipe.go). With Arrays only.
	Pipeline func(driverConn any) (Pipe, error)
	// ErrorCode returns the SQLSTATE of a database error, "" for another.
	ErrorCode func(error) string
}

// Store is a ledger.Store on a SQL database.
type Store struct {
	write, read *sql.DB
	d           Dialect
	writers     int
	// Retries bounds how often Update runs fn again after a conflict.
	Retries int

	stmts struct {
		sync.Mutex
		byText map[stmtKey]*sql.Stmt
	}
	raw rawConn
}

var _ ledger.Store = (*Store)(nil)

// New wraps open database handles: write for Update, read for View (they
// may be the same). It applies pending migrations.
func New(ctx context.Context, write, read *sql.DB, d Dialect, writers int) (*Store, error) {
	s := &Store{write: write, read: read, d: d, writers: writers, Retries: 20}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("%s ledger: migrate: %w", d.Name, err)
	}
	if d.PrepareBatchStatements {
		if err := s.prepare(ctx); err != nil {
			return nil, fmt.Errorf("%s ledger: %w", d.Name, err)
		}
	}
	return s, nil
}

// Writers implements ledger.Store.
func (s *Store) Writers() int { return s.writers }

// Close implements ledger.Store.
func (s *Store) Close() error {
	s.closeRaw()
	s.stmts.Lock()
	for _, st := range s.stmts.byText {
		st.Close()
	}
	s.stmts.byText = nil
	s.stmts.Unlock()
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// DB returns the write handle (for tests and tools).
func (s *Store) DB() *sql.DB { return s.write }

// rebind turns ? placeholders into $n where the dialect numbers them.
func (s *Store) rebind(q string) string {
	if !s.d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$")
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Update implements ledger.Store: a managed read-write transaction, retried
// on conflicts with jittered backoff.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = s.updateOnce(ctx, fn)
		if err == nil || !s.retryable(err) || attempt >= s.Retries {
			break
		}
		backoff := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil && s.retryable(err) {
		return fmt.Errorf("%w: %v", ledger.ErrConflict, err)
	}
	return err
}

func (s *Store) retryable(err error) bool {
	return errors.Is(err, errStale) || errors.Is(err, ledger.ErrConflict) || s.d.IsConflict(err)
}

func (s *Store) updateOnce(ctx context.Context, fn func(ledger.Tx) error) (err error) {
	if s.d.RawWrites {
		return s.updateRaw(ctx, fn)
	}
	if s.d.Pipeline != nil {
		return s.updatePipe(ctx, fn)
	}
	bctx, err := s.stmtCtx(ctx)
	if err != nil {
		return err
	}
	sqlTx, err := s.write.BeginTx(bctx, nil)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			sqlTx.Rollback()
		}
	}()
	if s.d.DeferredSync != "" && ledger.SyncDeferred(ctx) {
		if _, err := sqlTx.ExecContext(bctx, s.d.DeferredSync); err != nil {
			return err
		}
	}
	base := &tx{s: s, db: s.write, q: sqlTx, lock: s.d.LockClause}
	var t ledger.Tx = base
	if s.d.Arrays {
		t = arrayTx{base}
	}
	if err := fn(t); err != nil {
		return err
	}
	committed = true
	return sqlTx.Commit()
}

// View implements ledger.Store.
func (s *Store) View(ctx context.Context, fn func(ledger.ReadTx) error) error {
	bctx, err := s.stmtCtx(ctx)
	if err != nil {
		return err
	}
	sqlTx, err := s.read.BeginTx(bctx, s.d.ReadOptions)
	if err != nil {
		return err
	}
	defer sqlTx.Rollback()
	return fn(&tx{s: s, db: s.read, q: sqlTx})
}

// tx implements ledger.Tx on a *sql.Tx, or on a driver connection (raw).
type tx struct {
	s    *Store
	db   *sql.DB // the handle q belongs to
	q    *sql.Tx
	raw  *rawTx
	pipe *pipeTx
	lock string
}

// chunk is the most rows that go into one statement.
const chunk = 256

// texts caches statement texts by builder, variant and row count: building
// one (placeholders, column lists) costs more than looking it up, and
// pieces keeps the row counts to a few.
var texts sync.Map

type textKey struct {
	builder, variant string
	n                int
}

func memo(builder, variant string, n int, build func(int) string) string {
	k := textKey{builder, variant, n}
	if q, ok := texts.Load(k); ok {
		return q.(string)
	}
	q := build(n)
	texts.Store(k, q)
	return q
}

func placeholders(n, width int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// prepare caches the statements that Update runs for every batch, one per
// power-of-two row count: re-parsing the same SQL for every batch costs more
// than running it. It runs before any transaction, because preparing inside
// one would wait for the connection the transaction holds.
//
// The read handle gets the small account lookups (balances, tokens); a
// statement prepared on a handle is prepared again, once, on each of its
// connections the first time a transaction there uses it.
func (s *Store) prepare(ctx context.Context) error {
	s.stmts.byText = map[stmtKey]*sql.Stmt{}
	add := func(db *sql.DB, q string) error {
		st, err := db.PrepareContext(ctx, s.rebind(q))
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.stmts.byText[stmtKey{db, q}] = st
		return nil
	}
	var write []string // raw writes prepare their statements on first use
	for n := 1; n <= chunk && !s.d.RawWrites; n *= 2 {
		write = append(write, loadAccountsSQL(n), entriesByKeySQL(n), insertAccountsSQL(n),
			updateAccountsSQL(n, s.d.Types["AMOUNT"]), insertEntriesSQL(n), nonceStateSQL(n), insertSessionsSQL(n),
			updateSessionsSQL(n), insertNoncesSQL(n))
	}
	if !s.d.RawWrites {
		write = append(write, insertAccountSQL(1), updateSessionSQL, addNoncesSQL, updateAccountSQL, insertWinnerSQL)
	}
	for _, q := range write {
		if err := add(s.write, q); err != nil {
			return err
		}
	}
	if s.read != s.write {
		for n := 1; n <= 4; n *= 2 {
			if err := add(s.read, loadAccountsSQL(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// stmtKey is a cached statement: its text (before rebind) on a handle.
type stmtKey struct {
	db *sql.DB
	q  string
}

// stmt returns the cached statement for q bound to the transaction, or nil
// when q is not one of the cached batch statements.
func (t *tx) stmt(ctx context.Context, q string) *sql.Stmt {
	t.s.stmts.Lock()
	st := t.s.stmts.byText[stmtKey{t.db, q}]
	t.s.stmts.Unlock()
	if st == nil {
		return nil
	}
	return t.q.StmtContext(ctx, st)
}

// stmtCtx is the context a statement runs with (see Dialect.PollContext).
func (s *Store) stmtCtx(ctx context.Context) (context.Context, error) {
	if !s.d.PollContext {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

func (t *tx) query(ctx context.Context, q string, args ...any) (rows, error) {
	ctx, err := t.s.stmtCtx(ctx)
	if err != nil {
		return nil, err
	}
	if t.raw != nil {
		return t.raw.query(ctx, q, args)
	}
	if t.pipe != nil {
		return t.pipe.query(ctx, t.s.rebind(q), args, false)
	}
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.q.QueryContext(ctx, t.s.rebind(q), args...)
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx, err := t.s.stmtCtx(ctx)
	if err != nil {
		return nil, err
	}
	if t.raw != nil {
		return t.raw.exec(ctx, q, args)
	}
	if t.pipe != nil {
		return t.pipe.exec(ctx, t.s.rebind(q), args)
	}
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.q.ExecContext(ctx, t.s.rebind(q), args...)
}

// pieces splits n rows into (start, size) pieces whose sizes are powers of
// two, at most chunk, so a few cached statement texts serve every batch size.
func pieces(n int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for start := 0; start < n; {
			k := chunk
			for k > n-start {
				k /= 2
			}
			if !yield(start, k) {
				return
			}
			start += k
		}
	}
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// micros stores a time; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// amountText is a.String(), without big.Int's conversion for the amounts
// that fit in an int64 (all of them, in practice: 2^63 wei is 9.2 ether).
func amountText(a ledger.Amount) string {
	if v, ok := a.Int64(); ok {
		return strconv.FormatInt(v, 10)
	}
	return a.String()
}

// amount is a's value for a statement (see Dialect.IntegerAmounts).
func (t *tx) amount(a ledger.Amount) any {
	if t.s.d.IntegerAmounts {
		if v, ok := a.Int64(); ok {
			return v
		}
	}
	return amountText(a)
}

func microsText(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
