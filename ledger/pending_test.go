package ledger_test

import (
	"context"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
)

// Pending's figure for a pool is the pool as the ledger will hold it once
// the holds reserved in memory are posted: concurrent holds never draw the
// same credit, a charge is capped at what its hold holds, a hold that never
// opened in the ledger leaves no trace, and once every hold is posted the
// figure is the ledger's balance to the wei — on both stores.
func TestPendingProjectsThePool(t *testing.T) { onBothStores(t, testPending) }

// onBothStores runs test on a fresh ledger on each store.
func onBothStores(t *testing.T, test func(*testing.T, *ledgertest.Env)) {
	for name, f := range map[string]ledgertest.Factory{"sqlite": ledgertest.SQLite, "postgres": ledgertest.Postgres} {
		t.Run(name, func(t *testing.T) { test(t, ledgertest.NewEnv(t, f)) })
	}
}

// The pool and jobs of the pending tests.
const pendingSender, pendingCapability = "0x00000000000000000000000000000000000000aa", "echo"

var pendingPool = ledger.PoolKey{Sender: pendingSender, Capability: pendingCapability}.Ref()

func pendingJob(id string) ledger.JobKey { return ledger.JobKey{Sender: pendingSender, JobID: id} }

// wantAmount fails the test unless got is w wei.
func wantAmount(t *testing.T, what string, got ledger.Amount, w int64) {
	t.Helper()
	if got.Cmp(ledger.Wei(w)) != 0 {
		t.Fatalf("%s = %s, want %d", what, got, w)
	}
}

func testPending(t *testing.T, e *ledgertest.Env) {
	pool, job, capability := pendingPool, pendingJob, pendingCapability
	want := func(what string, got ledger.Amount, w int64) { t.Helper(); wantAmount(t, what, got, w) }
	open := func(id string, h *ledger.PendingHold) {
		t.Helper()
		if _, err := e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: job(id), Capability: capability, Reserve: h.Drawn()}); err != nil {
			t.Fatal(err)
		}
	}
	finish := func(id string, charge ledger.Amount) {
		t.Helper()
		if _, err := e.Ledger.FinishJob(e.Ctx, job(id), charge, charge, "charge:"+id); err != nil {
			t.Fatal(err)
		}
	}
	now := ledgertest.Epoch
	p := ledger.NewPending(e.Ledger)
	e.Credit(pool, 10000, "c1")
	if err := p.Sync(e.Ctx, pool, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	want("projected after sync", p.Projected(pool), 10000)

	// Three holds at once: the third finds nothing left to draw.
	h1, h2, h3 := p.Reserve(pool, ledger.Wei(6000)), p.Reserve(pool, ledger.Wei(6000)), p.Reserve(pool, ledger.Wei(100))
	want("h1 drawn", h1.Drawn(), 6000)
	want("h2 drawn", h2.Drawn(), 4000)
	want("h3 drawn", h3.Drawn(), 0)
	want("projected with three holds", p.Projected(pool), 0)
	open("h1", h1)
	open("h2", h2)
	if _, err := e.Ledger.Credit(e.Ctx, job("h1").Ref(), ledger.Wei(1000), "t1"); err != nil {
		t.Fatal(err)
	}

	// h1 answered: its release comes back before it is posted.
	charged, first := h1.Settle(ledger.Wei(1000), ledger.Amount{}, ledger.Wei(2500))
	want("h1 charged", charged, 2500)
	if !first {
		t.Fatal("h1's first settle reported as a repeat")
	}
	want("projected once h1 is answered", p.Projected(pool), 4500)
	if c, again := h1.Settle(ledger.Wei(1), ledger.Amount{}, ledger.Wei(1)); again || c.Cmp(ledger.Wei(2500)) != 0 {
		t.Fatalf("second settle: %s %v", c, again)
	}
	// h2 claims more than it holds: capped at its draw.
	charged, _ = h2.Settle(ledger.Amount{}, ledger.Amount{}, ledger.Wei(9999))
	want("h2 charged (capped)", charged, 4000)
	// h3 never began.
	if !h3.Cancel() || h3.Cancel() {
		t.Fatal("cancel: want true once, then false")
	}
	if c, ok := h3.Settle(ledger.Wei(5), ledger.Amount{}, ledger.Wei(5)); ok || !c.IsZero() {
		t.Fatalf("settle after cancel: %s %v", c, ok)
	}
	finish("h1", ledger.Wei(2500))
	h1.End(true)
	finish("h2", ledger.Wei(4000))
	h2.End(true)
	h3.End(false)
	want("projected", p.Projected(pool), 4500)
	want("ledger pool", e.Balance(pool), 4500)

	// A hold that never opened in the ledger: what its settle promised is
	// taken back.
	h4 := p.Reserve(pool, ledger.Wei(1000))
	h4.Settle(ledger.Wei(500), ledger.Amount{}, ledger.Wei(200))
	want("projected with h4 settled", p.Projected(pool), 4800)
	h4.End(false)
	h4.End(false)
	want("projected after h4", p.Projected(pool), 4500)

	// A payment the other side did not credit is written off before the
	// charge, which is capped at what is left.
	h5 := p.Reserve(pool, ledger.Wei(500))
	open("h5", h5)
	if _, err := e.Ledger.Credit(e.Ctx, job("h5").Ref(), ledger.Wei(1000), "t5"); err != nil {
		t.Fatal(err)
	}
	charged, _ = h5.Settle(ledger.Wei(1000), ledger.Wei(1000), ledger.Wei(700))
	want("h5 charged", charged, 500)
	if _, err := e.Ledger.Charge(e.Ctx, job("h5").Ref(), ledger.Wei(1000), ledger.Wei(1000), "off5"); err != nil {
		t.Fatal(err)
	}
	finish("h5", charged)
	h5.End(true)
	want("projected after h5", p.Projected(pool), 4000)
	want("ledger pool after h5", e.Balance(pool), 4000)

	// A write-down never takes the pool below zero; a failed one is
	// given back.
	took := p.WriteDown(pool, ledger.Wei(10000))
	want("write-down beyond the pool", took, 4000)
	p.Restore(pool, took)
	took = p.WriteDown(pool, ledger.Wei(1500))
	if _, err := e.Ledger.Charge(e.Ctx, pool, took, took, "wd"); err != nil {
		t.Fatal(err)
	}
	want("projected after the write-down", p.Projected(pool), 2500)
	want("ledger pool after the write-down", e.Balance(pool), 2500)

	// Others' writes (a sweeper's release) are read only when no hold is
	// pending.
	h6 := p.Reserve(pool, ledger.Wei(100))
	e.Credit(pool, 300, "c2")
	if err := p.Sync(e.Ctx, pool, now.Add(time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	want("projected while h6 is pending", p.Projected(pool), 2400)
	h6.End(false)
	if err := p.Sync(e.Ctx, pool, now.Add(time.Second), time.Minute); err != nil {
		t.Fatal(err)
	}
	want("projected, read recently", p.Projected(pool), 2500)
	p.Stale(pool)
	if err := p.Sync(e.Ctx, pool, now.Add(time.Second), time.Minute); err != nil {
		t.Fatal(err)
	}
	want("projected once read again", p.Projected(pool), 2800)
}

// A hold finished through FinishPendingJob is ended by the ledger once the
// write has committed — the caller does not End it — so the pool is read
// again from the ledger only with the write in it; a write that fails ends
// the hold too and has the pool read again; so does one whose caller
// stopped waiting, once the committer has run it. On both stores.
func TestFinishPendingJobEndsTheHold(t *testing.T) { onBothStores(t, testFinishPending) }

func testFinishPending(t *testing.T, e *ledgertest.Env) {
	pool, job, capability := pendingPool, pendingJob, pendingCapability
	want := func(what string, got ledger.Amount, w int64) { t.Helper(); wantAmount(t, what, got, w) }
	// reserve reserves and opens a hold in the ledger of p.
	reserve := func(l *ledger.Ledger, p *ledger.Pending, id string, limit int64) *ledger.PendingHold {
		t.Helper()
		h := p.Reserve(pool, ledger.Wei(limit))
		if _, err := l.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: job(id), Capability: capability, Reserve: h.Drawn()}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	// synced reads the pool again if no hold of it is pending (maxAge 0).
	synced := func(p *ledger.Pending, at time.Duration) ledger.Amount {
		t.Helper()
		if err := p.Sync(e.Ctx, pool, ledgertest.Epoch.Add(at), 0); err != nil {
			t.Fatal(err)
		}
		return p.Projected(pool)
	}
	e.Credit(pool, 1000, "c1")
	p := ledger.NewPending(e.Ledger)
	want("first read", synced(p, 0), 1000)

	// Committed: once FinishPendingJob returns the hold is ended, so the
	// next Sync reads the ledger (and sees a credit made meanwhile).
	h := reserve(e.Ledger, p, "j1", 600)
	h.Settle(ledger.Amount{}, ledger.Amount{}, ledger.Wei(200))
	if _, err := e.Ledger.FinishPendingJob(e.Ctx, h, job("j1"), ledger.Wei(200), ledger.Wei(200), "charge:j1"); err != nil {
		t.Fatal(err)
	}
	e.Credit(pool, 50, "c2")
	want("read after the committed finish", synced(p, time.Second), 850)
	want("ledger pool", e.Balance(pool), 850)

	// Refused (the job is closed already): ended all the same, and the
	// pool is read again even within its max age.
	h = p.Reserve(pool, ledger.Wei(100))
	h.Settle(ledger.Amount{}, ledger.Amount{}, ledger.Wei(100))
	_, err := e.Ledger.FinishPendingJob(e.Ctx, h, job("j1"), ledger.Wei(100), ledger.Wei(100), "charge:j1-again")
	ledgertest.WantErr(t, err, ledger.ErrJobClosed)
	if err := p.Sync(e.Ctx, pool, ledgertest.Epoch.Add(2*time.Second), time.Hour); err != nil {
		t.Fatal(err)
	}
	want("read again after a refused finish", p.Projected(pool), 850)

	// Not committed (the store's commit fails): the hold stays open in the
	// ledger until it expires; the pending hold is ended and the pool read
	// again, without the hold's draw.
	fs := &ledgertest.FailingCommits{Store: e.Store}
	l := ledger.New(fs, ledger.Options{Clock: e.Clock})
	defer l.Close()
	p = ledger.NewPending(l)
	want("read through the failing store", synced(p, 3*time.Second), 850)
	h = reserve(l, p, "j2", 300)
	h.Settle(ledger.Amount{}, ledger.Amount{}, ledger.Wei(100))
	want("projected with j2 answered", p.Projected(pool), 750)
	fs.Fail.Store(true)
	if _, err := l.FinishPendingJob(e.Ctx, h, job("j2"), ledger.Wei(100), ledger.Wei(100), "charge:j2"); err == nil {
		t.Fatal("a finish whose commit failed reported no error")
	}
	fs.Fail.Store(false)
	if err := p.Sync(e.Ctx, pool, ledgertest.Epoch.Add(4*time.Second), time.Hour); err != nil {
		t.Fatal(err)
	}
	want("read again after a failed commit", p.Projected(pool), 550)

	// The caller stops waiting: the committer still ends the hold once it
	// has run the write (Close drains the queue).
	h = reserve(l, p, "j3", 100)
	h.Settle(ledger.Amount{}, ledger.Amount{}, ledger.Wei(100))
	ctx, cancel := context.WithCancel(e.Ctx)
	cancel()
	l.FinishPendingJob(ctx, h, job("j3"), ledger.Wei(100), ledger.Wei(100), "charge:j3")
	l.Close()
	e.Credit(pool, 5, "c3")
	if got := synced(p, 5*time.Second); got.Cmp(e.Balance(pool)) != 0 {
		t.Fatalf("pool read after an abandoned finish = %s, ledger %s", got, e.Balance(pool))
	}
}
