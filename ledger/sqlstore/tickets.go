package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"byoc/ledger"
)

// errStale is returned when a row changed since this transaction read it;
// Update retries the transaction.
var errStale = errors.New("sqlstore: row changed since it was read")

const insertWinnerSQL = `INSERT INTO winners (ticket_key, account_id, sender, session,
	face_value, redeem_after, payload, queued_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (ticket_key) DO NOTHING`

// nonceStateSQL reads n (session, nonce) pairs: a row for each pair whose
// session exists, with the nonce when the session holds it (a NULL nonce
// asks only for the session).
func nonceStateSQL(n int) string { return memo("nonceStateSQL", "", n, nonceStateSQLText) }

func nonceStateSQLText(n int) string {
	return `SELECT v.column1, s.nonces, s.expiry, t.nonce FROM (VALUES ` + placeholders(n, 2) + `) AS v
		JOIN ticket_sessions s ON s.session = v.column1
		LEFT JOIN ticket_nonces t ON t.session = s.session AND t.nonce = CAST(v.column2 AS BIGINT)`
}

func insertSessionsSQL(n int) string { return memo("insertSessionsSQL", "", n, insertSessionsSQLText) }

func insertSessionsSQLText(n int) string {
	return `INSERT INTO ticket_sessions (session, expiry, nonces) VALUES ` + placeholders(n, 3)
}

// updateSessionsSQL adds to n sessions' counts, each only if the session
// still holds the count read before.
func updateSessionsSQL(n int) string { return memo("updateSessionsSQL", "", n, updateSessionsSQLText) }

func updateSessionsSQLText(n int) string {
	return `WITH v (session, added, expiry, count) AS (VALUES ` + placeholders(n, 4) + `)
		UPDATE ticket_sessions SET nonces = ticket_sessions.nonces + CAST(v.added AS BIGINT),
			expiry = CASE WHEN ticket_sessions.expiry < CAST(v.expiry AS BIGINT) THEN CAST(v.expiry AS BIGINT)
				ELSE ticket_sessions.expiry END
		FROM v WHERE ticket_sessions.session = v.session AND ticket_sessions.nonces = CAST(v.count AS BIGINT)`
}

// updateSessionSQL is updateSessionsSQL for one session, and
// addNoncesSQL for one whose expiry does not rise (which leaves its
// expiry index alone).
const (
	updateSessionSQL = `UPDATE ticket_sessions SET nonces = nonces + ?,
	expiry = CASE WHEN expiry < ? THEN ? ELSE expiry END WHERE session = ? AND nonces = ?`
	addNoncesSQL = `UPDATE ticket_sessions SET nonces = nonces + ? WHERE session = ? AND nonces = ?`
)

func insertNoncesSQL(n int) string { return memo("insertNoncesSQL", "", n, insertNoncesSQLText) }

func insertNoncesSQLText(n int) string {
	return `INSERT INTO ticket_nonces (session, nonce) VALUES ` + placeholders(n, 2)
}

func (t *tx) NonceState(ctx context.Context, queries []ledger.NonceQuery) (map[string]ledger.SessionState, error) {
	var pairs []any
	for _, q := range queries {
		if len(q.Nonces) == 0 {
			pairs = append(pairs, q.Session, nil)
		}
		for _, v := range q.Nonces {
			pairs = append(pairs, q.Session, strconv.FormatUint(uint64(v), 10))
		}
	}
	out := map[string]ledger.SessionState{}
	type piece struct {
		q    string
		args []any
	}
	var ps []piece
	if t.s.d.Arrays && len(pairs) > 0 {
		sessions, nonces := nonceArrays(queries)
		ps = []piece{{nonceStateArraySQL, []any{sessions, nonces}}}
	} else {
		for start, n := range pieces(len(pairs) / 2) {
			ps = append(ps, piece{nonceStateSQL(n), pairs[2*start : 2*(start+n)]})
		}
	}
	for _, p := range ps {
		rows, err := t.query(ctx, p.q, p.args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				session       string
				count, expiry int64
				nonce         sql.NullInt64
			)
			if err := rows.Scan(&session, &count, &expiry, &nonce); err != nil {
				rows.Close()
				return nil, err
			}
			addNonceRow(out, session, count, expiry, nonce)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// addNonceRow takes a row of a nonce-state query into out: a session's
// count and expiry, and one of the asked nonces it holds (if valid).
func addNonceRow(out map[string]ledger.SessionState, session string, count, expiry int64, nonce sql.NullInt64) {
	st := out[session]
	st.Count, st.Expiry = int(count), expiry
	if nonce.Valid {
		st.Recorded = append(st.Recorded, uint32(nonce.Int64))
	}
	out[session] = st
}

func (t *tx) RecordNonces(ctx context.Context, sessions []ledger.SessionNonces) error {
	if t.s.d.Arrays && len(sessions) > 0 {
		return t.recordNoncesArray(ctx, sessions)
	}
	var create, update, nonces []any
	var updates []ledger.SessionNonces
	for _, s := range sessions {
		if s.Count == 0 {
			create = append(create, s.Session, s.Expiry, len(s.Nonces))
		} else {
			updates = append(updates, s)
		}
		for _, v := range s.Nonces {
			nonces = append(nonces, s.Session, int64(v))
		}
	}
	if len(updates) <= t.s.d.RowStatements {
		for _, s := range updates {
			var res sql.Result
			var err error
			if s.Expiry > s.Read {
				res, err = t.exec(ctx, updateSessionSQL, len(s.Nonces), s.Expiry, s.Expiry, s.Session, s.Count)
			} else {
				res, err = t.exec(ctx, addNoncesSQL, len(s.Nonces), s.Session, s.Count)
			}
			if err != nil {
				return err
			}
			if got, err := res.RowsAffected(); err != nil || got != 1 {
				return fmt.Errorf("%w: ticket session %s", errStale, s.Session)
			}
		}
		updates = nil
	}
	for _, s := range updates {
		update = append(update, s.Session, strconv.Itoa(len(s.Nonces)), strconv.FormatInt(s.Expiry, 10), strconv.Itoa(s.Count))
	}
	// New sessions; a concurrent writer creating one too makes this a
	// unique violation, which Update retries.
	for start, n := range pieces(len(create) / 3) {
		if _, err := t.exec(ctx, insertSessionsSQL(n), create[3*start:3*(start+n)]...); err != nil {
			return err
		}
	}
	for start, n := range pieces(len(update) / 4) {
		res, err := t.exec(ctx, updateSessionsSQL(n), update[4*start:4*(start+n)]...)
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil || got != int64(n) {
			return fmt.Errorf("%w: %d of %d ticket sessions changed meanwhile", errStale, int64(n)-got, n)
		}
	}
	for start, n := range pieces(len(nonces) / 2) {
		if _, err := t.exec(ctx, insertNoncesSQL(n), nonces[2*start:2*(start+n)]...); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) InsertWinners(ctx context.Context, winners []*ledger.WinnerRow) error {
	for _, w := range winners {
		if _, err := t.exec(ctx, insertWinnerSQL, w.Key, w.AccountID, w.Sender, w.Session, w.FaceValue.String(), w.RedeemAfter, w.Payload,
			w.QueuedAt.UnixMicro(), w.State); err != nil {
			return err
		}
	}
	return nil
}

const winnerColumns = `w.ticket_key, w.sender, w.session, CAST(w.face_value AS TEXT), w.redeem_after, w.payload, w.queued_at,
	w.state, a.ref, w.tx_hash, w.tx_nonce, w.tx_raw, CAST(w.payout AS TEXT), w.last_error, w.attempts, w.updated_at
	FROM winners w JOIN accounts a ON a.id = w.account_id`

func (t *tx) Winners(ctx context.Context, state string, limit int) ([]ledger.Winner, error) {
	q := `SELECT ` + winnerColumns
	var args []any
	if state != "" {
		q += ` WHERE w.state = ?`
		args = append(args, state)
	}
	q += ` ORDER BY w.queued_at, w.ticket_key`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	return t.winners(ctx, q, args...)
}

func (t *tx) Winner(ctx context.Context, key string) (*ledger.Winner, error) {
	ws, err := t.winners(ctx, `SELECT `+winnerColumns+` WHERE w.ticket_key = ?`, key)
	if err != nil || len(ws) == 0 {
		return nil, err
	}
	return &ws[0], nil
}

func (t *tx) winners(ctx context.Context, q string, args ...any) ([]ledger.Winner, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Winner
	for rows.Next() {
		var (
			w               ledger.Winner
			fv, ref         string
			payout          sql.NullString
			queued, updated int64
		)
		if err := rows.Scan(&w.Key, &w.Sender, &w.Session, &fv, &w.RedeemAfter, &w.Payload, &queued, &w.State, &ref,
			&w.TxHash, &w.TxNonce, &w.TxRaw, &payout, &w.LastError, &w.Attempts, &updated); err != nil {
			return nil, err
		}
		if w.FaceValue, err = ledger.ParseAmount(fv); err != nil {
			return nil, err
		}
		if payout.Valid {
			p, err := ledger.ParseAmount(payout.String)
			if err != nil {
				return nil, err
			}
			w.Payout = &p
		}
		if w.Account, err = ledger.DecodeRef(ref); err != nil {
			return nil, err
		}
		w.QueuedAt = time.UnixMicro(queued).UTC()
		if updated != 0 {
			w.UpdatedAt = time.UnixMicro(updated).UTC()
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func (t *tx) UpdateWinner(ctx context.Context, key, from string, u ledger.WinnerUpdate, now time.Time) (bool, error) {
	var payout any
	if u.Payout != nil {
		payout = u.Payout.String()
	}
	attempt := 0
	if u.Attempt {
		attempt = 1
	}
	q := `UPDATE winners SET state = ?, payout = ?, last_error = ?, attempts = attempts + ?, updated_at = ?`
	args := []any{u.State, payout, u.LastError, attempt, now.UnixMicro()}
	if !u.KeepTx {
		q += `, tx_hash = ?, tx_nonce = ?, tx_raw = ?`
		args = append(args, u.TxHash, u.TxNonce, u.TxRaw)
	}
	q += ` WHERE ticket_key = ? AND state = ?`
	args = append(args, key, from)
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *tx) ForgetSessions(ctx context.Context, expiry int64) (int, error) {
	if _, err := t.exec(ctx, `DELETE FROM ticket_nonces WHERE session IN
		(SELECT session FROM ticket_sessions WHERE expiry <= ?)`, expiry); err != nil {
		return 0, err
	}
	res, err := t.exec(ctx, `DELETE FROM ticket_sessions WHERE expiry <= ?`, expiry)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
