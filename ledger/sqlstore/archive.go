package sqlstore

// Retention: final jobs and their entries moved out of the live tables, and
// the checkpoint that carries their totals forward.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"byoc/ledger"
)

func (t *tx) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	cp := ledger.Checkpoint{Carry: map[int64]ledger.Flows{}}
	rows, err := t.query(ctx, `SELECT before_at, jobs, entries, CAST(credited AS TEXT), CAST(charged AS TEXT),
		CAST(moved_in AS TEXT), CAST(moved_out AS TEXT) FROM archives ORDER BY id`)
	if err != nil {
		return cp, err
	}
	defer rows.Close()
	for rows.Next() {
		var before, jobs, entries int64
		var f [4]string
		if err := rows.Scan(&before, &jobs, &entries, &f[0], &f[1], &f[2], &f[3]); err != nil {
			return cp, err
		}
		fl, err := parseFlows(f)
		if err != nil {
			return cp, fmt.Errorf("archives: %w", err)
		}
		cp.Batches++
		cp.Jobs += jobs
		cp.Entries += entries
		cp.Totals = addFlows(cp.Totals, fl)
		if b := fromMicros(before); b.After(cp.Before) {
			cp.Before = b
		}
	}
	if err := rows.Err(); err != nil {
		return cp, err
	}
	rows.Close()
	rows, err = t.query(ctx, `SELECT account_id, CAST(credited AS TEXT), CAST(charged AS TEXT),
		CAST(moved_in AS TEXT), CAST(moved_out AS TEXT) FROM archive_carry`)
	if err != nil {
		return cp, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var f [4]string
		if err := rows.Scan(&id, &f[0], &f[1], &f[2], &f[3]); err != nil {
			return cp, err
		}
		fl, err := parseFlows(f)
		if err != nil {
			return cp, fmt.Errorf("archive_carry %d: %w", id, err)
		}
		cp.Carry[id] = fl
	}
	return cp, rows.Err()
}

func parseFlows(f [4]string) (ledger.Flows, error) {
	var out [4]ledger.Amount
	for i, s := range f {
		a, err := ledger.ParseAmount(s)
		if err != nil {
			return ledger.Flows{}, err
		}
		out[i] = a
	}
	return ledger.Flows{Credited: out[0], Charged: out[1], MovedIn: out[2], MovedOut: out[3]}, nil
}

func addFlows(a, b ledger.Flows) ledger.Flows {
	return ledger.Flows{Credited: a.Credited.Add(b.Credited), Charged: a.Charged.Add(b.Charged),
		MovedIn: a.MovedIn.Add(b.MovedIn), MovedOut: a.MovedOut.Add(b.MovedOut)}
}

func (t *tx) ArchivableJobs(ctx context.Context, before time.Time, limit int) ([]ledger.Account, error) {
	return t.accounts(ctx, `SELECT `+accountCols+` FROM accounts a
		WHERE kind = ? AND state IN (?, ?) AND closed_at < ?
		AND NOT EXISTS (SELECT 1 FROM winners w WHERE w.account_id = a.id)
		ORDER BY id LIMIT ?`,
		string(ledger.KindJob), string(ledger.StateClosed), string(ledger.StateExpired), before.UnixMicro(), limit)
}

func idArgs(ids []int64) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args
}

func (t *tx) EntriesOf(ctx context.Context, accountIDs []int64) ([]ledger.Entry, error) {
	seen := map[int64]bool{}
	var out []ledger.Entry
	for start, n := range pieces(len(accountIDs)) {
		args := idArgs(accountIDs[start : start+n])
		in := placeholders(n, 1)
		// Two index lookups (entries_from, entries_to) rather than one OR
		// that a planner may scan the table for.
		for _, col := range []string{"from_id", "to_id"} {
			got, err := t.entries(ctx, `SELECT `+entryCols+` FROM entries WHERE `+col+` IN (`+in+`)`, args...)
			if err != nil {
				return nil, err
			}
			for _, e := range got {
				if !seen[e.ID] {
					seen[e.ID] = true
					out = append(out, e)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// deleteIn deletes the rows of table whose id is among ids; fewer than all
// of them is ErrConflict (another writer deleted some).
func (t *tx) deleteIn(ctx context.Context, table string, ids []int64) error {
	for start, n := range pieces(len(ids)) {
		res, err := t.exec(ctx, `DELETE FROM `+table+` WHERE id IN (`+placeholders(n, 1)+`)`, idArgs(ids[start:start+n])...)
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil {
			return err
		} else if got != int64(n) {
			return fmt.Errorf("%w: deleted %d of %d %s", ledger.ErrConflict, got, n, table)
		}
	}
	return nil
}

func (t *tx) Archive(ctx context.Context, b ledger.ArchiveBatch) error {
	if err := t.deleteIn(ctx, "entries", b.EntryIDs); err != nil {
		return err
	}
	if err := t.deleteIn(ctx, "accounts", b.JobIDs); err != nil {
		return err
	}
	ids := make([]int64, 0, len(b.Carry))
	for id := range b.Carry {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := t.carry(ctx, id, b.Carry[id]); err != nil {
			return err
		}
	}
	tot := b.Totals
	_, err := t.exec(ctx, `INSERT INTO archives (before_at, at, jobs, entries, credited, charged, moved_in, moved_out, file)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, b.Before.UnixMicro(), b.At.UnixMicro(), len(b.JobIDs), len(b.EntryIDs),
		tot.Credited.String(), tot.Charged.String(), tot.MovedIn.String(), tot.MovedOut.String(), b.File)
	return err
}

// carry adds f to an account's carried flows. Amounts are added in Go, so
// that SQLite (which stores them as text) adds them exactly.
func (t *tx) carry(ctx context.Context, id int64, f ledger.Flows) error {
	rows, err := t.query(ctx, `SELECT CAST(credited AS TEXT), CAST(charged AS TEXT), CAST(moved_in AS TEXT),
		CAST(moved_out AS TEXT) FROM archive_carry WHERE account_id = ?`+t.lock, id)
	if err != nil {
		return err
	}
	var old [4]string
	found := rows.Next()
	if found {
		err = rows.Scan(&old[0], &old[1], &old[2], &old[3])
	}
	if err := errors.Join(err, rows.Err(), rows.Close()); err != nil {
		return err
	}
	amount := t.s.d.Types["AMOUNT"]
	cast := func() string { return `CAST(? AS ` + amount + `)` }
	if !found {
		_, err := t.exec(ctx, `INSERT INTO archive_carry (account_id, credited, charged, moved_in, moved_out)
			VALUES (?, `+strings.Join([]string{cast(), cast(), cast(), cast()}, ", ")+`)`,
			id, f.Credited.String(), f.Charged.String(), f.MovedIn.String(), f.MovedOut.String())
		return err
	}
	prev, err := parseFlows(old)
	if err != nil {
		return err
	}
	n := addFlows(prev, f)
	_, err = t.exec(ctx, `UPDATE archive_carry SET credited = `+cast()+`, charged = `+cast()+`, moved_in = `+cast()+
		`, moved_out = `+cast()+` WHERE account_id = ?`,
		n.Credited.String(), n.Charged.String(), n.MovedIn.String(), n.MovedOut.String(), id)
	return err
}

// Vacuum gives the space of deleted rows back to the file system (SQLite,
// whose WAL it then empties) or for reuse (PostgreSQL's plain VACUUM). It
// runs outside any transaction.
func (s *Store) Vacuum(ctx context.Context) error {
	if _, err := s.write.ExecContext(ctx, `VACUUM`); err != nil {
		return err
	}
	if s.d.Name == "sqlite" {
		// VACUUM rewrote the file through the WAL; empty it too.
		var busy, log, done int
		if err := s.write.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &log, &done); err != nil {
			return err
		}
		if busy != 0 {
			return fmt.Errorf("vacuumed, but the WAL is in use (%d of %d pages copied back): the file shrinks when the last process closes it", done, log)
		}
	}
	return nil
}
