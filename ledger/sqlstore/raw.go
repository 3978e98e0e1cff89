package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	"byoc/ledger"
)

// With Dialect.RawWrites, Update runs its transaction on the write
// handle's driver connection directly (sql.Conn.Raw): BEGIN IMMEDIATE, the
// batch's statements, COMMIT. database/sql costs little per statement, but
// it starts a goroutine per transaction and per result set to watch for
// cancellation, and binds each prepared statement to the transaction anew;
// for an embedded database whose batches run a dozen short statements,
// that was a good part of the work. Statements are prepared on the driver
// connection the first time they are used and kept while it lives.

// rawConn is the driver connection's statement cache.
type rawConn struct {
	mu    sync.Mutex
	conn  any // the driver connection the statements belong to
	stmts map[string]driver.Stmt
	// nv is the buffer of a statement's driver values, which the driver
	// does not keep past the call: a transaction takes it and gives it
	// back.
	nv []driver.NamedValue
}

// updateRaw is updateOnce on the driver connection.
func (s *Store) updateRaw(ctx context.Context, fn func(ledger.Tx) error) error {
	ctx, err := s.stmtCtx(ctx)
	if err != nil {
		return err
	}
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) (err error) {
		r := &rawTx{s: s, dc: dc}
		s.raw.mu.Lock()
		r.nv, s.raw.nv = s.raw.nv, nil
		s.raw.mu.Unlock()
		defer func() {
			s.raw.mu.Lock()
			s.raw.nv = r.nv
			s.raw.mu.Unlock()
		}()
		if _, err := r.exec(ctx, "BEGIN IMMEDIATE", nil); err != nil {
			return err
		}
		done := false
		defer func() {
			if done {
				return
			}
			// fn failed or panicked, or COMMIT failed (SQLITE_BUSY leaves the
			// transaction open): roll back. If that fails too, the
			// connection is given up, its statements finalized first so
			// that closing it really closes it (and ends the transaction).
			p := recover()
			if _, rerr := r.exec(ctx, "ROLLBACK", nil); rerr != nil || p != nil {
				s.dropRaw(dc)
				if rerr != nil {
					err = errors.Join(err, fmt.Errorf("rollback: %w", rerr), driver.ErrBadConn)
				}
			}
			if p != nil {
				panic(p)
			}
		}()
		if err := fn(&tx{s: s, raw: r, lock: s.d.LockClause}); err != nil {
			return err
		}
		if _, err := r.exec(ctx, "COMMIT", nil); err != nil {
			return err
		}
		done = true
		return nil
	})
}

// dropRaw finalizes the statements cached for driver connection dc, which
// is being given up.
func (s *Store) dropRaw(dc any) {
	s.raw.mu.Lock()
	defer s.raw.mu.Unlock()
	if s.raw.conn != dc {
		return
	}
	for _, st := range s.raw.stmts {
		st.Close()
	}
	s.raw.conn, s.raw.stmts = nil, nil
}

// closeRaw finalizes the cached driver statements.
func (s *Store) closeRaw() {
	s.raw.mu.Lock()
	empty := len(s.raw.stmts) == 0
	s.raw.mu.Unlock()
	if empty {
		return
	}
	conn, err := s.write.Conn(context.Background())
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Raw(func(dc any) error {
		s.dropRaw(dc)
		return nil
	})
}

// rawTx runs statements on a driver connection inside Raw.
type rawTx struct {
	s  *Store
	dc any
	nv []driver.NamedValue // see rawConn.nv
}

func (r *rawTx) stmt(ctx context.Context, q string) (driver.Stmt, error) {
	c := &r.s.raw
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != r.dc {
		// A new connection (the old one failed): its statements are gone.
		c.conn, c.stmts = r.dc, map[string]driver.Stmt{}
	}
	if st := c.stmts[q]; st != nil {
		return st, nil
	}
	p, ok := r.dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, errors.New("sqlstore: raw writes need a driver with PrepareContext")
	}
	st, err := p.PrepareContext(ctx, r.s.rebind(q))
	if err != nil {
		return nil, err
	}
	c.stmts[q] = st
	return st, nil
}

// namedValues converts args into driver values, in nv's room if it has
// enough.
func namedValues(nv []driver.NamedValue, args []any) ([]driver.NamedValue, error) {
	if cap(nv) < len(args) {
		nv = make([]driver.NamedValue, len(args))
	}
	nv = nv[:len(args)]
	for i, a := range args {
		switch v := a.(type) {
		case nil, int64, string, []byte, float64, bool:
		case int:
			a = int64(v)
		default:
			var err error
			if a, err = driver.DefaultParameterConverter.ConvertValue(a); err != nil {
				return nil, fmt.Errorf("sqlstore: argument %d: %w", i+1, err)
			}
		}
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv, nil
}

// bound returns q's prepared statement and args as driver values, in
// r.nv: the caller calls release once the driver is done with them.
func (r *rawTx) bound(ctx context.Context, q string, args []any) (driver.Stmt, []driver.NamedValue, error) {
	st, err := r.stmt(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	nv, err := namedValues(r.nv, args)
	r.nv = nv
	return st, nv, err
}

// release drops the values bound last, so the buffer holds on to none.
func (r *rawTx) release() { clear(r.nv) }

func (r *rawTx) exec(ctx context.Context, q string, args []any) (sql.Result, error) {
	st, nv, err := r.bound(ctx, q, args)
	defer r.release()
	if err != nil {
		return nil, err
	}
	e, ok := st.(driver.StmtExecContext)
	if !ok {
		return nil, errors.New("sqlstore: raw writes need a driver with StmtExecContext")
	}
	return e.ExecContext(ctx, nv)
}

func (r *rawTx) query(ctx context.Context, q string, args []any) (rows, error) {
	st, nv, err := r.bound(ctx, q, args)
	defer r.release()
	if err != nil {
		return nil, err
	}
	qc, ok := st.(driver.StmtQueryContext)
	if !ok {
		return nil, errors.New("sqlstore: raw writes need a driver with StmtQueryContext")
	}
	dr, err := qc.QueryContext(ctx, nv)
	if err != nil {
		return nil, err
	}
	return &rawRows{r: dr, row: make([]driver.Value, len(dr.Columns()))}, nil
}

// rows is what the store reads results through: *sql.Rows, or rawRows.
type rows = Rows

// rawRows reads a driver.Rows as database/sql would (Scan converts as
// sql.Rows.Scan does, through sql.Null).
type rawRows struct {
	r      driver.Rows
	row    []driver.Value
	err    error
	closed bool
}

func (x *rawRows) Next() bool {
	if x.closed || x.err != nil {
		return false
	}
	if err := x.r.Next(x.row); err != nil {
		if err != io.EOF {
			x.err = err
		}
		x.Close()
		return false
	}
	return true
}

func (x *rawRows) Scan(dest ...any) error {
	if len(dest) != len(x.row) {
		return fmt.Errorf("sqlstore: %d destinations for %d columns", len(dest), len(x.row))
	}
	for i, d := range dest {
		if err := scanValue(d, x.row[i]); err != nil {
			return fmt.Errorf("sqlstore: column %d: %w", i, err)
		}
	}
	return nil
}

func scanValue(dest any, v driver.Value) error {
	switch d := dest.(type) {
	case sql.Scanner:
		return d.Scan(v)
	case *string:
		return scanNotNull(d, v)
	case *int64:
		return scanNotNull(d, v)
	case *int:
		return scanNotNull(d, v)
	case *[]byte:
		var n sql.Null[[]byte]
		if err := n.Scan(v); err != nil {
			return err
		}
		*d = n.V
		return nil
	}
	return fmt.Errorf("unsupported destination %T", dest)
}

func scanNotNull[T any](d *T, v driver.Value) error {
	var n sql.Null[T]
	if err := n.Scan(v); err != nil {
		return err
	}
	if !n.Valid {
		return fmt.Errorf("NULL into %T", d)
	}
	*d = n.V
	return nil
}

func (x *rawRows) Err() error { return x.err }

func (x *rawRows) Close() error {
	if x.closed {
		return nil
	}
	x.closed = true
	return x.r.Close()
}
