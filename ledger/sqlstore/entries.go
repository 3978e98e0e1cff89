package sqlstore

// Entries: the journal of money moves, their statement texts, reads and
// inserts.

import (
	"context"
	"database/sql"
	"fmt"

	"byoc/ledger"
)

func entriesByKeySQL(n int) string { return memo("entriesByKeySQL", "", n, entriesByKeySQLText) }

func entriesByKeySQLText(n int) string {
	return `SELECT ` + entryCols + ` FROM entries WHERE idem_key IN (` + placeholders(n, 1) + `)`
}

// insertEntriesSQL inserts n entries, skipping those whose key is taken.
func insertEntriesSQL(n int) string { return memo("insertEntriesSQL", "", n, insertEntriesSQLText) }

func insertEntriesSQLText(n int) string { return insertEntriesText("INSERT", n) }

// insertEntriesText is insertEntriesSQL with the statement's verb: INSERT,
// or SQLite's INSERT OR FAIL (see projectedEntriesSQL).
func insertEntriesText(verb string, n int) string {
	return verb + ` INTO entries (at, kind, from_id, to_id, amount, idem_key, input_hash, balance_after)
		VALUES ` + placeholders(n, 8) + ` ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING`
}

func (t *tx) InsertEntries(ctx context.Context, entries []*ledger.Entry) error {
	if t.s.d.Arrays && len(entries) > 0 {
		return t.insertEntriesArray(ctx, entries)
	}
	return t.insertEntries(ctx, entries, insertEntriesSQL)
}

// insertEntries inserts entries with the statements q gives per row count.
func (t *tx) insertEntries(ctx context.Context, entries []*ledger.Entry, q func(int) string) error {
	var args []any
	for start, n := range pieces(len(entries)) {
		part := entries[start : start+n]
		args = args[:0]
		for _, e := range part {
			args = append(args, e.At.UnixMicro(), string(e.Kind), nullID(e.From), nullID(e.To), t.amount(e.Amount),
				nullString(e.Key), nullString(e.InputHash), t.amount(e.BalanceAfter))
		}
		if err := insertedAll(t.exec(ctx, q(n), args...))(n); err != nil {
			return err
		}
	}
	return nil
}

// insertedAll checks that an insert of n entries inserted them all: a
// key already taken skips its row (ErrKeyTaken).
func insertedAll(res sql.Result, err error) func(n int) error {
	return func(n int) error {
		if err != nil {
			return err
		}
		got, err := res.RowsAffected()
		if err != nil {
			return err
		}
		return insertedEntries(n, got)
	}
}

// insertedEntries checks that got of n entries were inserted: a key
// already taken skips its row (ErrKeyTaken).
func insertedEntries(n int, got int64) error {
	if got != int64(n) {
		return fmt.Errorf("%w: %d of %d entries", ledger.ErrKeyTaken, int64(n)-got, n)
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
	if t.s.d.Arrays && len(keys) > 0 {
		return t.entries(ctx, entriesByKeyArraySQL, keys)
	}
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

func (t *tx) ScanEntries(ctx context.Context, fn func(ledger.Entry) error) error {
	return t.scanEntries(ctx, fn, `SELECT `+entryCols+` FROM entries ORDER BY id`)
}
