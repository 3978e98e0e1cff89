package ledgertest

import (
	"testing"
	"time"

	"byoc/ledger"
)

// openFinishTests are the conformance tests of OpenFinishPendingJob, run
// by Run.
var openFinishTests = []struct {
	name string
	fn   func(t *testing.T, e *Env)
}{
	{"OpenFinishPendingJobIsOpenThenFinish", testOpenFinishPendingJob},
}

func openReq(job ledger.JobKey, reserve int64) ledger.OpenJobRequest {
	return ledger.OpenJobRequest{Job: job, Capability: poolA.Capability, Reserve: ledger.Wei(reserve), TTL: time.Minute}
}

// entryShape is what of an entry does not depend on when or in which
// account it was written.
type entryShape struct {
	kind          ledger.EntryKind
	amount, after string
}

func shapes(t *testing.T, e *Env, job ledger.JobKey) []entryShape {
	t.Helper()
	s, err := e.Ledger.Statement(e.Ctx, job.Ref(), 0)
	if err != nil {
		t.Fatalf("statement of %s: %v", job.JobID, err)
	}
	var out []entryShape
	for _, en := range s.Entries {
		out = append(out, entryShape{en.Kind, en.Amount.String(), en.BalanceAfter.String()})
	}
	return out
}

func testOpenFinishPendingJob(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "fund")
	p := ledger.NewPending(e.Ledger)
	if err := p.Sync(e.Ctx, poolA.Ref(), e.Clock.Now(), 0); err != nil {
		t.Fatal(err)
	}
	h := p.Reserve(poolA.Ref(), ledger.Wei(300))
	h.Settle(ledger.Amount{}, ledger.Amount{}, ledger.Wei(120))
	// Nothing is in the ledger while the work runs.
	e.WantBalance(poolA.Ref(), 1000)
	r, err := e.Ledger.OpenFinishPendingJob(e.Ctx, h, openReq(jobA1, 300), ledger.Wei(120), ledger.Wei(120), "charge-1")
	wantCharged(t, "open and finish", r.Charged, err, 120)
	if r.State != ledger.StateClosed || r.Released.Cmp(ledger.Wei(180)) != 0 || r.PoolBalance.Cmp(ledger.Wei(880)) != 0 {
		t.Fatalf("open and finish = %+v", r)
	}
	e.WantBalance(poolA.Ref(), 880)
	// The pending hold ended when the write committed: the pool is read
	// from the ledger again, and picks up what others did.
	e.Credit(poolA.Ref(), 5, "more")
	e.Clock.Advance(time.Second)
	if err := p.Sync(e.Ctx, poolA.Ref(), e.Clock.Now(), 0); err != nil {
		t.Fatal(err)
	}
	if got := p.Projected(poolA.Ref()); got.Cmp(ledger.Wei(885)) != 0 {
		t.Fatalf("projection after the hold ended = %s, want 885 (read again)", got)
	}

	// The same accounts and entries as OpenJob then FinishJob.
	mustOpen(e, jobA2, 300, 0)
	if _, err := e.Ledger.FinishJob(e.Ctx, jobA2, ledger.Wei(120), ledger.Wei(120), "charge-2"); err != nil {
		t.Fatal(err)
	}
	one, two := shapes(t, e, jobA1), shapes(t, e, jobA2)
	if len(one) != 3 || len(one) != len(two) {
		t.Fatalf("entries: %v, OpenJob+FinishJob: %v", one, two)
	}
	for i := range one {
		if one[i] != two[i] {
			t.Fatalf("entries: %v, OpenJob+FinishJob: %v", one, two)
		}
	}
	e.WantBalance(poolA.Ref(), 765)

	// A retry under the same key answers the first; the job ID is not
	// used again under another key, nor with no charge.
	r, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(jobA1, 300), ledger.Wei(120), ledger.Wei(120), "charge-1")
	wantCharged(t, "a retry", r.Charged, err, 120)
	if !r.Replayed {
		t.Fatalf("retry = %+v", r)
	}
	_, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(jobA1, 300), ledger.Wei(10), ledger.Wei(10), "charge-other")
	WantErr(t, err, ledger.ErrJobClosed)
	_, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(jobA1, 300), ledger.Amount{}, ledger.Amount{}, "")
	WantErr(t, err, ledger.ErrJobClosed)
	_, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(jobA1, 300), ledger.Wei(121), ledger.Wei(121), "charge-1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	e.WantBalance(poolA.Ref(), 765)

	// A job open already is refused, and stays as it was.
	job3 := ledger.JobKey{Sender: jobA1.Sender, JobID: "job-3"}
	mustOpen(e, job3, 50, 0)
	_, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(job3, 50), ledger.Wei(10), ledger.Wei(10), "charge-3")
	WantErr(t, err, ledger.ErrJobExists)
	e.WantBalance(job3.Ref(), 50)
	e.WantBalance(poolA.Ref(), 715)

	// A charge beyond the draw: the hold goes below zero within grace and
	// the pool covers it when it closes; beyond grace nothing happens.
	job4 := ledger.JobKey{Sender: jobA1.Sender, JobID: "job-4"}
	_, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(job4, 10), ledger.Wei(30), ledger.Amount{}, "charge-4")
	WantErr(t, err, ledger.ErrInsufficientFunds)
	if _, err := e.Ledger.Statement(e.Ctx, job4.Ref(), 0); err == nil {
		t.Fatal("a refused open and finish left its job behind")
	}
	r, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(job4, 10), ledger.Wei(30), ledger.Wei(30), "charge-4")
	wantCharged(t, "a charge beyond the draw", r.Charged, err, 30)
	if r.Released.Cmp(ledger.Wei(-20)) != 0 {
		t.Fatalf("charge beyond the draw = %+v", r)
	}
	e.WantBalance(poolA.Ref(), 685)

	// No charge: open and release, no key needed.
	job5 := ledger.JobKey{Sender: jobA1.Sender, JobID: "job-5"}
	r, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(job5, 40), ledger.Amount{}, ledger.Amount{}, "")
	wantCharged(t, "no charge", r.Charged, err, 0)
	if r.State != ledger.StateClosed || r.Released.Cmp(ledger.Wei(40)) != 0 {
		t.Fatalf("no charge = %+v", r)
	}
	_, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(ledger.JobKey{Sender: jobA1.Sender, JobID: "job-6"}, 40), ledger.Wei(1), ledger.Wei(1), "")
	WantErr(t, err, ledger.ErrInvalidInput)

	// A refused write ends the pending hold all the same.
	h = p.Reserve(poolA.Ref(), ledger.Wei(10))
	h.Settle(ledger.Amount{}, ledger.Amount{}, ledger.Wei(5))
	_, err = e.Ledger.OpenFinishPendingJob(e.Ctx, h, openReq(job3, 10), ledger.Wei(5), ledger.Wei(5), "charge-3b")
	WantErr(t, err, ledger.ErrJobExists)
	if err := p.Sync(e.Ctx, poolA.Ref(), e.Clock.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := p.Projected(poolA.Ref()); got.Cmp(ledger.Wei(685)) != 0 {
		t.Fatalf("projection after a refused write = %s, want 685 (read again)", got)
	}

	// It all survives a restart, idempotency included.
	e.Restart()
	e.WantBalance(poolA.Ref(), 685)
	r, err = e.Ledger.OpenFinishPendingJob(e.Ctx, nil, openReq(job4, 10), ledger.Wei(30), ledger.Wei(30), "charge-4")
	wantCharged(t, "a retry after a restart", r.Charged, err, 30)
	if !r.Replayed {
		t.Fatalf("retry after restart = %+v", r)
	}
	e.WantBalance(poolA.Ref(), 685)
}
