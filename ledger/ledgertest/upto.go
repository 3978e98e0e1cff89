package ledgertest

import (
	"testing"

	"byoc/ledger"
)

// upToTests are the conformance tests of ChargeUpTo and FinishJobUpTo, run by Run.
var upToTests = []struct {
	name string
	fn   func(t *testing.T, e *Env)
}{
	{"ChargeUpToNeverOverdraws", testChargeUpTo},
	{"FinishJobUpToNeverOverdraws", testFinishJobUpTo},
}

func chargeUpTo(e *Env, ref ledger.Ref, amount int64, key string) (ledger.ChargeResult, error) {
	return e.Ledger.ChargeUpTo(e.Ctx, ref, ledger.Wei(amount), key)
}

func wantCharged(t *testing.T, what string, got ledger.Amount, err error, want int64) {
	t.Helper()
	if err != nil || got.Cmp(ledger.Wei(want)) != 0 {
		t.Fatalf("%s charged %s (%v), want %d", what, got, err, want)
	}
}

func testChargeUpTo(t *testing.T, e *Env) {
	mustOpen(e, jobA1, 0, 0)
	e.Credit(jobA1.Ref(), 100, "pay")
	r, err := chargeUpTo(e, jobA1.Ref(), 60, "c1")
	wantCharged(t, "a charge the hold covers", r.Charged, err, 60)
	r, err = chargeUpTo(e, jobA1.Ref(), 60, "c2")
	wantCharged(t, "a charge beyond the hold", r.Charged, err, 40)
	e.WantBalance(jobA1.Ref(), 0)
	// A retry answers what the first call charged, and charges nothing more.
	r, err = chargeUpTo(e, jobA1.Ref(), 60, "c2")
	wantCharged(t, "a retry", r.Charged, err, 40)
	if !r.Replayed || r.Balance.Sign() != 0 {
		t.Fatalf("retried charge = %+v", r)
	}
	r, err = chargeUpTo(e, jobA1.Ref(), 10, "c3")
	wantCharged(t, "a charge on an empty hold", r.Charged, err, 0)
	// The key is bound to the amount asked and to the kind of charge.
	_, err = chargeUpTo(e, jobA1.Ref(), 61, "c2")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	_, err = charge(e, jobA1.Ref(), 60, 0, "c1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	e.WantBalance(jobA1.Ref(), 0)

	// A hold already in debt (a charge with grace) is charged nothing more.
	e.AllowDebt = true // that debt is made on purpose
	mustOpen(e, jobA2, 0, 0)
	e.Credit(jobA2.Ref(), 10, "pay2")
	if _, err := charge(e, jobA2.Ref(), 30, 20, "debt"); err != nil {
		t.Fatal(err)
	}
	r, err = chargeUpTo(e, jobA2.Ref(), 5, "more")
	wantCharged(t, "a charge on a hold in debt", r.Charged, err, 0)
	e.WantBalance(jobA2.Ref(), -20)

	// A pool (a legacy request) is charged at most what it holds.
	pool := ledger.PoolKey{Sender: "0xbbbb", Capability: "echo"}.Ref()
	_, err = chargeUpTo(e, pool, 1, "p0")
	WantErr(t, err, ledger.ErrNotFound)
	e.Credit(pool, 1000, "fund")
	r, err = chargeUpTo(e, pool, 1500, "p1")
	wantCharged(t, "a pool charge beyond the pool", r.Charged, err, 1000)
	e.WantBalance(pool, 0)

	// Bad input and closed jobs change nothing.
	_, err = e.Ledger.ChargeUpTo(e.Ctx, jobA1.Ref(), ledger.Wei(-1), "neg")
	WantErr(t, err, ledger.ErrInvalidInput)
	_, err = chargeUpTo(e, jobA1.Ref(), 1, "")
	WantErr(t, err, ledger.ErrInvalidInput)
	if _, err := e.Ledger.CloseJob(e.Ctx, jobA1); err != nil {
		t.Fatal(err)
	}
	_, err = chargeUpTo(e, jobA1.Ref(), 1, "late")
	WantErr(t, err, ledger.ErrJobClosed)
	s, err := e.Ledger.Statement(e.Ctx, jobA1.Ref(), 0)
	if err != nil || s.Charged.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("statement charged %s (%v), want the 100 held", s.Charged, err)
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
	s, err := e.Ledger.Statement(e.Ctx, jobA2.Ref(), 0)
	if err != nil || s.Charged.Cmp(ledger.Wei(100)) != 0 || s.Account.Balance.Sign() != 0 {
		t.Fatalf("statement of the finished job: charged %s balance %s (%v)", s.Charged, s.Account.Balance, err)
	}
	e.WantBalance(poolA.Ref(), 650)
}
