package sqlstore

// Accounts: pools and jobs, their statement texts, reads, inserts and
// updates.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"byoc/ledger"
)

const accountCols = `id, ref, pool_ref, pool_id, state, CAST(balance AS TEXT), CAST(credited AS TEXT), CAST(charged AS TEXT),
	CAST(moved_in AS TEXT), CAST(moved_out AS TEXT), ttl_us, opened_at, updated_at, expires_at, closed_at`

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

func (t *tx) accountArgs(a *ledger.Account) []any { return t.appendAccountArgs(make([]any, 0, 18), a) }

// appendAccountArgs appends the 18 values of insertAccountSQL's row for a.
func (t *tx) appendAccountArgs(args []any, a *ledger.Account) []any {
	poolRef := ""
	var poolID any
	if a.Ref.Kind == ledger.KindJob {
		poolRef, poolID = a.PoolRef.Encode(), a.PoolID
	}
	return append(args, a.Ref.Encode(), string(a.Ref.Kind), a.Ref.Sender, a.Ref.Name, a.Ref.Customer,
		poolRef, poolID, string(a.State), t.amount(a.Balance), t.amount(a.Credited), t.amount(a.Charged),
		t.amount(a.MovedIn), t.amount(a.MovedOut), a.TTL.Microseconds(), a.OpenedAt.UnixMicro(),
		a.UpdatedAt.UnixMicro(), micros(a.ExpiresAt), micros(a.ClosedAt))
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

func (t *tx) LoadAccounts(ctx context.Context, refs []ledger.Ref) ([]ledger.Account, error) {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Encode()
	}
	if t.s.d.Arrays {
		return t.loadAccountsArray(ctx, names)
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

func (t *tx) InsertAccounts(ctx context.Context, accts []*ledger.Account) error {
	if len(accts) > 0 && accts[0].ID > 0 {
		// IDs assigned by the journal store, whose projection this is.
		return t.insertWithIDs(ctx, accts)
	}
	if t.s.d.Arrays && len(accts) > 0 {
		return t.insertAccountsArray(ctx, accts)
	}
	if len(accts) <= t.s.d.RowStatements {
		for _, a := range accts {
			res, err := t.exec(ctx, insertAccountSQL(1), t.accountArgs(a)...)
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
			args = t.appendAccountArgs(args, a)
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
		if err := insertedAccounts(len(part), n); err != nil {
			return err
		}
	}
	return nil
}

// insertedAccounts checks that an insert of n accounts returned an ID for
// each (got).
func insertedAccounts(n, got int) error {
	if got != n {
		return fmt.Errorf("sqlstore: inserted %d accounts, got %d ids", n, got)
	}
	return nil
}

// updatedAccounts checks that an update of n accounts updated them all.
func updatedAccounts(n int, got int64) error {
	if got != int64(n) {
		return fmt.Errorf("sqlstore: updated %d of %d accounts", got, n)
	}
	return nil
}

const updateAccountSQL = `UPDATE accounts SET state = ?, balance = ?, credited = ?, charged = ?, moved_in = ?,
	moved_out = ?, ttl_us = ?, updated_at = ?, expires_at = ?, closed_at = ? WHERE id = ?`

func (t *tx) UpdateAccounts(ctx context.Context, accts []*ledger.Account) error {
	if t.s.d.Arrays && len(accts) > 0 {
		return t.updateAccountsArray(ctx, accts)
	}
	if len(accts) <= t.s.d.RowStatements {
		for _, a := range accts {
			res, err := t.exec(ctx, updateAccountSQL, string(a.State), t.amount(a.Balance), t.amount(a.Credited),
				t.amount(a.Charged), t.amount(a.MovedIn), t.amount(a.MovedOut), a.TTL.Microseconds(),
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
			args = append(args, strconv.FormatInt(a.ID, 10), string(a.State), amountText(a.Balance), amountText(a.Credited),
				amountText(a.Charged), amountText(a.MovedIn), amountText(a.MovedOut), strconv.FormatInt(a.TTL.Microseconds(), 10),
				strconv.FormatInt(a.UpdatedAt.UnixMicro(), 10), microsText(a.ExpiresAt), microsText(a.ClosedAt))
		}
		res, err := t.exec(ctx, updateAccountsSQL(n, t.s.d.Types["AMOUNT"]), args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil {
			if err := updatedAccounts(len(part), n); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tx) ListAccounts(ctx context.Context, f ledger.AccountFilter) ([]ledger.Account, error) {
	q := `SELECT ` + accountCols + ` FROM accounts WHERE id > ?`
	args := []any{f.AfterID}
	if f.Kind != "" {
		q, args = whereEnum(q, args, "kind", string(f.Kind))
	}
	if f.State != "" {
		q, args = whereEnum(q, args, "state", string(f.State))
	}
	if f.Sender != "" {
		q += ` AND sender = ?`
		args = append(args, f.Sender)
	}
	if f.PoolID != 0 {
		q += ` AND pool_id = ?`
		args = append(args, f.PoolID)
	}
	if len(f.IDs) > 0 {
		q += ` AND id IN (` + placeholders(len(f.IDs), 1) + `)`
		args = append(args, idArgs(f.IDs)...)
	}
	q += ` ORDER BY id`
	if f.Newest {
		q += ` DESC`
	}
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return t.accounts(ctx, q, args...)
}

// enumLiterals are the kinds and states, which ListAccounts writes into
// its SQL as literals, so that the partial indexes on them
// (accounts_pools, accounts_open_jobs: migration 9) serve its lists:
// PostgreSQL's generic plan of a prepared statement cannot match a bound
// parameter to an index's condition.
var enumLiterals = map[string]bool{
	string(ledger.KindPool): true, string(ledger.KindJob): true,
	string(ledger.StateOpen): true, string(ledger.StateClosed): true, string(ledger.StateExpired): true,
}

// whereEnum adds `AND col = v` to q: v as a literal when it is a known
// kind or state (no quoting needed), else as a parameter.
func whereEnum(q string, args []any, col, v string) (string, []any) {
	if enumLiterals[v] {
		return q + ` AND ` + col + ` = '` + v + `'`, args
	}
	return q + ` AND ` + col + ` = ?`, append(args, v)
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

func (t *tx) ScanAccounts(ctx context.Context, fn func(ledger.Account) error) error {
	return t.scanAccounts(ctx, fn, "")
}

// scanAccounts calls fn for each account that where (a WHERE clause, or
// "" for all) selects, by ID.
func (t *tx) scanAccounts(ctx context.Context, fn func(ledger.Account) error, where string, args ...any) error {
	rows, err := t.query(ctx, `SELECT `+accountCols+` FROM accounts `+where+` ORDER BY id`, args...)
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
