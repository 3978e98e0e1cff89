package ledgertest

import (
	"testing"

	"byoc/ledger"
)

// upToTests are the conformance tests of FinishJobUpTo, run by Run.
var upToTests = []struct {
	name string
	fn   func(t *testing.T, e *Env)
}{
	{"FinishJobUpToNeverOverdraws", testFinishJobUpTo},
}

func wantCharged(t *testing.T, what string, got ledger.Amount, err error, want int64) {
	t.Helper()
	if err != nil || got.Cmp(ledger.Wei(want)) != 0 {
		t.Fatalf("%s charged %s (%v), want %d", what, got, err, want)
	}
}

func testFinishJobUpTo(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "fund")
	mustOpen(e, jobA1, 600, 0)
	r, err := e.Ledger.FinishJobUpTo(e.Ctx, jobA1, ledger.Wei(250), "use-1")
	wantCharged(t, "a finish the hold covers", r.Charged, err, 250)
	if r.State != ledger.StateClosed || r.Released.Cmp(ledger.Wei(350)) != 0 || r.PoolBalance.Cmp(ledger.Wei(750)) != 0 {
		t.Fatalf("finish = %+v", r)
	}
	// A charge beyond the hold takes the hold, no more, and closes the job.
	mustOpen(e, jobA2, 100, 0)
	r, err = e.Ledger.FinishJobUpTo(e.Ctx, jobA2, ledger.Wei(200), "use-2")
	wantCharged(t, "a finish beyond the hold", r.Charged, err, 100)
	if r.State != ledger.StateClosed || r.Released.Sign() != 0 || r.PoolBalance.Cmp(ledger.Wei(650)) != 0 {
		t.Fatalf("finish beyond the hold = %+v", r)
	}
	// A retry answers what the first call charged.
	r, err = e.Ledger.FinishJobUpTo(e.Ctx, jobA2, ledger.Wei(200), "use-2")
	wantCharged(t, "a retried finish", r.Charged, err, 100)
	if !r.Replayed {
		t.Fatalf("retried finish = %+v", r)
	}
	_, err = e.Ledger.FinishJobUpTo(e.Ctx, jobA2, ledger.Wei(1), "use-3")
	WantErr(t, err, ledger.ErrJobClosed)
	_, err = e.Ledger.FinishJobUpTo(e.Ctx, jobA2, ledger.Wei(200), "use-1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	// The key is bound to the kind of charge too: a plain charge of the
	// same amount under it is another operation.
	_, err = charge(e, jobA1.Ref(), 250, 0, "use-1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	s, err := e.Ledger.Statement(e.Ctx, jobA2.Ref(), 0)
	if err != nil || s.Charged.Cmp(ledger.Wei(100)) != 0 || s.Account.Balance.Sign() != 0 {
		t.Fatalf("statement of the finished job: charged %s balance %s (%v)", s.Charged, s.Account.Balance, err)
	}
	e.WantBalance(poolA.Ref(), 650)

	// A hold already in debt (a charge with grace) is charged nothing more;
	// its debt goes to the pool as any release.
	e.AllowDebt = true // that debt is made on purpose
	job3 := ledger.JobKey{Sender: jobA1.Sender, JobID: "job-3"}
	mustOpen(e, job3, 0, 0)
	e.Credit(job3.Ref(), 10, "pay3")
	if _, err := charge(e, job3.Ref(), 30, 20, "debt"); err != nil {
		t.Fatal(err)
	}
	r, err = e.Ledger.FinishJobUpTo(e.Ctx, job3, ledger.Wei(5), "more")
	wantCharged(t, "a finish of a hold in debt", r.Charged, err, 0)
	e.WantBalance(poolA.Ref(), 630)
}
