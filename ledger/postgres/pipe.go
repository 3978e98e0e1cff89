package postgres

import (
	"context"
	"errors"
	"fmt"

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
func (p pipe) send(ctx context.Context, before []string, q string, args []any, after string) (pgx.BatchResults, error) {
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
