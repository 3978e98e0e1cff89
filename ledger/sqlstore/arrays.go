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
	n := len(accts)
	var (
		ref, kind, sender, name, customer, poolRef, state = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		bal, cred, chg, in, out                       = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		poolID, ttl, opened, updated, expires, closed = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	)
	byRef := make(map[string]*ledger.Account, n)
	for i, a := range accts {
		ref[i], kind[i], sender[i], name[i], customer[i] = a.Ref.Encode(), string(a.Ref.Kind), a.Ref.Sender, a.Ref.Name, a.Ref.Customer
		if a.Ref.Kind == ledger.KindJob {
			poolRef[i], poolID[i] = a.PoolRef.Encode(), a.PoolID
		}
		state[i] = string(a.State)
		bal[i], cred[i], chg[i], in[i], out[i] = a.Balance.String(), a.Credited.String(), a.Charged.String(), a.MovedIn.String(), a.MovedOut.String()
		ttl[i], opened[i], updated[i] = a.TTL.Microseconds(), a.OpenedAt.UnixMicro(), a.UpdatedAt.UnixMicro()
		expires[i], closed[i] = microsOrNone(a.ExpiresAt), microsOrNone(a.ClosedAt)
		byRef[ref[i]] = a
	}
	rows, err := t.query(ctx, insertAccountsArraySQL(t.s.d.Types["AMOUNT"]), ref, kind, sender, name, customer, poolRef, poolID, state,
		bal, cred, chg, in, out, ttl, opened, updated, expires, closed)
	if err != nil {
		return err
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
	if got != n {
		return fmt.Errorf("sqlstore: inserted %d accounts, got %d ids", n, got)
	}
	return nil
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
	res, err := t.exec(ctx, updateAccountsArraySQL(t.s.d.Types["AMOUNT"]), id, state, bal, cred, chg, in, out, ttl, updated, expires, closed)
	if err != nil {
		return err
	}
	if got, err := res.RowsAffected(); err == nil && got != int64(n) {
		return fmt.Errorf("sqlstore: updated %d of %d accounts", got, n)
	}
	return nil
}

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
	n := len(entries)
	var (
		at, from, to                      = make([]int64, n), make([]int64, n), make([]int64, n)
		kind, amount, key, hash, balAfter = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i, e := range entries {
		at[i], kind[i], from[i], to[i], amount[i] = e.At.UnixMicro(), string(e.Kind), e.From, e.To, e.Amount.String()
		key[i], hash[i], balAfter[i] = e.Key, e.InputHash, e.BalanceAfter.String()
	}
	return insertedAll(t.exec(ctx, insertEntriesArraySQL(t.s.d.Types["AMOUNT"]), at, kind, from, to, amount, key, hash, balAfter))(n)
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
		count := `SELECT 0`
		if update {
			count = `SELECT count(*) FROM updated`
		}
		return `WITH ` + strings.Join(parts, ",\n\t") + "\n\t" + count
	})
}

func (t *tx) recordNoncesArray(ctx context.Context, sessions []ledger.SessionNonces) error {
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
	var args []any
	if len(newName) > 0 {
		args = append(args, newName, newExpiry, newCount)
	}
	if len(updName) > 0 {
		args = append(args, updName, added, updExpiry, updCount)
	}
	if len(nonceName) > 0 {
		args = append(args, nonceName, nonce)
	}
	if len(args) == 0 {
		return nil
	}
	rows, err := t.query(ctx, recordNoncesArraySQL(len(newName) > 0, len(updName) > 0, len(nonceName) > 0), args...)
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
	if got != int64(len(updName)) {
		return fmt.Errorf("%w: %d of %d ticket sessions changed meanwhile", errStale, int64(len(updName))-got, len(updName))
	}
	return nil
}
