// Package sqlstore implements ledger.Store on database/sql for every SQL
// database byoc supports. The schema and the queries are written once; a
// Dialect supplies the few differences (column types, placeholders, row
// locks, error classification). ledger/sqlite and ledger/postgres open
// connections and pick the dialect; no driver is imported here.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"byoc/ledger"
)

//go:embed migrations/*.sql
var migrations embed.FS

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

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if s.d.MigrationLock != "" {
		if _, err := conn.ExecContext(ctx, s.d.MigrationLock); err != nil {
			return err
		}
		defer conn.ExecContext(context.Background(), s.d.MigrationUnlock)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	files, err := migrationFiles(s.d.Name)
	if err != nil {
		return err
	}
	for _, f := range files {
		version := f.version
		var n int
		if err := conn.QueryRowContext(ctx, s.rebind(`SELECT count(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile("migrations/" + f.name)
		if err != nil {
			return err
		}
		text := string(body)
		for k, v := range s.d.Types {
			text = strings.ReplaceAll(text, "{{"+k+"}}", v)
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, stmt := range splitStatements(text) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %s: %w", f.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			version, f.name, time.Now().UnixMicro()); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// splitStatements splits a migration on semicolons that end a line, after
// dropping -- comments.
func splitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if s := strings.TrimSpace(cur.String()); s != ";" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

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
	if err := fn(&tx{s: s, db: s.write, q: sqlTx, lock: s.d.LockClause}); err != nil {
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
	lock string
}

const accountCols = `id, ref, pool_ref, pool_id, state, CAST(balance AS TEXT), CAST(credited AS TEXT), CAST(charged AS TEXT),
	CAST(moved_in AS TEXT), CAST(moved_out AS TEXT), ttl_us, opened_at, updated_at, expires_at, closed_at`

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

// loadAccountsSQL reads n accounts, each with its pool when it is a job,
// in one statement (for stores without row locks): a row per account found,
// its columns then its pool's (NULL for a pool).
func loadAccountsSQL(n int) string { return memo("loadAccountsSQL", "", n, loadAccountsSQLText) }

func loadAccountsSQLText(n int) string {
	return `SELECT ` + prefixed("a.", accountCols) + `, ` + prefixed("p.", accountCols) + `
		FROM (VALUES ` + placeholders(n, 1) + `) AS v
		JOIN accounts a ON a.ref = v.column1
		LEFT JOIN accounts p ON p.ref = a.pool_ref`
}

// prefixed qualifies the column list cols with a table alias.
func prefixed(alias, cols string) string {
	var out []string
	for c := range strings.SplitSeq(cols, ",") {
		c = strings.TrimSpace(c)
		if strings.HasPrefix(c, "CAST(") {
			c = "CAST(" + alias + strings.TrimPrefix(c, "CAST(")
		} else {
			c = alias + c
		}
		out = append(out, c)
	}
	return strings.Join(out, ", ")
}

// lockAccountsSQL reads and locks n accounts in ref order.
func lockAccountsSQL(n int, lock string) string {
	return memo("lockAccountsSQL", lock, n, func(n int) string { return lockAccountsText(n, lock) })
}

func lockAccountsText(n int, lock string) string {
	return `SELECT ` + accountCols + ` FROM accounts WHERE ref IN (` + placeholders(n, 1) + `) ORDER BY ref` + lock
}

func poolRefsSQL(n int) string { return memo("poolRefsSQL", "", n, poolRefsSQLText) }

func poolRefsSQLText(n int) string {
	return `SELECT pool_ref FROM accounts WHERE ref IN (` + placeholders(n, 1) + `) AND pool_ref <> ''`
}

func entriesByKeySQL(n int) string { return memo("entriesByKeySQL", "", n, entriesByKeySQLText) }

func entriesByKeySQLText(n int) string {
	return `SELECT ` + entryCols + ` FROM entries WHERE idem_key IN (` + placeholders(n, 1) + `)`
}

func insertAccountsSQL(n int) string { return memo("insertAccountsSQL", "", n, insertAccountsSQLText) }

func insertAccountsSQLText(n int) string {
	return insertAccountSQL(n) + ` RETURNING id, ref`
}

// insertAccountSQL inserts n accounts without returning their IDs (for one
// row: LastInsertId).
func insertAccountSQL(n int) string { return memo("insertAccountSQL", "", n, insertAccountSQLText) }

func insertAccountSQLText(n int) string {
	return `INSERT INTO accounts (ref, kind, sender, name, customer, pool_ref, pool_id, state,
		balance, credited, charged, moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
		VALUES ` + placeholders(n, 18)
}

func accountArgs(a *ledger.Account) []any {
	poolRef := ""
	var poolID any
	if a.Ref.Kind == ledger.KindJob {
		poolRef, poolID = a.PoolRef.Encode(), a.PoolID
	}
	return []any{a.Ref.Encode(), string(a.Ref.Kind), a.Ref.Sender, a.Ref.Name, a.Ref.Customer,
		poolRef, poolID, string(a.State), a.Balance.String(), a.Credited.String(), a.Charged.String(),
		a.MovedIn.String(), a.MovedOut.String(), a.TTL.Microseconds(), a.OpenedAt.UnixMicro(),
		a.UpdatedAt.UnixMicro(), micros(a.ExpiresAt), micros(a.ClosedAt)}
}

func updateAccountsSQL(n int, amount string) string {
	return memo("updateAccountsSQL", amount, n, func(n int) string { return updateAccountsText(n, amount) })
}

func updateAccountsText(n int, amount string) string {
	return `WITH v (id, state, balance, credited, charged, moved_in, moved_out, ttl_us, updated_at, expires_at, closed_at)
		AS (VALUES ` + placeholders(n, 11) + `)
		UPDATE accounts SET state = v.state,
			balance = CAST(v.balance AS ` + amount + `), credited = CAST(v.credited AS ` + amount + `),
			charged = CAST(v.charged AS ` + amount + `), moved_in = CAST(v.moved_in AS ` + amount + `),
			moved_out = CAST(v.moved_out AS ` + amount + `), ttl_us = CAST(v.ttl_us AS BIGINT),
			updated_at = CAST(v.updated_at AS BIGINT), expires_at = CAST(v.expires_at AS BIGINT),
			closed_at = CAST(v.closed_at AS BIGINT)
		FROM v WHERE accounts.id = CAST(v.id AS BIGINT)`
}

// insertEntriesSQL inserts n entries, skipping those whose key is taken.
func insertEntriesSQL(n int) string { return memo("insertEntriesSQL", "", n, insertEntriesSQLText) }

func insertEntriesSQLText(n int) string {
	return `INSERT INTO entries (at, kind, from_id, to_id, amount, idem_key, input_hash, balance_after)
		VALUES ` + placeholders(n, 8) + ` ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING`
}

func (t *tx) LoadAccounts(ctx context.Context, refs []ledger.Ref) ([]ledger.Account, error) {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Encode()
	}
	if t.lock != "" {
		// With row locks, the pools are resolved first and then every row
		// is locked by one plain IN list in ref order: PostgreSQL's
		// re-check of a locked row that changed meanwhile can drop rows
		// matched through a subquery. A job's pool never changes, so
		// reading it unlocked is safe.
		pools, err := t.poolRefs(ctx, names)
		if err != nil {
			return nil, err
		}
		names = append(names, pools...)
		sort.Strings(names)
		names = slices.Compact(names)
	}
	var out []ledger.Account
	for start, n := range pieces(len(names)) {
		args := make([]any, n)
		for i, r := range names[start : start+n] {
			args[i] = r
		}
		var got []ledger.Account
		var err error
		if t.lock != "" {
			got, err = t.accounts(ctx, lockAccountsSQL(n, t.lock), args...)
		} else {
			got, err = t.accountsWithPools(ctx, loadAccountsSQL(n), args...)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// accountsWithPools reads rows of loadAccountsSQL: each account, and its
// pool once.
func (t *tx) accountsWithPools(ctx context.Context, q string, args ...any) ([]ledger.Account, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Account
	seen := map[int64]bool{}
	var a, p accountRow
	dest := append(a.dest(), p.dest()...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		for _, r := range []*accountRow{&a, &p} {
			if !r.id.Valid || seen[r.id.Int64] {
				continue
			}
			seen[r.id.Int64] = true
			acct, err := r.account()
			if err != nil {
				return nil, err
			}
			out = append(out, acct)
		}
	}
	return out, rows.Err()
}

// poolRefs returns the pool refs of the jobs among names.
func (t *tx) poolRefs(ctx context.Context, names []string) ([]string, error) {
	var out []string
	for start, n := range pieces(len(names)) {
		args := make([]any, n)
		for i, r := range names[start : start+n] {
			args[i] = r
		}
		rows, err := t.query(ctx, poolRefsSQL(n), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, p)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *tx) accounts(ctx context.Context, q string, args ...any) ([]ledger.Account, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func scanAccount(rows rows) (ledger.Account, error) {
	var r accountRow
	if err := rows.Scan(r.dest()...); err != nil {
		return ledger.Account{}, err
	}
	return r.account()
}

// accountRow receives the columns of accountCols; all may be NULL (the pool
// of a pool in loadAccountsSQL).
type accountRow struct {
	id, poolID, ttl, opened, updated, expires, closed sql.NullInt64
	ref, poolRef, state, bal, cred, chg, in, out      sql.NullString
}

func (r *accountRow) dest() []any {
	return []any{&r.id, &r.ref, &r.poolRef, &r.poolID, &r.state, &r.bal, &r.cred, &r.chg, &r.in, &r.out,
		&r.ttl, &r.opened, &r.updated, &r.expires, &r.closed}
}

func (r *accountRow) account() (ledger.Account, error) {
	a := ledger.Account{ID: r.id.Int64, PoolID: r.poolID.Int64, State: ledger.State(r.state.String)}
	var err error
	if a.Ref, err = ledger.DecodeRef(r.ref.String); err != nil {
		return a, err
	}
	if r.poolRef.String != "" {
		if a.PoolRef, err = ledger.DecodeRef(r.poolRef.String); err != nil {
			return a, err
		}
	}
	for _, p := range []struct {
		dst *ledger.Amount
		src string
	}{{&a.Balance, r.bal.String}, {&a.Credited, r.cred.String}, {&a.Charged, r.chg.String}, {&a.MovedIn, r.in.String}, {&a.MovedOut, r.out.String}} {
		if *p.dst, err = ledger.ParseAmount(p.src); err != nil {
			return a, fmt.Errorf("account %d: %w", a.ID, err)
		}
	}
	a.TTL = time.Duration(r.ttl.Int64) * time.Microsecond
	a.OpenedAt, a.UpdatedAt = fromMicros(r.opened.Int64), fromMicros(r.updated.Int64)
	if r.expires.Valid {
		a.ExpiresAt = fromMicros(r.expires.Int64)
	}
	if r.closed.Valid {
		a.ClosedAt = fromMicros(r.closed.Int64)
	}
	return a, nil
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// micros stores a time; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func (t *tx) InsertAccounts(ctx context.Context, accts []*ledger.Account) error {
	if len(accts) <= t.s.d.RowStatements {
		for _, a := range accts {
			res, err := t.exec(ctx, insertAccountSQL(1), accountArgs(a)...)
			if err != nil {
				return err
			}
			if a.ID, err = res.LastInsertId(); err != nil {
				return err
			}
		}
		return nil
	}
	for start, n := range pieces(len(accts)) {
		part := accts[start : start+n]
		args := make([]any, 0, len(part)*18)
		byRef := make(map[string]*ledger.Account, len(part))
		for _, a := range part {
			byRef[a.Ref.Encode()] = a
			args = append(args, accountArgs(a)...)
		}
		rows, err := t.query(ctx, insertAccountsSQL(n), args...)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			var id int64
			var ref string
			if err := rows.Scan(&id, &ref); err != nil {
				rows.Close()
				return err
			}
			if a := byRef[ref]; a != nil {
				a.ID = id
				n++
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if n != len(part) {
			return fmt.Errorf("sqlstore: inserted %d accounts, got %d ids", len(part), n)
		}
	}
	return nil
}

const updateAccountSQL = `UPDATE accounts SET state = ?, balance = ?, credited = ?, charged = ?, moved_in = ?,
	moved_out = ?, ttl_us = ?, updated_at = ?, expires_at = ?, closed_at = ? WHERE id = ?`

func (t *tx) UpdateAccounts(ctx context.Context, accts []*ledger.Account) error {
	if len(accts) <= t.s.d.RowStatements {
		for _, a := range accts {
			res, err := t.exec(ctx, updateAccountSQL, string(a.State), a.Balance.String(), a.Credited.String(),
				a.Charged.String(), a.MovedIn.String(), a.MovedOut.String(), a.TTL.Microseconds(),
				a.UpdatedAt.UnixMicro(), micros(a.ExpiresAt), micros(a.ClosedAt), a.ID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err == nil && n != 1 {
				return fmt.Errorf("sqlstore: account %d not updated", a.ID)
			}
		}
		return nil
	}
	for start, n := range pieces(len(accts)) {
		part := accts[start : start+n]
		args := make([]any, 0, len(part)*11)
		for _, a := range part {
			args = append(args, strconv.FormatInt(a.ID, 10), string(a.State), a.Balance.String(), a.Credited.String(),
				a.Charged.String(), a.MovedIn.String(), a.MovedOut.String(), strconv.FormatInt(a.TTL.Microseconds(), 10),
				strconv.FormatInt(a.UpdatedAt.UnixMicro(), 10), microsText(a.ExpiresAt), microsText(a.ClosedAt))
		}
		res, err := t.exec(ctx, updateAccountsSQL(n, t.s.d.Types["AMOUNT"]), args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n != int64(len(part)) {
			return fmt.Errorf("sqlstore: updated %d of %d accounts", n, len(part))
		}
	}
	return nil
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

func (t *tx) InsertEntries(ctx context.Context, entries []*ledger.Entry) error {
	for start, n := range pieces(len(entries)) {
		part := entries[start : start+n]
		args := make([]any, 0, len(part)*8)
		for _, e := range part {
			args = append(args, e.At.UnixMicro(), string(e.Kind), nullID(e.From), nullID(e.To), e.Amount.String(),
				nullString(e.Key), nullString(e.InputHash), e.BalanceAfter.String())
		}
		res, err := t.exec(ctx, insertEntriesSQL(n), args...)
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil {
			return err
		} else if got != int64(n) {
			return fmt.Errorf("%w: %d of %d entries", ledger.ErrKeyTaken, int64(n)-got, n)
		}
	}
	return nil
}

const entryCols = `id, at, kind, from_id, to_id, CAST(amount AS TEXT), idem_key, input_hash, CAST(balance_after AS TEXT)`

func scanEntry(rows rows) (ledger.Entry, error) {
	var (
		e          ledger.Entry
		at         int64
		kind       string
		from, to   sql.NullInt64
		amt, after string
		key, hash  sql.NullString
	)
	if err := rows.Scan(&e.ID, &at, &kind, &from, &to, &amt, &key, &hash, &after); err != nil {
		return e, err
	}
	var err error
	if e.Amount, err = ledger.ParseAmount(amt); err != nil {
		return e, fmt.Errorf("entry %d: %w", e.ID, err)
	}
	if e.BalanceAfter, err = ledger.ParseAmount(after); err != nil {
		return e, fmt.Errorf("entry %d: %w", e.ID, err)
	}
	e.At, e.Kind, e.From, e.To, e.Key, e.InputHash = fromMicros(at), ledger.EntryKind(kind), from.Int64, to.Int64, key.String, hash.String
	return e, nil
}

func (t *tx) entries(ctx context.Context, q string, args ...any) ([]ledger.Entry, error) {
	var out []ledger.Entry
	err := t.scanEntries(ctx, func(e ledger.Entry) error {
		out = append(out, e)
		return nil
	}, q, args...)
	return out, err
}

func (t *tx) scanEntries(ctx context.Context, fn func(ledger.Entry) error, q string, args ...any) error {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (t *tx) EntriesByKey(ctx context.Context, keys []string) ([]ledger.Entry, error) {
	var out []ledger.Entry
	for start, n := range pieces(len(keys)) {
		part := keys[start : start+n]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		got, err := t.entries(ctx, entriesByKeySQL(n), args...)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (t *tx) Entries(ctx context.Context, accountID, after int64, limit int) ([]ledger.Entry, error) {
	q := `SELECT ` + entryCols + ` FROM entries WHERE (from_id = ? OR to_id = ?) AND id > ? ORDER BY id`
	args := []any{accountID, accountID, after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	return t.entries(ctx, q, args...)
}

func (t *tx) ListAccounts(ctx context.Context, f ledger.AccountFilter) ([]ledger.Account, error) {
	q := `SELECT ` + accountCols + ` FROM accounts WHERE id > ?`
	args := []any{f.AfterID}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, string(f.Kind))
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.Sender != "" {
		q += ` AND sender = ?`
		args = append(args, f.Sender)
	}
	if f.PoolID != 0 {
		q += ` AND pool_id = ?`
		args = append(args, f.PoolID)
	}
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return t.accounts(ctx, q, args...)
}

func (t *tx) ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]ledger.Ref, error) {
	rows, err := t.query(ctx, `SELECT ref FROM accounts WHERE expires_at IS NOT NULL AND expires_at <= ? AND state = ?
		ORDER BY expires_at LIMIT ?`, now.UnixMicro(), string(ledger.StateOpen), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Ref
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		r, err := ledger.DecodeRef(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *tx) NextExpiry(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	rows, err := t.query(ctx, `SELECT min(expires_at) FROM accounts WHERE expires_at IS NOT NULL AND state = ?`, string(ledger.StateOpen))
	if err != nil {
		return time.Time{}, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return time.Time{}, false, errors.Join(rows.Err(), sql.ErrNoRows)
	}
	if err := rows.Scan(&next); err != nil {
		return time.Time{}, false, err
	}
	return fromMicros(next.Int64), next.Valid, nil
}

func (t *tx) ScanEntries(ctx context.Context, fn func(ledger.Entry) error) error {
	return t.scanEntries(ctx, fn, `SELECT `+entryCols+` FROM entries ORDER BY id`)
}

func (t *tx) ScanAccounts(ctx context.Context, fn func(ledger.Account) error) error {
	rows, err := t.query(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return rows.Err()
}
