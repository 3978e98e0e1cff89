package journal

import (
	"context"
	"time"

	"byoc/ledger"
)

// View implements ledger.Store. Reads that memory answers (accounts it
// holds, ticket sessions, expiries) are served from it while the view
// holds memory's read lock, so that no commit lands in between. The first
// read that needs the projection (history, or an account memory does not
// hold) waits until the projection holds every committed record, pins the
// projection's snapshot there and releases memory: from then on the view
// reads only the projection, which is the same state.
func (s *Store) View(ctx context.Context, fn func(ledger.ReadTx) error) error {
	return s.inner.View(ctx, func(ptx ledger.ReadTx) error {
		v := &viewTx{s: s, ctx: ctx, ptx: ptx, locked: true}
		s.mu.RLock()
		defer v.unlock()
		// Memory may hold a batch whose sync is in flight: a view sees
		// only what is acknowledged, or about to be. (Records of deferred
		// syncs after it are acknowledged already.)
		if err := s.log.syncTo(s.mustSync); err != nil {
			return err
		}
		return fn(v)
	})
}

type viewTx struct {
	s      *Store
	ctx    context.Context
	ptx    ledger.ReadTx
	locked bool
	pinned bool
}

func (v *viewTx) unlock() {
	if v.locked {
		v.locked = false
		v.s.mu.RUnlock()
	}
}

// projection switches the view to the projection: it waits for it to
// hold what memory holds (no commit can land while the view holds the
// read lock), starts the projection's snapshot with a read, and releases
// memory.
func (v *viewTx) projection() (ledger.ReadTx, error) {
	if v.pinned {
		return v.ptx, nil
	}
	if err := v.s.waitProjected(v.ctx, v.s.committed); err != nil {
		return nil, err
	}
	// SQLite starts a read transaction's snapshot at its first read.
	if _, err := v.ptx.NonceState(v.ctx, []ledger.NonceQuery{{Session: ""}}); err != nil {
		return nil, err
	}
	v.pinned = true
	v.unlock()
	return v.ptx, nil
}

func (v *viewTx) LoadAccounts(ctx context.Context, refs []ledger.Ref) ([]ledger.Account, error) {
	if !v.pinned {
		out, missing, _ := v.s.loadMem(refs)
		if len(missing) == 0 {
			return out, nil
		}
	}
	p, err := v.projection()
	if err != nil {
		return nil, err
	}
	return p.LoadAccounts(ctx, refs)
}

func (v *viewTx) NonceState(ctx context.Context, queries []ledger.NonceQuery) (map[string]ledger.SessionState, error) {
	if !v.pinned {
		return v.s.m.nonceState(queries), nil
	}
	return v.ptx.NonceState(ctx, queries)
}

func (v *viewTx) ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]ledger.Ref, error) {
	if !v.pinned {
		return v.s.m.expiredJobs(now, limit), nil
	}
	return v.ptx.ExpiredJobs(ctx, now, limit)
}

func (v *viewTx) NextExpiry(ctx context.Context) (time.Time, bool, error) {
	if !v.pinned {
		next, ok := v.s.m.nextExpiry()
		return next, ok, nil
	}
	return v.ptx.NextExpiry(ctx)
}

func (v *viewTx) EntriesByKey(ctx context.Context, keys []string) ([]ledger.Entry, error) {
	p, err := v.projection()
	if err != nil {
		return nil, err
	}
	return p.EntriesByKey(ctx, keys)
}

func (v *viewTx) Entries(ctx context.Context, accountID, after int64, limit int) ([]ledger.Entry, error) {
	p, err := v.projection()
	if err != nil {
		return nil, err
	}
	return p.Entries(ctx, accountID, after, limit)
}

func (v *viewTx) ListAccounts(ctx context.Context, f ledger.AccountFilter) ([]ledger.Account, error) {
	p, err := v.projection()
	if err != nil {
		return nil, err
	}
	return p.ListAccounts(ctx, f)
}

func (v *viewTx) ScanEntries(ctx context.Context, fn func(ledger.Entry) error) error {
	p, err := v.projection()
	if err != nil {
		return err
	}
	return p.ScanEntries(ctx, fn)
}

func (v *viewTx) ScanAccounts(ctx context.Context, fn func(ledger.Account) error) error {
	p, err := v.projection()
	if err != nil {
		return err
	}
	return p.ScanAccounts(ctx, fn)
}

func (v *viewTx) Winners(ctx context.Context, state string, limit int) ([]ledger.Winner, error) {
	p, err := v.projection()
	if err != nil {
		return nil, err
	}
	return p.Winners(ctx, state, limit)
}

func (v *viewTx) Winner(ctx context.Context, key string) (*ledger.Winner, error) {
	p, err := v.projection()
	if err != nil {
		return nil, err
	}
	return p.Winner(ctx, key)
}

func (v *viewTx) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	p, err := v.projection()
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return p.Checkpoint(ctx)
}

// PendingOutbox reads memory, which holds every undelivered event, until
// the view is pinned to the projection, which then holds what memory did.
func (v *viewTx) PendingOutbox(ctx context.Context, after int64, limit int, topics ...string) ([]ledger.OutboxEvent, error) {
	if !v.pinned {
		return v.s.m.pendingOutbox(after, limit, topics), nil
	}
	return v.ptx.PendingOutbox(ctx, after, limit, topics...)
}
