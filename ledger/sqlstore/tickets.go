package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"byoc/ledger"
)

// errStale is returned when a row changed since this transaction read it;
// Update retries the transaction.
var errStale = errors.New("sqlstore: row changed since it was read")

func (t *tx) NonceState(ctx context.Context, session string, nonces []uint32) ([]uint32, int, int64, error) {
	var count, expiry int64
	err := t.q.QueryRowContext(ctx, t.s.rebind(`SELECT nonces, expiry FROM ticket_sessions WHERE session = ?`), session).Scan(&count, &expiry)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	var recorded []uint32
	for start, n := range pieces(len(nonces)) {
		args := []any{session}
		for _, v := range nonces[start : start+n] {
			args = append(args, int64(v))
		}
		rows, err := t.query(ctx, `SELECT nonce FROM ticket_nonces WHERE session = ? AND nonce IN (`+placeholders(n, 1)+`)`, args...)
		if err != nil {
			return nil, 0, 0, err
		}
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, 0, 0, err
			}
			recorded = append(recorded, uint32(v))
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, 0, 0, err
		}
	}
	return recorded, int(count), expiry, nil
}

func (t *tx) RecordNonces(ctx context.Context, session string, expiry int64, count int, nonces []uint32) error {
	if count == 0 {
		// A new session; a concurrent writer creating it too makes this a
		// unique violation, which Update retries.
		if _, err := t.q.ExecContext(ctx, t.s.rebind(`INSERT INTO ticket_sessions (session, expiry, nonces) VALUES (?, ?, ?)`),
			session, expiry, len(nonces)); err != nil {
			return err
		}
	} else {
		res, err := t.q.ExecContext(ctx, t.s.rebind(`UPDATE ticket_sessions SET nonces = nonces + ?,
			expiry = CASE WHEN expiry < ? THEN ? ELSE expiry END WHERE session = ? AND nonces = ?`),
			len(nonces), expiry, expiry, session, count)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("%w: ticket session %s", errStale, session)
		}
	}
	for start, n := range pieces(len(nonces)) {
		args := make([]any, 0, 2*n)
		for _, v := range nonces[start : start+n] {
			args = append(args, session, int64(v))
		}
		if _, err := t.exec(ctx, `INSERT INTO ticket_nonces (session, nonce) VALUES `+placeholders(n, 2), args...); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) InsertWinners(ctx context.Context, winners []*ledger.WinnerRow) error {
	for _, w := range winners {
		if _, err := t.q.ExecContext(ctx, t.s.rebind(`INSERT INTO winners (ticket_key, account_id, sender, session,
			face_value, redeem_after, payload, queued_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (ticket_key) DO NOTHING`),
			w.Key, w.AccountID, w.Sender, w.Session, w.FaceValue.String(), w.RedeemAfter, w.Payload,
			w.QueuedAt.UnixMicro(), w.State); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) Winners(ctx context.Context, state string, limit int) ([]ledger.Winner, error) {
	q := `SELECT w.ticket_key, w.sender, w.session, CAST(w.face_value AS TEXT), w.redeem_after, w.payload, w.queued_at,
		w.state, a.ref FROM winners w JOIN accounts a ON a.id = w.account_id`
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
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Winner
	for rows.Next() {
		var (
			w       ledger.Winner
			fv, ref string
			queued  int64
		)
		if err := rows.Scan(&w.Key, &w.Sender, &w.Session, &fv, &w.RedeemAfter, &w.Payload, &queued, &w.State, &ref); err != nil {
			return nil, err
		}
		if w.FaceValue, err = ledger.ParseAmount(fv); err != nil {
			return nil, err
		}
		if w.Account, err = ledger.DecodeRef(ref); err != nil {
			return nil, err
		}
		w.QueuedAt = time.UnixMicro(queued).UTC()
		out = append(out, w)
	}
	return out, rows.Err()
}

func (t *tx) ForgetSessions(ctx context.Context, expiry int64) (int, error) {
	if _, err := t.q.ExecContext(ctx, t.s.rebind(`DELETE FROM ticket_nonces WHERE session IN
		(SELECT session FROM ticket_sessions WHERE expiry <= ?)`), expiry); err != nil {
		return 0, err
	}
	res, err := t.q.ExecContext(ctx, t.s.rebind(`DELETE FROM ticket_sessions WHERE expiry <= ?`), expiry)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
