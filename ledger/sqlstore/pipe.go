package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"byoc/ledger"
)

// With Dialect.Pipeline, Update runs its transaction on the write handle's
// driver connection through a Pipe: BEGIN (and the deferred sync's SET
// LOCAL) goes with the transaction's first statement and COMMIT with its
// last write (ledger.FinalWrite), each in the same round trip, so that a
// batch of a read and a write is two round trips instead of four.

// Pipe runs statements on one driver connection.
type Pipe interface {
	// Query sends the statements of before (without arguments), q with
	// args, and after ("" for none, without arguments) at once, and
	// returns q's rows. If a statement of before fails, Query returns its
	// error; Close of the rows returns after's. The statements after a
	// failed one are not run.
	Query(ctx context.Context, before []string, q string, args []any, after string) (Rows, error)
	// Exec sends before, q with args and after as Query does, and returns
	// how many rows q affected.
	Exec(ctx context.Context, before []string, q string, args []any, after string) (int64, error)
}

// Rows are a statement's rows, as database/sql's.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// pipeTx is an Update's transaction on a Pipe.
type pipeTx struct {
	p Pipe
	// begin holds BEGIN and what goes with it until the first statement
	// takes them; ended is set once COMMIT was sent.
	begin []string
	ended bool
	// final: the last write may commit (not ledger.CommitKept).
	final bool
}

// take returns the statements to send before the next one.
func (p *pipeTx) take() []string {
	b := p.begin
	p.begin = nil
	return b
}

func (p *pipeTx) query(ctx context.Context, q string, args []any, commit bool) (rows, error) {
	if p.ended {
		return nil, errors.New("sqlstore: statement after the commit")
	}
	after := ""
	if commit {
		after, p.ended = "COMMIT", true
	}
	return p.p.Query(ctx, p.take(), q, args, after)
}

func (p *pipeTx) exec(ctx context.Context, q string, args []any) (sql.Result, error) {
	if p.ended {
		return nil, errors.New("sqlstore: statement after the commit")
	}
	n, err := p.p.Exec(ctx, p.take(), q, args, "")
	if err != nil {
		return nil, err
	}
	return affected(n), nil
}

// affected is a sql.Result of an Exec on a Pipe.
type affected int64

func (a affected) LastInsertId() (int64, error) {
	return 0, errors.New("sqlstore: no LastInsertId on a pipe")
}
func (a affected) RowsAffected() (int64, error) { return int64(a), nil }

// updatePipe is updateOnce on a Pipe.
func (s *Store) updatePipe(ctx context.Context, fn func(ledger.Tx) error) error {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) (err error) {
		p, err := s.d.Pipeline(dc)
		if err != nil {
			return err
		}
		pt := &pipeTx{p: p, begin: []string{"BEGIN"}, final: !ledger.CommitKept(ctx)}
		if s.d.DeferredSync != "" && ledger.SyncDeferred(ctx) {
			pt.begin = append(pt.begin, s.d.DeferredSync)
		}
		defer func() {
			if pt.begin != nil || (pt.ended && err == nil) {
				return // nothing was sent, or the commit succeeded
			}
			// fn failed or panicked, or the commit did: roll back (a
			// failed commit has ended the transaction: nothing to roll
			// back then, and ROLLBACK only warns).
			if _, rerr := p.Exec(context.WithoutCancel(ctx), nil, "ROLLBACK", nil, ""); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
			}
		}()
		if err := fn(arrayTx{&tx{s: s, db: s.write, pipe: pt, lock: s.d.LockClause}}); err != nil {
			return err
		}
		if pt.ended || pt.begin != nil {
			return nil // committed with the last write, or nothing to commit
		}
		_, err = p.Exec(ctx, nil, "COMMIT", nil, "")
		pt.ended = true
		return err
	})
}
