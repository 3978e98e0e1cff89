package sqlstore

// What the journal store (ledger/journal) needs beyond ledger.Store: the
// projection's position, the state it keeps in memory, and accounts
// inserted with the IDs it assigned.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"byoc/ledger"
)

// JournalState returns the sequence number of the last journal record
// projected into the tables and the largest account ID.
func (s *Store) JournalState(ctx context.Context) (projected uint64, maxAccountID int64, err error) {
	var p, m sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT projected FROM journal_state WHERE id = 1`).Scan(&p); err != nil {
		return 0, 0, fmt.Errorf("journal state: %w", err)
	}
	if err := s.read.QueryRowContext(ctx, `SELECT max(id) FROM accounts`).Scan(&m); err != nil {
		return 0, 0, err
	}
	return uint64(p.Int64), m.Int64, nil
}

// ScanLive calls fn for every pool and every open job.
func (s *Store) ScanLive(ctx context.Context, fn func(ledger.Account) error) error {
	return s.View(ctx, func(rtx ledger.ReadTx) error {
		return rtx.(*tx).scanAccounts(ctx, fn, `WHERE kind = ? OR state = ?`, string(ledger.KindPool), string(ledger.StateOpen))
	})
}

// ScanSessions calls fn for every ticket session with its nonces.
func (s *Store) ScanSessions(ctx context.Context, fn func(session string, expiry int64, nonces []uint32) error) error {
	return s.View(ctx, func(rtx ledger.ReadTx) error {
		t := rtx.(*tx)
		rows, err := t.query(ctx, `SELECT s.session, s.expiry, t.nonce FROM ticket_sessions s
			LEFT JOIN ticket_nonces t ON t.session = s.session ORDER BY s.session`)
		if err != nil {
			return err
		}
		defer rows.Close()
		var cur string
		var expiry int64
		var nonces []uint32
		started := false
		for rows.Next() {
			var name string
			var exp int64
			var n sql.NullInt64
			if err := rows.Scan(&name, &exp, &n); err != nil {
				return err
			}
			if started && name != cur {
				if err := fn(cur, expiry, nonces); err != nil {
					return err
				}
				nonces = nil
			}
			cur, expiry, started = name, exp, true
			if n.Valid {
				nonces = append(nonces, uint32(n.Int64))
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if started {
			return fn(cur, expiry, nonces)
		}
		return nil
	})
}

// SetProjected records, inside an Update, the journal record the
// transaction projects up to.
func SetProjected(ctx context.Context, ltx ledger.Tx, seq uint64) error {
	t, ok := ltx.(*tx)
	if !ok {
		return errors.New("sqlstore: SetProjected outside an sqlstore transaction")
	}
	res, err := t.exec(ctx, `UPDATE journal_state SET projected = ? WHERE id = 1`, int64(seq))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(err, errors.New("sqlstore: journal_state has no row"))
	}
	return nil
}

// The projection's inserts are SQLite's INSERT OR FAIL (the journal
// store's tables are SQLite): a row that breaks a constraint still fails
// the statement, and with it the projection's transaction, but the
// statement need not be undone alone, so SQLite keeps no statement
// journal (a copy of every page a statement of many rows changes, kept
// for a constraint that would abort it halfway).

func insertAccountsWithIDsSQL(n int) string {
	return memo("insertAccountsWithIDsSQL", "", n, insertAccountsWithIDsSQLText)
}

func insertAccountsWithIDsSQLText(n int) string {
	return `INSERT OR FAIL INTO accounts (id, ref, kind, sender, name, customer, pool_ref, pool_id, state,
		balance, credited, charged, moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
		VALUES ` + placeholders(n, 19)
}

// insertWithIDs inserts accounts whose IDs are already assigned (by the
// journal store), many to a statement.
func (t *tx) insertWithIDs(ctx context.Context, accts []*ledger.Account) error {
	var args []any
	for start, n := range pieces(len(accts)) {
		args = args[:0]
		for _, a := range accts[start : start+n] {
			args = append(args, a.ID)
			args = t.appendAccountArgs(args, a)
		}
		if _, err := t.exec(ctx, insertAccountsWithIDsSQL(n), args...); err != nil {
			return err
		}
	}
	return nil
}

func projectedEntriesSQL(n int) string {
	return memo("projectedEntriesSQL", "", n, func(n int) string { return insertEntriesText("INSERT OR FAIL", n) })
}

// InsertProjected is InsertEntries inside the journal store's projection
// (an Update of this store on SQLite): the same rows, by INSERT OR FAIL.
func InsertProjected(ctx context.Context, ltx ledger.Tx, entries []*ledger.Entry) error {
	t, ok := ltx.(*tx)
	if !ok {
		return errors.New("sqlstore: InsertProjected outside an sqlstore transaction")
	}
	return t.insertEntries(ctx, entries, projectedEntriesSQL)
}

// ScanNames calls ref for every account's reference and key for every
// idempotency key.
func (s *Store) ScanNames(ctx context.Context, ref, key func(string)) error {
	return s.View(ctx, func(rtx ledger.ReadTx) error {
		t := rtx.(*tx)
		for _, q := range []struct {
			sql string
			fn  func(string)
		}{{`SELECT ref FROM accounts`, ref}, {`SELECT idem_key FROM entries WHERE idem_key IS NOT NULL`, key}} {
			if err := t.scanStrings(ctx, q.fn, q.sql); err != nil {
				return err
			}
		}
		return nil
	})
}

// OutboxState returns the largest outbox event ID (0: none).
func (s *Store) OutboxState(ctx context.Context) (maxID int64, err error) {
	var m sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT max(id) FROM outbox`).Scan(&m); err != nil {
		return 0, fmt.Errorf("outbox state: %w", err)
	}
	return m.Int64, nil
}

// ScanOutbox calls key for every outbox event's key and pending for every
// undelivered event, by ID.
func (s *Store) ScanOutbox(ctx context.Context, key func(string), pending func(ledger.OutboxEvent) error) error {
	return s.View(ctx, func(rtx ledger.ReadTx) error {
		t := rtx.(*tx)
		if err := t.scanStrings(ctx, key, `SELECT event_key FROM outbox`); err != nil {
			return err
		}
		for after := int64(0); ; {
			evs, err := t.PendingOutbox(ctx, after, 1000)
			if err != nil {
				return err
			}
			for _, e := range evs {
				if err := pending(e); err != nil {
					return err
				}
			}
			if len(evs) < 1000 {
				return nil
			}
			after = evs[len(evs)-1].ID
		}
	})
}

// OutboxKeysTaken returns those of keys that outbox events carry.
func (s *Store) OutboxKeysTaken(ctx context.Context, keys []string) ([]string, error) {
	var out []string
	err := s.View(ctx, func(rtx ledger.ReadTx) error {
		t := rtx.(*tx)
		for start, n := range pieces(len(keys)) {
			args := make([]any, n)
			for i, k := range keys[start : start+n] {
				args[i] = k
			}
			take := func(k string) { out = append(out, k) }
			if err := t.scanStrings(ctx, take, `SELECT event_key FROM outbox WHERE event_key IN (`+placeholders(n, 1)+`)`, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// scanStrings calls fn for the one string column of each row query gives.
func (t *tx) scanStrings(ctx context.Context, fn func(string), query string, args ...any) error {
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		fn(v)
	}
	return errors.Join(rows.Err(), rows.Close())
}
