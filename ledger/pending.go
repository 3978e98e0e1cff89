package ledger

import (
	"context"
	"sync"
	"time"
)

// Pending holds: for a writer that starts work before its ledger writes
// commit (the gateway writes a job's hold alongside the job's request and
// its charge after the answer went out), Pending keeps each pool as it
// will stand once the holds it reserved have drawn and the releases it
// promised are committed — the balance read from the ledger, less the
// draws reserved, plus the releases promised — so that concurrent holds
// never count the same credit twice and none waits for another's commit.
//
// It is exact while the writer is the pool's only one and reports each
// hold's life in order: Reserve, then Cancel (the work never started) or
// Settle (its charge is known), then the end: a hold opened in the ledger
// is ended by the write that finishes it (Ledger.FinishPendingJob, or
// Ledger.OpenFinishPendingJob, which opens it too), in
// the committer once that write has committed, so a pool is never read
// while a write of its holds is still on its way; a hold that never
// opened, or that is left to expire, is ended by the writer (End). A pool
// is read from the ledger again (Sync) when no hold of it is pending,
// which picks up what others did (the sweeper releasing a hold a crash
// left behind). Pending writes nothing; the writer's OpenJob, Admit,
// FinishPendingJob and OpenFinishPendingJob do.
type Pending struct {
	l  *Ledger
	mu sync.Mutex
	m  map[Ref]*pendingPool
}

type pendingPool struct {
	loaded    bool
	projected Amount
	holds     int       // reserved and not ended
	synced    time.Time // when read from the ledger; zero: read again when quiet
}

// NewPending returns a Pending over l's pools.
func NewPending(l *Ledger) *Pending { return &Pending{l: l, m: map[Ref]*pendingPool{}} }

func (p *Pending) pool(ref Ref) *pendingPool {
	pp := p.m[ref]
	if pp == nil {
		pp = &pendingPool{}
		p.m[ref] = pp
	}
	return pp
}

// Sync reads pool's balance from the ledger if it never was, or if no hold
// of it is pending and it was read more than maxAge before now (or marked
// Stale).
func (p *Pending) Sync(ctx context.Context, pool Ref, now time.Time, maxAge time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.pool(pool)
	if pp.loaded && (pp.holds > 0 || now.Sub(pp.synced) <= maxAge) {
		return nil
	}
	bal, err := p.l.Balance(ctx, pool)
	if err != nil {
		return err
	}
	pp.loaded, pp.projected, pp.synced = true, bal, now
	return nil
}

// Stale has pool read from the ledger again once no hold of it is pending:
// a write failed, so the projection may be off.
func (p *Pending) Stale(pool Ref) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pool(pool).synced = time.Time{}
}

// Projected is pool as it will stand once the pending holds' draws and
// promised releases are committed.
func (p *Pending) Projected(pool Ref) Amount {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pool(pool).projected
}

// WriteDown takes up to amount off pool's projection, never below zero,
// for a charge on the pool the caller writes next; it returns what it took.
// If that write fails, Restore gives it back.
func (p *Pending) WriteDown(pool Ref, amount Amount) Amount {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.pool(pool)
	took := MaxOf(MinAmount(amount, pp.projected), Amount{})
	pp.projected = pp.projected.Sub(took)
	return took
}

// Restore gives back what WriteDown took when the charge was not written.
func (p *Pending) Restore(pool Ref, amount Amount) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.pool(pool)
	pp.projected = pp.projected.Add(amount)
}

// PendingHold is one hold reserved in memory.
type PendingHold struct {
	p                             *Pending
	pool                          Ref
	drawn, credited, off, charged Amount
	settled, ended                bool
}

// Reserve reserves a hold on pool that draws up to limit: at most the
// pool's projection, never below zero.
func (p *Pending) Reserve(pool Ref, limit Amount) *PendingHold {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.pool(pool)
	h := &PendingHold{p: p, pool: pool, drawn: MaxOf(MinAmount(limit, pp.projected), Amount{})}
	pp.projected = pp.projected.Sub(h.drawn)
	pp.holds++
	return h
}

// Drawn is what the hold counts on from its pool.
func (h *PendingHold) Drawn() Amount { return h.drawn }

// Charged is the charge Settle took.
func (h *PendingHold) Charged() Amount {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return h.charged
}

// Settle promises the hold's release once its work is answered: its draw,
// plus credited (payments sent to it), less off (what of those the other
// side did not credit: written off), less charge — the charge capped at
// what the hold then holds (drawn + credited − off, at least zero), so no
// claim drives the pool below zero. It returns the charge taken and true;
// for a hold already settled or cancelled, the charge taken then and false.
func (h *PendingHold) Settle(credited, off, charge Amount) (Amount, bool) {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if h.settled {
		return h.charged, false
	}
	h.settled, h.credited, h.off = true, credited, off
	h.charged = h.Charge(credited, off, charge)
	pp := h.p.pool(h.pool)
	pp.projected = pp.projected.Add(h.drawn).Add(credited).Sub(off).Sub(h.charged)
	return h.charged, true
}

// Charge is the charge Settle takes for these figures: charge capped at
// what the hold holds (drawn + credited − off, at least zero), never below
// zero. It changes nothing.
func (h *PendingHold) Charge(credited, off, charge Amount) Amount {
	held := MaxOf(h.drawn.Add(credited).Sub(off), Amount{})
	return MaxOf(MinAmount(charge, held), Amount{})
}

// Cancel ends the hold's work before it began: its draw comes back. It
// reports false for a hold already settled or cancelled.
func (h *PendingHold) Cancel() bool {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return h.cancelLocked()
}

func (h *PendingHold) cancelLocked() bool {
	if h.settled {
		return false
	}
	h.settled = true
	pp := h.p.pool(h.pool)
	pp.projected = pp.projected.Add(h.drawn)
	return true
}

// written ends the hold once the write that finishes it in the ledger
// has committed (err nil) or failed (its pool is then read again when
// quiet); a nil hold has nothing to end.
func (h *PendingHold) written(err error) {
	if h == nil {
		return
	}
	h.End(true)
	if err != nil {
		h.p.Stale(h.pool)
	}
}

// End reports the hold's ledger writes done (cancelling it if it was
// neither settled nor cancelled). opened false: the hold never opened in
// the ledger, so what Settle promised beyond the draw (the credit, the
// write-off, the charge) never happened and is taken back. Ending twice
// changes nothing.
func (h *PendingHold) End(opened bool) {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if h.ended {
		return
	}
	h.cancelLocked()
	h.ended = true
	pp := h.p.pool(h.pool)
	if !opened {
		pp.projected = pp.projected.Sub(h.credited).Add(h.off).Add(h.charged)
	}
	pp.holds--
}
