package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"byoc/ledger"
)

// The outbox (migration 0006): events written with the money moves they
// report, read back until delivered.

const (
	insertOutboxSQL = `INSERT INTO outbox (event_key, topic, subject, at, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING`
	// insertOutboxWithIDSQL: the journal store's projection, whose events
	// carry the IDs the journal assigned.
	insertOutboxWithIDSQL = `INSERT INTO outbox (id, event_key, topic, subject, at, body, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING`
)

// InsertOutbox inserts events; an event with an ID (assigned by the
// journal store, whose projection this is) is inserted with it.
func (t *tx) InsertOutbox(ctx context.Context, events []*ledger.OutboxEvent) error {
	for _, e := range events {
		body := e.Body
		if body == nil {
			body = []byte{} // NOT NULL: an empty body is empty, not absent
		}
		q, args := insertOutboxSQL, []any{e.Key, e.Topic, e.Subject, e.At.UnixMicro(), body}
		if e.ID > 0 {
			var delivered any
			if !e.DeliveredAt.IsZero() {
				delivered = e.DeliveredAt.UnixMicro()
			}
			q, args = insertOutboxWithIDSQL, append([]any{e.ID}, append(args, delivered)...)
		}
		res, err := t.exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("%w: outbox event %q", ledger.ErrKeyTaken, e.Key)
		}
	}
	return nil
}

func (t *tx) PendingOutbox(ctx context.Context, after int64, limit int, topics ...string) ([]ledger.OutboxEvent, error) {
	q := `SELECT id, event_key, topic, subject, at, body FROM outbox WHERE delivered_at IS NULL AND id > ?`
	args := []any{after}
	if len(topics) > 0 {
		// outbox_pending_topic (migration 11): a sink's own topic's events
		// without going over the others'.
		q += ` AND topic IN (` + placeholders(len(topics), 1) + `)`
		for _, topic := range topics {
			args = append(args, topic)
		}
	}
	rows, err := t.query(ctx, q+` ORDER BY id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.OutboxEvent
	for rows.Next() {
		var e ledger.OutboxEvent
		var at int64
		if err := rows.Scan(&e.ID, &e.Key, &e.Topic, &e.Subject, &at, &e.Body); err != nil {
			return nil, err
		}
		e.At = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

func (t *tx) MarkDelivered(ctx context.Context, ids []int64, at time.Time) error {
	for start, n := range pieces(len(ids)) {
		args := []any{at.UnixMicro()}
		for _, id := range ids[start : start+n] {
			args = append(args, id)
		}
		q := `UPDATE outbox SET delivered_at = ? WHERE delivered_at IS NULL AND id IN (?` + strings.Repeat(", ?", n-1) + `)`
		if _, err := t.exec(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// PruneOutbox deletes the events delivered before deliveredBefore, all but
// the newest event: the next ID follows the largest one kept (SQLite's, and
// the journal store's after a restart), so no ID is handed out twice.
func (s *Store) PruneOutbox(ctx context.Context, deliveredBefore time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx, s.rebind(`DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?
		AND id < (SELECT max(id) FROM outbox)`), deliveredBefore.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("pruning the outbox: %w", err)
	}
	return res.RowsAffected()
}
