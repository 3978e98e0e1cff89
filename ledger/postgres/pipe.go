package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"byoc/ledger/sqlstore"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pipeline is Dialect.Pipeline: the statements a Pipe sends at once are a
// pgx batch, one round trip.
func pipeline(dc any) (sqlstore.Pipe, error) {
	c, ok := dc.(*stdlib.Conn)
	if !ok {
		return nil, fmt.Errorf("postgres ledger: driver connection %T is not pgx's", dc)
	}
	return pipe{c.Conn()}, nil
}

type pipe struct{ c *pgx.Conn }

// send queues before, q and after, sends them, and reads before's results.
// q runs as a statement prepared on the connection (once, the first time
// it meets q): the server neither parses nor plans it again at every
// batch, about a sixth of its time for a batch's two function calls. Not
// when the DSN chose default_query_exec_mode (a pooler in front of the
// server may not keep a connection's prepared statements).
func (p pipe) send(ctx context.Context, before []string, q string, args []any, after string) (pgx.BatchResults, error) {
	if name, ok := statementName(q); ok && p.c.Config().DefaultQueryExecMode == pgx.QueryExecModeCacheDescribe {
		if _, err := p.c.Prepare(ctx, name, q); err != nil { // no round trip once prepared
			return nil, err
		}
		q = name // pgx runs a prepared statement named in place of the SQL
	}
	var b pgx.Batch
	for _, s := range before {
		b.Queue(s)
	}
	b.Queue(q, args...)
	if after != "" {
		b.Queue(after)
	}
	br := p.c.SendBatch(ctx, &b)
	for range before {
		if _, err := br.Exec(); err != nil {
			return nil, errors.Join(err, br.Close())
		}
	}
	return br, nil
}

func (p pipe) Query(ctx context.Context, before []string, q string, args []any, after string) (sqlstore.Rows, error) {
	br, err := p.send(ctx, before, q, args, after)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, errors.Join(err, br.Close())
	}
	return &pipeRows{Rows: rows, br: br, after: after != ""}, nil
}

func (p pipe) Exec(ctx context.Context, before []string, q string, args []any, after string) (int64, error) {
	br, err := p.send(ctx, before, q, args, after)
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if err == nil && after != "" {
		_, err = br.Exec()
	}
	return tag.RowsAffected(), errors.Join(err, br.Close())
}

// pipeRows are a batch's rows; their Close reads the rest of the batch.
type pipeRows struct {
	pgx.Rows
	br     pgx.BatchResults
	after  bool
	closed bool
	err    error
}

func (r *pipeRows) Close() error {
	if r.closed {
		return r.err
	}
	r.closed = true
	r.Rows.Close()
	err := r.Rows.Err()
	if err == nil && r.after {
		_, err = r.br.Exec()
	}
	r.err = errors.Join(err, r.br.Close())
	return r.err
}

// statementNames holds the names of the statements prepared, at most
// maxPrepared: the store's statements are a fixed set (their variants by
// row count are powers of two), and any beyond run unprepared, so neither
// this map nor a connection's statements on the server grow without bound.
var (
	statementMu    sync.RWMutex
	statementNames = map[string]string{}
)

const maxPrepared = 256

// statementName names the prepared statement of q (false: q is not to be
// prepared). The server keys statements by their first 63 bytes, so the
// name is a hash of q, not q.
func statementName(q string) (string, bool) {
	statementMu.RLock()
	n, ok := statementNames[q]
	full := len(statementNames) >= maxPrepared
	statementMu.RUnlock()
	if ok || full {
		return n, ok
	}
	h := fnv.New64a()
	h.Write([]byte(q))
	n = fmt.Sprintf("byoc_%016x", h.Sum64())
	statementMu.Lock()
	defer statementMu.Unlock()
	if len(statementNames) >= maxPrepared {
		return "", false
	}
	statementNames[q] = n
	return n, true
}
