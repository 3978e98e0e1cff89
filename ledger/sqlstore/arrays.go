package sqlstore

// Array forms of the batch statements (Dialect.Arrays): each takes one
// array per column and unnests it, so that a batch's accounts, entries or
// ticket sessions are one statement of one fixed text whatever their
// number, instead of a statement per power-of-two piece. On a database
// across a network, each statement is a round trip; one text per
// statement is also one cached statement description per connection.
//
// NULL travels as a sentinel that NULLIF turns back: 0 for an account ID
// (IDs start at 1), "" for a key or hash, noMicros for a time.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"byoc/ledger"
)

// noMicros stands for a NULL time in an array.
const noMicros = math.MinInt64

func microsOrNone(t time.Time) int64 {
	if t.IsZero() {
		return noMicros
	}
	return t.UnixMicro()
}

// arrays returns "CAST(? AS T[]), …" for the given element types.
func arrays(types ...string) string {
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = "CAST(? AS " + t + "[])"
	}
	return strings.Join(parts, ", ")
}

// lockAccountsArraySQL reads (and, with lock, locks in ref order) the
// accounts named by the array and the pools of the jobs among them. The
// pools' refs are an array computed once before any row is locked (an
// InitPlan), not a join: PostgreSQL's re-check of a row that changed while
// the statement waited for its lock evaluates the condition against that
// same array, so no row is dropped. A job's pool never changes, so reading
// it unlocked is safe.
func lockAccountsArraySQL(lock string) string {
	return memo("lockAccountsArraySQL", lock, 0, func(int) string {
		return `SELECT ` + accountCols + ` FROM accounts
		WHERE ref = ANY(CAST(? AS TEXT[]) || ARRAY(SELECT pool_ref FROM accounts
			WHERE ref = ANY(CAST(? AS TEXT[])) AND pool_ref <> ''))
		ORDER BY ref` + lock
	})
}

func (t *tx) loadAccountsArray(ctx context.Context, names []string) ([]ledger.Account, error) {
	return t.accounts(ctx, lockAccountsArraySQL(t.lock), names, names)
}

// insertAccountsArraySQL inserts the accounts of its arrays and returns
// their IDs and refs.
func insertAccountsArraySQL(amount string) string {
	return memo("insertAccountsArraySQL", amount, 0, func(int) string {
		return `INSERT INTO accounts (ref, kind, sender, name, customer, pool_ref, pool_id, state,
		balance, credited, charged, moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
		SELECT ref, kind, sender, name, customer, pool_ref, NULLIF(pool_id, 0), state,
			CAST(balance AS ` + amount + `), CAST(credited AS ` + amount + `), CAST(charged AS ` + amount + `),
			CAST(moved_in AS ` + amount + `), CAST(moved_out AS ` + amount + `), ttl_us, opened_at, updated_at,
			NULLIF(expires_at, ` + fmt.Sprint(int64(noMicros)) + `), NULLIF(closed_at, ` + fmt.Sprint(int64(noMicros)) + `)
		FROM unnest(` + arrays("TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT",
			"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT") + `)
		AS v (ref, kind, sender, name, customer, pool_ref, pool_id, state,
			balance, credited, charged, moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
		RETURNING id, ref`
	})
}

func (t *tx) insertAccountsArray(ctx context.Context, accts []*ledger.Account) error {
	rows, err := t.query(ctx, insertAccountsArraySQL(t.s.d.Types["AMOUNT"]), insertAccountsArgs(accts)...)
	if err != nil {
		return err
	}
	byRef := make(map[string]*ledger.Account, len(accts))
	for _, a := range accts {
		byRef[a.Ref.Encode()] = a
	}
	got := 0
	for rows.Next() {
		var id int64
		var r string
		if err := rows.Scan(&id, &r); err != nil {
			rows.Close()
			return err
		}
		if a := byRef[r]; a != nil {
			a.ID = id
			got++
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	return insertedAccounts(len(accts), got)
}

// insertAccountsArgs are insertAccountsArraySQL's arguments for accts; a
// PoolID that is not a real ID (not positive) goes as 0.
func insertAccountsArgs(accts []*ledger.Account) []any {
	n := len(accts)
	var (
		ref, kind, sender, name, customer, poolRef, state = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		bal, cred, chg, in, out                       = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		poolID, ttl, opened, updated, expires, closed = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i, a := range accts {
		ref[i], kind[i], sender[i], name[i], customer[i] = a.Ref.Encode(), string(a.Ref.Kind), a.Ref.Sender, a.Ref.Name, a.Ref.Customer
		if a.Ref.Kind == ledger.KindJob {
			poolRef[i], poolID[i] = a.PoolRef.Encode(), max(a.PoolID, 0)
		}
		state[i] = string(a.State)
		bal[i], cred[i], chg[i], in[i], out[i] = a.Balance.String(), a.Credited.String(), a.Charged.String(), a.MovedIn.String(), a.MovedOut.String()
		ttl[i], opened[i], updated[i] = a.TTL.Microseconds(), a.OpenedAt.UnixMicro(), a.UpdatedAt.UnixMicro()
		expires[i], closed[i] = microsOrNone(a.ExpiresAt), microsOrNone(a.ClosedAt)
	}
	return []any{ref, kind, sender, name, customer, poolRef, poolID, state, bal, cred, chg, in, out, ttl, opened, updated, expires, closed}
}

func updateAccountsArraySQL(amount string) string {
	return memo("updateAccountsArraySQL", amount, 0, func(int) string {
		return `UPDATE accounts SET state = v.state,
			balance = CAST(v.balance AS ` + amount + `), credited = CAST(v.credited AS ` + amount + `),
			charged = CAST(v.charged AS ` + amount + `), moved_in = CAST(v.moved_in AS ` + amount + `),
			moved_out = CAST(v.moved_out AS ` + amount + `), ttl_us = v.ttl_us, updated_at = v.updated_at,
			expires_at = NULLIF(v.expires_at, ` + fmt.Sprint(int64(noMicros)) + `),
			closed_at = NULLIF(v.closed_at, ` + fmt.Sprint(int64(noMicros)) + `)
		FROM unnest(` + arrays("BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT") + `)
		AS v (id, state, balance, credited, charged, moved_in, moved_out, ttl_us, updated_at, expires_at, closed_at)
		WHERE accounts.id = v.id`
	})
}

func (t *tx) updateAccountsArray(ctx context.Context, accts []*ledger.Account) error {
	res, err := t.exec(ctx, updateAccountsArraySQL(t.s.d.Types["AMOUNT"]), updateAccountsArgs(accts)...)
	if err != nil {
		return err
	}
	if got, err := res.RowsAffected(); err == nil {
		return updatedAccounts(len(accts), got)
	}
	return nil
}

// updateAccountsArgs are updateAccountsArraySQL's arguments for accts.
func updateAccountsArgs(accts []*ledger.Account) []any {
	n := len(accts)
	var (
		id, ttl, updated, expires, closed = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		state, bal, cred, chg, in, out    = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i, a := range accts {
		id[i], state[i] = a.ID, string(a.State)
		bal[i], cred[i], chg[i], in[i], out[i] = a.Balance.String(), a.Credited.String(), a.Charged.String(), a.MovedIn.String(), a.MovedOut.String()
		ttl[i], updated[i], expires[i], closed[i] = a.TTL.Microseconds(), a.UpdatedAt.UnixMicro(), microsOrNone(a.ExpiresAt), microsOrNone(a.ClosedAt)
	}
	return []any{id, state, bal, cred, chg, in, out, ttl, updated, expires, closed}
}

// insertEntriesArraySQL inserts the entries of its arrays.
func insertEntriesArraySQL(amount string) string {
	return memo("insertEntriesArraySQL", amount, 0, func(int) string {
		return `INSERT INTO entries (at, kind, from_id, to_id, amount, idem_key, input_hash, balance_after)
		SELECT at, kind, NULLIF(from_id, 0), NULLIF(to_id, 0), CAST(amount AS ` + amount + `),
			NULLIF(idem_key, ''), NULLIF(input_hash, ''), CAST(balance_after AS ` + amount + `)
		FROM unnest(` + arrays("BIGINT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT") + `)
		AS v (at, kind, from_id, to_id, amount, idem_key, input_hash, balance_after)
		ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING`
	})
}

func (t *tx) insertEntriesArray(ctx context.Context, entries []*ledger.Entry) error {
	return insertedAll(t.exec(ctx, insertEntriesArraySQL(t.s.d.Types["AMOUNT"]), insertEntriesArgs(entries)...))(len(entries))
}

// insertEntriesArgs are insertEntriesArraySQL's arguments for entries; an
// account ID that is not a real one (not positive) goes as 0.
func insertEntriesArgs(entries []*ledger.Entry) []any {
	n := len(entries)
	var (
		at, from, to                      = make([]int64, n), make([]int64, n), make([]int64, n)
		kind, amount, key, hash, balAfter = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i, e := range entries {
		at[i], kind[i], from[i], to[i], amount[i] = e.At.UnixMicro(), string(e.Kind), max(e.From, 0), max(e.To, 0), e.Amount.String()
		key[i], hash[i], balAfter[i] = e.Key, e.InputHash, e.BalanceAfter.String()
	}
	return []any{at, kind, from, to, amount, key, hash, balAfter}
}

var entriesByKeyArraySQL = `SELECT ` + entryCols + ` FROM entries WHERE idem_key = ANY(CAST(? AS TEXT[]))`

// nonceStateArraySQL is nonceStateSQL on arrays; nonce -1 (no nonce is
// negative) asks only for the session.
var nonceStateArraySQL = `SELECT v.session, s.nonces, s.expiry, t.nonce
	FROM unnest(` + arrays("TEXT", "BIGINT") + `) AS v (session, nonce)
	JOIN ticket_sessions s ON s.session = v.session
	LEFT JOIN ticket_nonces t ON t.session = s.session AND t.nonce = v.nonce`

func nonceArrays(queries []ledger.NonceQuery) (sessions []string, nonces []int64) {
	for _, q := range queries {
		if len(q.Nonces) == 0 {
			sessions, nonces = append(sessions, q.Session), append(nonces, -1)
		}
		for _, v := range q.Nonces {
			sessions, nonces = append(sessions, q.Session), append(nonces, int64(v))
		}
	}
	return sessions, nonces
}

// recordNoncesArraySQL creates sessions, adds to the counts of others
// (each only if it still holds the count read before; the statement
// returns how many did) and inserts the nonces, in one statement; only
// the parts that have rows (an empty unnest still costs the executor).
func recordNoncesArraySQL(create, update, nonces bool) string {
	variant := fmt.Sprint(create, update, nonces)
	return memo("recordNoncesArraySQL", variant, 0, func(int) string {
		count := `SELECT 0`
		if update {
			count = `SELECT count(*) FROM updated`
		}
		return `WITH ` + strings.Join(nonceParts(create, update, nonces), ",\n\t") + "\n\t" + count
	})
}

// nonceParts are recordNoncesArraySQL's common table expressions: created,
// updated (returning a row per session updated) and added.
func nonceParts(create, update, nonces bool) []string {
	var parts []string
	if create {
		parts = append(parts, `created AS (
		INSERT INTO ticket_sessions (session, expiry, nonces)
		SELECT * FROM unnest(`+arrays("TEXT", "BIGINT", "BIGINT")+`))`)
	}
	if update {
		parts = append(parts, `updated AS (
		UPDATE ticket_sessions SET nonces = ticket_sessions.nonces + v.added,
			expiry = GREATEST(ticket_sessions.expiry, v.expiry)
		FROM unnest(`+arrays("TEXT", "BIGINT", "BIGINT", "BIGINT")+`) AS v (session, added, expiry, count)
		WHERE ticket_sessions.session = v.session AND ticket_sessions.nonces = v.count
		RETURNING 1)`)
	}
	if nonces {
		parts = append(parts, `added AS (
		INSERT INTO ticket_nonces (session, nonce)
		SELECT * FROM unnest(`+arrays("TEXT", "BIGINT")+`))`)
	}
	return parts
}

// nonceWrite is what recordNoncesArraySQL writes: which of its parts have
// rows, their arguments in order, and how many sessions are to be
// updated; all holds every part's arrays, empty or not (splitNonces), as
// byoc_write_rows takes them.
type nonceWrite struct {
	create, update, nonces bool
	args, all              []any
	updates                int
}

func nonceArgs(sessions []ledger.SessionNonces) nonceWrite {
	c := splitNonces(sessions)
	w := nonceWrite{create: len(c[0].([]string)) > 0, update: len(c[3].([]string)) > 0, nonces: len(c[7].([]string)) > 0,
		updates: len(c[3].([]string)), all: c}
	if w.create {
		w.args = append(w.args, c[0:3]...)
	}
	if w.update {
		w.args = append(w.args, c[3:7]...)
	}
	if w.nonces {
		w.args = append(w.args, c[7:9]...)
	}
	return w
}

// splitNonces returns the arrays of the sessions to create (name, expiry,
// count), of those to update (name, added, expiry, count read before)
// and of the nonces (session, nonce), none nil.
func splitNonces(sessions []ledger.SessionNonces) []any {
	var (
		newName, updName, nonceName                            = []string{}, []string{}, []string{}
		newExpiry, newCount, added, updExpiry, updCount, nonce = []int64{}, []int64{}, []int64{}, []int64{}, []int64{}, []int64{}
	)
	for _, s := range sessions {
		if s.Count == 0 {
			newName, newExpiry, newCount = append(newName, s.Session), append(newExpiry, s.Expiry), append(newCount, int64(len(s.Nonces)))
		} else {
			updName, added = append(updName, s.Session), append(added, int64(len(s.Nonces)))
			updExpiry, updCount = append(updExpiry, s.Expiry), append(updCount, int64(s.Count))
		}
		for _, v := range s.Nonces {
			nonceName, nonce = append(nonceName, s.Session), append(nonce, int64(v))
		}
	}
	return []any{newName, newExpiry, newCount, updName, added, updExpiry, updCount, nonceName, nonce}
}

// check turns the count of sessions updated into errStale if another
// writer changed one meanwhile.
func (w nonceWrite) check(got int64) error {
	if got != int64(w.updates) {
		return fmt.Errorf("%w: %d of %d ticket sessions changed meanwhile", errStale, int64(w.updates)-got, w.updates)
	}
	return nil
}

func (t *tx) recordNoncesArray(ctx context.Context, sessions []ledger.SessionNonces) error {
	w := nonceArgs(sessions)
	if len(w.args) == 0 {
		return nil
	}
	rows, err := t.query(ctx, recordNoncesArraySQL(w.create, w.update, w.nonces), w.args...)
	if err != nil {
		return err
	}
	var got int64
	if rows.Next() {
		err = rows.Scan(&got)
	}
	if err := errors.Join(err, rows.Err(), rows.Close()); err != nil {
		return err
	}
	return w.check(got)
}

// arrayTx is a tx of a store with array statements: it writes a batch's
// rows in one statement (ledger.RowWriter).
type arrayTx struct{ *tx }

var _ ledger.RowWriter = arrayTx{}

// WriteRows implements ledger.RowWriter in one statement.
func (t arrayTx) WriteRows(ctx context.Context, created, accts []*ledger.Account, entries []*ledger.Entry, sessions []ledger.SessionNonces) error {
	refOf := make(map[int64]string, len(created)) // temporary ID → ref
	byRef := make(map[string]*ledger.Account, len(created))
	for _, a := range created {
		r := a.Ref.Encode()
		refOf[a.ID], byRef[r] = r, a
	}
	nonces := nonceArgs(sessions)
	if len(created) == 0 && len(accts) == 0 && len(entries) == 0 && len(nonces.args) == 0 {
		return nil
	}
	var rows rows
	var err error
	args := writeRowsFuncArgs(created, accts, entries, refOf, nonces.all)
	if t.pipe != nil && t.pipe.final && ledger.WriteIsFinal(ctx) {
		// The function checks the counts below itself (batchError), so
		// the commit can go with it.
		rows, err = t.pipe.query(ctx, t.s.rebind(writeRowsFuncSQL), args, true)
	} else {
		rows, err = t.query(ctx, writeRowsFuncSQL, args...)
	}
	if err != nil {
		return t.s.batchError(err)
	}
	realID := make(map[int64]int64, len(created)) // temporary ID → real
	counts := map[string]int64{}
	for rows.Next() {
		var n int64
		var r string
		if err := rows.Scan(&n, &r); err != nil {
			rows.Close()
			return err
		}
		if a := byRef[r]; a != nil {
			realID[a.ID], a.ID = n, n
		} else {
			counts[r] = n
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return t.s.batchError(err)
	}
	// The errors InsertAccounts, UpdateAccounts, InsertEntries and
	// RecordNonces would return, in that order.
	for _, err := range []error{insertedAccounts(len(created), len(realID)), updatedAccounts(len(accts), counts["#accounts"]),
		insertedEntries(len(entries), counts["#entries"]), nonces.check(counts["#sessions"])} {
		if err != nil {
			return err
		}
	}
	for _, a := range created {
		if a.PoolID < 0 { // a job whose pool is new in the batch
			a.PoolID = realID[a.PoolID]
		}
	}
	for _, e := range entries {
		if e.From < 0 {
			e.From = realID[e.From]
		}
		if e.To < 0 {
			e.To = realID[e.To]
		}
	}
	return nil
}

var _ ledger.Prefetcher = arrayTx{}

// Prefetch implements ledger.Prefetcher in one statement.
func (t arrayTx) Prefetch(ctx context.Context, refs []ledger.Ref, queries []ledger.NonceQuery) ([]ledger.Account, map[string]ledger.SessionState, error) {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Encode()
	}
	sessions, nonces := nonceArrays(queries)
	rows, err := t.query(ctx, prefetchFuncSQL, names, sessions, nonces)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var accts []ledger.Account
	states := map[string]ledger.SessionState{}
	for rows.Next() {
		var (
			r             accountRow
			session       sql.NullString
			count, expiry sql.NullInt64
			nonce         sql.NullInt64
		)
		if err := rows.Scan(append(r.dest(), &session, &count, &expiry, &nonce)...); err != nil {
			return nil, nil, err
		}
		if r.id.Valid {
			a, err := r.account()
			if err != nil {
				return nil, nil, err
			}
			accts = append(accts, a)
			continue
		}
		addNonceRow(states, session.String, count.Int64, expiry.Int64, nonce)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return accts, states, nil
}

// prefetchFuncSQL calls the function byoc_prefetch (migration 10): the
// accounts named and their jobs' pools, locked in ref order, then the
// ticket sessions' states asked for.
const prefetchFuncSQL = `SELECT * FROM byoc_prefetch(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS BIGINT[]))`

// writeRowsFuncSQL calls the function byoc_write_rows (migration 10),
// which takes every part's arrays, empty for a part without rows: the
// accounts created and updated, the entries, the ticket sessions' nonces.
// It returns a row (id, ref) per account inserted, then the counts of
// accounts updated, entries inserted and ticket sessions updated, as rows
// (count, "#accounts" / "#entries" / "#sessions": not a ref, which always
// holds a unit separator).
var writeRowsFuncSQL = `SELECT * FROM byoc_write_rows(` + arrays(
	"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT",
	"BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", // created accounts
	"BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", // updated accounts
	"BIGINT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", // entries
	"TEXT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT") + `)` // sessions, nonces

// writeRowsFuncArgs are writeRowsFuncSQL's arguments; refOf names the
// new accounts by temporary ID, nonces are the sessions' arrays
// (splitNonces).
func writeRowsFuncArgs(created, accts []*ledger.Account, entries []*ledger.Entry, refOf map[int64]string, nonces []any) []any {
	args := make([]any, 0, 48)
	args = append(args, insertAccountsArgs(created)...)
	args = append(args, updateAccountsArgs(accts)...)
	args = append(args, insertEntriesArgs(entries)...)
	args = append(args, entryRefs(entries, refOf)...)
	return append(args, nonces...)
}

// entryRefs are the arrays of the refs of entries' new accounts (from,
// to), "" for an account that is not new.
func entryRefs(entries []*ledger.Entry, refOf map[int64]string) []any {
	fromRef, toRef := make([]string, len(entries)), make([]string, len(entries))
	for i, e := range entries {
		fromRef[i], toRef[i] = refOf[min(e.From, 0)], refOf[min(e.To, 0)]
	}
	return []any{fromRef, toRef}
}

// batchError is err of byoc_write_rows as the error the check of the
// count it raised for returns (Dialect.ErrorCode): BY001 for entries
// whose key was taken, BY002 for accounts not updated, BY003 for ticket
// sessions changed meanwhile.
func (s *Store) batchError(err error) error {
	if s.d.ErrorCode == nil {
		return err
	}
	switch s.d.ErrorCode(err) {
	case "BY001":
		return fmt.Errorf("%w: %v", ledger.ErrKeyTaken, err)
	case "BY002":
		return fmt.Errorf("sqlstore: %v", err)
	case "BY003":
		return fmt.Errorf("%w: %v", errStale, err)
	}
	return err
}
