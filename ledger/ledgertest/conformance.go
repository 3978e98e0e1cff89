package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/ledger"
)

// Run runs the conformance suite against stores made by f. Every test ends
// with a sweep and a full invariant check.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *Env)
	}{
		{"CreditPoolIdempotent", testCreditPoolIdempotent},
		{"CreditJob", testCreditJob},
		{"OpenJobDrawsFromPool", testOpenJobDrawsFromPool},
		{"OpenJobBelowMinimumChangesNothing", testOpenJobBelowMinimum},
		{"OpenJobTopUpAndMismatch", testOpenJobTopUpAndMismatch},
		{"ChargeGrace", testChargeGrace},
		{"ChargeIdempotent", testChargeIdempotent},
		{"LegacyPoolCharge", testLegacyPoolCharge},
		{"CloseReleasesRemainder", testCloseReleasesRemainder},
		{"CloseDeficitCoveredByPool", testCloseDeficit},
		{"VerifyNamesNegativeBalances", testVerifyNegative},
		{"SenderScoping", testSenderScoping},
		{"CustomerPoolsSeparate", testCustomerPools},
		{"ExpiryReleasesIdleHold", testExpiry},
		{"ActivityExtendsTTL", testActivityExtendsTTL},
		{"Statements", testStatements},
		{"LongStatement", testLongStatement},
		{"BadInputChangesNothing", testBadInput},
		{"Overflow", testOverflow},
		{"SurvivesRestart", testSurvivesRestart},
		{"ConcurrentMixedLoad", testConcurrent},
		{"ConcurrentAdmissionNeverOverdraws", testConcurrentAdmission},
		{"ReplaysAmongNewKeysInBatches", testReplaysInBatches},
		{"RandomizedAgainstModel", testModel},
	}
	tests = append(tests, paymentTests...)
	tests = append(tests, upToTests...)
	tests = append(tests, openFinishTests...)
	tests = append(tests, archiveTests...)
	tests = append(tests, outboxTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, NewEnv(t, f))
		})
	}
}

var (
	poolA = ledger.PoolKey{Sender: "0xaaaa", Capability: "echo"}
	jobA1 = ledger.JobKey{Sender: "0xaaaa", JobID: "job-1"}
	jobA2 = ledger.JobKey{Sender: "0xaaaa", JobID: "job-2"}
)

func open(e *Env, job ledger.JobKey, reserve, minimum int64) (ledger.OpenJobResult, error) {
	return e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: job, Capability: poolA.Capability,
		Reserve: ledger.Wei(reserve), Minimum: ledger.Wei(minimum), TTL: time.Minute})
}

func mustOpen(e *Env, job ledger.JobKey, reserve, minimum int64) ledger.OpenJobResult {
	e.T.Helper()
	r, err := open(e, job, reserve, minimum)
	if err != nil {
		e.T.Fatalf("open %s: %v", job.JobID, err)
	}
	return r
}

func charge(e *Env, ref ledger.Ref, amount, grace int64, key string) (ledger.ChargeResult, error) {
	return e.Ledger.Charge(e.Ctx, ref, ledger.Wei(amount), ledger.Wei(grace), key)
}

func testCreditPoolIdempotent(t *testing.T, e *Env) {
	r := e.Credit(poolA.Ref(), 1000, "t1")
	if r.Balance.Cmp(ledger.Wei(1000)) != 0 || r.Replayed {
		t.Fatalf("first credit = %+v", r)
	}
	e.Credit(poolA.Ref(), 500, "t2")
	r = e.Credit(poolA.Ref(), 1000, "t1")
	if !r.Replayed || r.Balance.Cmp(ledger.Wei(1000)) != 0 {
		t.Fatalf("replayed credit = %+v, want replayed with original balance 1000", r)
	}
	e.WantBalance(poolA.Ref(), 1500)
	_, err := e.Ledger.Credit(e.Ctx, poolA.Ref(), ledger.Wei(999), "t1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	other := ledger.PoolKey{Sender: "0xaaaa", Capability: "other"}
	_, err = e.Ledger.Credit(e.Ctx, other.Ref(), ledger.Wei(1000), "t1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	e.WantBalance(poolA.Ref(), 1500)
	e.WantBalance(other.Ref(), 0)
}

func testCreditJob(t *testing.T, e *Env) {
	_, err := e.Ledger.Credit(e.Ctx, jobA1.Ref(), ledger.Wei(10), "k")
	WantErr(t, err, ledger.ErrNotFound)
	mustOpen(e, jobA1, 0, 0)
	e.Credit(jobA1.Ref(), 700, "k")
	e.WantBalance(jobA1.Ref(), 700)
	if _, err := e.Ledger.CloseJob(e.Ctx, jobA1); err != nil {
		t.Fatal(err)
	}
	_, err = e.Ledger.Credit(e.Ctx, jobA1.Ref(), ledger.Wei(10), "k2")
	WantErr(t, err, ledger.ErrJobClosed)
	// The replay of a credit that landed before the close still reports it.
	if r := e.Credit(jobA1.Ref(), 700, "k"); !r.Replayed {
		t.Fatalf("replay after close = %+v", r)
	}
	e.WantBalance(poolA.Ref(), 700)
}

func testOpenJobDrawsFromPool(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	r := mustOpen(e, jobA1, 600, 100)
	if !r.Created || r.Drawn.Cmp(ledger.Wei(600)) != 0 || r.Balance.Cmp(ledger.Wei(600)) != 0 || r.PoolBalance.Cmp(ledger.Wei(400)) != 0 {
		t.Fatalf("open = %+v", r)
	}
	// The second job gets what is left.
	r = mustOpen(e, jobA2, 600, 100)
	if r.Drawn.Cmp(ledger.Wei(400)) != 0 || r.PoolBalance.Sign() != 0 {
		t.Fatalf("second open = %+v", r)
	}
}

func testOpenJobBelowMinimum(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 50, "p")
	_, err := open(e, jobA1, 600, 100)
	WantErr(t, err, ledger.ErrInsufficientFunds)
	e.WantBalance(poolA.Ref(), 50)
	_, err = e.Ledger.Account(e.Ctx, jobA1.Ref())
	WantErr(t, err, ledger.ErrNotFound)
	// A job on a pool never seen does not create the pool either.
	fresh := ledger.JobKey{Sender: "0xnew", JobID: "j"}
	_, err = e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: fresh, Capability: "echo", Minimum: ledger.Wei(1)})
	WantErr(t, err, ledger.ErrInsufficientFunds)
	if as, _ := e.Ledger.List(e.Ctx, ledger.AccountFilter{Sender: "0xnew"}); len(as) != 0 {
		t.Fatalf("failed open left accounts: %+v", as)
	}
}

func testOpenJobTopUpAndMismatch(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	mustOpen(e, jobA1, 300, 0)
	e.Credit(jobA1.Ref(), 100, "pay")
	r := mustOpen(e, jobA1, 500, 500)
	if r.Created || r.Drawn.Cmp(ledger.Wei(100)) != 0 || r.Balance.Cmp(ledger.Wei(500)) != 0 {
		t.Fatalf("top-up = %+v", r)
	}
	_, err := e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: jobA1, Capability: "other"})
	WantErr(t, err, ledger.ErrJobMismatch)
	_, err = e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: jobA1, Capability: "echo", Customer: "c1"})
	WantErr(t, err, ledger.ErrJobMismatch)
	e.Ledger.CloseJob(e.Ctx, jobA1)
	_, err = open(e, jobA1, 0, 0)
	WantErr(t, err, ledger.ErrJobClosed)
}

func testChargeGrace(t *testing.T, e *Env) {
	e.AllowDebt = true // the job ends 20 in debt, and so its pool once swept
	mustOpen(e, jobA1, 0, 0)
	e.Credit(jobA1.Ref(), 100, "pay")
	if _, err := charge(e, jobA1.Ref(), 60, 0, "c1"); err != nil {
		t.Fatal(err)
	}
	_, err := charge(e, jobA1.Ref(), 60, 0, "c2")
	WantErr(t, err, ledger.ErrInsufficientFunds)
	e.WantBalance(jobA1.Ref(), 40)
	r, err := charge(e, jobA1.Ref(), 60, 20, "c2")
	if err != nil || r.Balance.Cmp(ledger.Wei(-20)) != 0 {
		t.Fatalf("charge into grace = %+v, %v", r, err)
	}
	_, err = charge(e, jobA1.Ref(), 1, 20, "c3")
	WantErr(t, err, ledger.ErrInsufficientFunds)
	e.WantBalance(jobA1.Ref(), -20)
}

func testChargeIdempotent(t *testing.T, e *Env) {
	mustOpen(e, jobA1, 0, 0)
	e.Credit(jobA1.Ref(), 100, "pay")
	r1, err := charge(e, jobA1.Ref(), 30, 0, "tick-1")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := charge(e, jobA1.Ref(), 30, 0, "tick-1")
	if err != nil || !r2.Replayed || r2.Balance.Cmp(r1.Balance) != 0 {
		t.Fatalf("replayed charge = %+v, %v", r2, err)
	}
	_, err = charge(e, jobA1.Ref(), 31, 0, "tick-1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	// A charge key cannot be reused as a credit key either.
	_, err = e.Ledger.Credit(e.Ctx, jobA1.Ref(), ledger.Wei(30), "tick-1")
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	e.WantBalance(jobA1.Ref(), 70)
}

func testLegacyPoolCharge(t *testing.T, e *Env) {
	_, err := charge(e, poolA.Ref(), 1, 0, "c0")
	WantErr(t, err, ledger.ErrNotFound)
	e.Credit(poolA.Ref(), 1000, "p")
	if _, err := charge(e, poolA.Ref(), 400, 0, "c1"); err != nil {
		t.Fatal(err)
	}
	e.WantBalance(poolA.Ref(), 600)
	_, err = charge(e, poolA.Ref(), 700, 0, "c2")
	WantErr(t, err, ledger.ErrInsufficientFunds)
	e.WantBalance(poolA.Ref(), 600)
}

func testCloseReleasesRemainder(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	mustOpen(e, jobA1, 600, 0)
	e.Credit(jobA1.Ref(), 50, "pay")
	charge(e, jobA1.Ref(), 150, 0, "c")
	r, err := e.Ledger.CloseJob(e.Ctx, jobA1)
	if err != nil || r.State != ledger.StateClosed || r.Released.Cmp(ledger.Wei(500)) != 0 || r.PoolBalance.Cmp(ledger.Wei(900)) != 0 {
		t.Fatalf("close = %+v, %v", r, err)
	}
	e.WantBalance(jobA1.Ref(), 0)
	r, err = e.Ledger.CloseJob(e.Ctx, jobA1)
	if err != nil || !r.Replayed || r.Released.Sign() != 0 {
		t.Fatalf("second close = %+v, %v", r, err)
	}
	e.WantBalance(poolA.Ref(), 900)
	_, err = charge(e, jobA1.Ref(), 1, 100, "late")
	WantErr(t, err, ledger.ErrJobClosed)
}

func testCloseDeficit(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 100, "p")
	mustOpen(e, jobA1, 0, 0)
	if _, err := charge(e, jobA1.Ref(), 30, 50, "c"); err != nil {
		t.Fatal(err)
	}
	r, err := e.Ledger.CloseJob(e.Ctx, jobA1)
	if err != nil || r.Released.Cmp(ledger.Wei(-30)) != 0 || r.PoolBalance.Cmp(ledger.Wei(70)) != 0 {
		t.Fatalf("close with deficit = %+v, %v", r, err)
	}
	s, err := e.Ledger.Statement(e.Ctx, jobA1.Ref(), 0)
	if err != nil || s.Released.Cmp(ledger.Wei(-30)) != 0 {
		t.Fatalf("statement released = %s, %v", s.Released, err)
	}
}

// A pool or an open hold below zero (grace allows both) is money charged
// beyond what was paid: Verify names each, with its balance, unless told to
// allow debt; a closed hold's deficit shows on its pool.
func testVerifyNegative(t *testing.T, e *Env) {
	poolB := ledger.PoolKey{Sender: "0xbbbb", Capability: "echo"}
	e.Credit(poolA.Ref(), 100, "pa")
	e.Credit(poolB.Ref(), 100, "pb")
	if _, err := charge(e, poolA.Ref(), 140, 40, "ca"); err != nil { // pool A: −40
		t.Fatal(err)
	}
	mustOpen(e, jobA1, 0, 0)
	if _, err := charge(e, jobA1.Ref(), 7, 7, "cj"); err != nil { // open hold: −7
		t.Fatal(err)
	}
	mustOpen(e, jobA2, 0, 0) // at 0: fine
	jobB := ledger.JobKey{Sender: "0xbbbb", JobID: "job-b"}
	mustOpen(e, jobB, 50, 0)
	if _, err := e.Ledger.FinishJob(e.Ctx, jobB, ledger.Wei(80), ledger.Wei(30), "cb"); err != nil { // pool B: 100 − 80 = 20
		t.Fatal(err)
	}
	r, err := ledger.Verify(e.Ctx, e.Store, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{poolA.Ref().String() + " (id ", "negative pool balance -40", jobA1.Ref().String() + " (id ", "negative balance -7"}
	if len(r.Problems) != 2 || !strings.Contains(r.Problems[0]+r.Problems[1], want[0]) {
		t.Fatalf("problems %q: want pool A at -40 and job-1 at -7 named", r.Problems)
	}
	all := strings.Join(r.Problems, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("problems %q do not say %q", r.Problems, w)
		}
	}
	if r, err := ledger.Verify(e.Ctx, e.Store, ledger.VerifyOptions{AllowDebt: true}); err != nil || !r.OK() {
		t.Errorf("allowing debt: %v %v", r.Problems, err)
	}
	// Closing the hold moves its deficit to pool A; crediting the pool
	// clears it.
	if _, err := e.Ledger.CloseJob(e.Ctx, jobA1); err != nil {
		t.Fatal(err)
	}
	r, _ = ledger.Verify(e.Ctx, e.Store, ledger.VerifyOptions{})
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "negative pool balance -47") {
		t.Errorf("after close: %q", r.Problems)
	}
	e.Credit(poolA.Ref(), 47, "repay")
	if r, err := ledger.Verify(e.Ctx, e.Store, ledger.VerifyOptions{}); err != nil || !r.OK() {
		t.Errorf("repaid: %v %v", r.Problems, err)
	}
}

func testSenderScoping(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	mustOpen(e, jobA1, 500, 0)
	thief := ledger.JobKey{Sender: "0xbbbb", JobID: jobA1.JobID}
	_, err := e.Ledger.CloseJob(e.Ctx, thief)
	WantErr(t, err, ledger.ErrNotFound)
	_, err = charge(e, thief.Ref(), 1, 0, "steal")
	WantErr(t, err, ledger.ErrNotFound)
	_, err = e.Ledger.Credit(e.Ctx, thief.Ref(), ledger.Wei(1), "x")
	WantErr(t, err, ledger.ErrNotFound)
	_, err = e.Ledger.Account(e.Ctx, thief.Ref())
	WantErr(t, err, ledger.ErrNotFound)
	// B opening "job-1" gets its own job on its own (empty) pool.
	r, err := e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: thief, Capability: "echo", Reserve: ledger.Wei(500)})
	if err != nil || r.Drawn.Sign() != 0 {
		t.Fatalf("B's open = %+v, %v", r, err)
	}
	e.WantBalance(jobA1.Ref(), 500)
}

func testCustomerPools(t *testing.T, e *Env) {
	c1 := ledger.PoolKey{Sender: "0xsigner", Capability: "echo", Customer: "alice"}
	c2 := ledger.PoolKey{Sender: "0xsigner", Capability: "echo", Customer: "bob"}
	e.Credit(c1.Ref(), 100, "a")
	e.Credit(c2.Ref(), 200, "b")
	j := ledger.JobKey{Sender: "0xsigner", JobID: "alice-job"}
	r, err := e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: j, Capability: "echo", Customer: "alice", Reserve: ledger.Wei(150)})
	if err != nil || r.Drawn.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("open = %+v, %v", r, err)
	}
	e.WantBalance(c2.Ref(), 200)
	e.WantBalance(ledger.PoolKey{Sender: "0xsigner", Capability: "echo"}.Ref(), 0)
}

func testExpiry(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	mustOpen(e, jobA1, 400, 0)
	e.Credit(jobA1.Ref(), 100, "pay")
	var next time.Time
	var open bool
	e.Store.View(e.Ctx, func(tx ledger.ReadTx) (err error) { next, open, err = tx.NextExpiry(e.Ctx); return err })
	if !open || !next.Equal(e.Clock.Now().Add(time.Minute)) {
		t.Fatalf("next expiry %s (%v), want %s", next, open, e.Clock.Now().Add(time.Minute))
	}
	e.Clock.Advance(59 * time.Second)
	if n, err := e.Ledger.ExpireJobs(e.Ctx); err != nil || n != 0 {
		t.Fatalf("early sweep expired %d, %v", n, err)
	}
	e.Clock.Advance(time.Second)
	_, err := charge(e, jobA1.Ref(), 1, 0, "late")
	WantErr(t, err, ledger.ErrJobExpired)
	_, err = e.Ledger.Credit(e.Ctx, jobA1.Ref(), ledger.Wei(1), "late2")
	WantErr(t, err, ledger.ErrJobExpired)
	n, err := e.Ledger.ExpireJobs(e.Ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep expired %d, %v", n, err)
	}
	e.WantBalance(poolA.Ref(), 1100)
	a, _ := e.Ledger.Account(e.Ctx, jobA1.Ref())
	if a.State != ledger.StateExpired || !a.Balance.IsZero() {
		t.Fatalf("expired job = %+v", a)
	}
	if n, _ := e.Ledger.ExpireJobs(e.Ctx); n != 0 {
		t.Fatalf("second sweep expired %d", n)
	}
	e.Store.View(e.Ctx, func(tx ledger.ReadTx) (err error) { _, open, err = tx.NextExpiry(e.Ctx); return err })
	if open {
		t.Fatal("next expiry reported with no open job")
	}
	// The next job spends the carried-over credit.
	if r := mustOpen(e, jobA2, 1100, 1100); r.Drawn.Cmp(ledger.Wei(1100)) != 0 {
		t.Fatalf("next job drew %s", r.Drawn)
	}
}

func testActivityExtendsTTL(t *testing.T, e *Env) {
	mustOpen(e, jobA1, 0, 0)
	e.Credit(jobA1.Ref(), 100, "pay")
	for i := range 5 {
		e.Clock.Advance(50 * time.Second)
		if _, err := charge(e, jobA1.Ref(), 1, 0, fmt.Sprintf("tick-%d", i)); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
	}
	if n, _ := e.Ledger.ExpireJobs(e.Ctx); n != 0 {
		t.Fatalf("active job expired")
	}
	e.WantBalance(jobA1.Ref(), 95)
}

func testStatements(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	opened := e.Clock.Now()
	mustOpen(e, jobA1, 300, 0)
	e.Credit(jobA1.Ref(), 40, "pay")
	charge(e, jobA1.Ref(), 70, 0, "c1")
	charge(e, jobA1.Ref(), 20, 0, "c2")
	e.Clock.Advance(3 * time.Second)
	e.Ledger.CloseJob(e.Ctx, jobA1)
	s, err := e.Ledger.Statement(e.Ctx, jobA1.Ref(), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]ledger.Amount{
		"credited": {s.Credited, ledger.Wei(40)}, "charged": {s.Charged, ledger.Wei(90)},
		"drawn": {s.Drawn, ledger.Wei(300)}, "released": {s.Released, ledger.Wei(250)},
	}
	for k, v := range want {
		if v[0].Cmp(v[1]) != 0 {
			t.Errorf("statement %s = %s, want %s", k, v[0], v[1])
		}
	}
	if !s.Opened.Equal(opened) || !s.Closed.Equal(opened.Add(3*time.Second)) || len(s.Entries) != 5 {
		t.Errorf("statement opened %s closed %s entries %d", s.Opened, s.Closed, len(s.Entries))
	}
	if s.Pool == nil || s.Pool.Balance.Cmp(ledger.Wei(950)) != 0 {
		t.Errorf("statement pool = %+v", s.Pool)
	}
	ps, err := e.Ledger.Statement(e.Ctx, poolA.Ref(), 2)
	if err != nil || ps.Drawn.Cmp(ledger.Wei(300)) != 0 || ps.Released.Cmp(ledger.Wei(250)) != 0 ||
		ps.Credited.Cmp(ledger.Wei(1000)) != 0 || len(ps.Entries) != 2 || !ps.Truncated {
		t.Errorf("pool statement = %+v, %v", ps, err)
	}
	// Newest lists the most recent accounts first; Limit keeps those.
	mustOpen(e, jobA2, 100, 0)
	if as, err := e.Ledger.List(e.Ctx, ledger.AccountFilter{Kind: ledger.KindJob, Newest: true, Limit: 1}); err != nil || len(as) != 1 || as[0].Ref != jobA2.Ref() {
		t.Errorf("newest job = %+v, %v; want %s", as, err, jobA2.JobID)
	}
	if as, err := e.Ledger.List(e.Ctx, ledger.AccountFilter{Kind: ledger.KindJob, Newest: true}); err != nil || len(as) != 2 || as[1].Ref != jobA1.Ref() {
		t.Errorf("jobs newest first = %+v, %v", as, err)
	}
}

// A pool with more entries than Statement reads at a time: the totals
// cover every entry, and only the last limit entries are returned.
func testLongStatement(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1_000_000, "p")
	const jobs = 700 // a reserve and a release each: 1,401 pool entries
	var wg sync.WaitGroup
	errs := make(chan error, jobs)
	for g := range 20 {
		wg.Go(func() {
			for i := g; i < jobs; i += 20 {
				job := ledger.JobKey{Sender: poolA.Sender, JobID: fmt.Sprintf("long-%d", i)}
				if _, err := open(e, job, 30, 0); err != nil {
					errs <- err
					return
				}
				if _, err := e.Ledger.FinishJob(e.Ctx, job, ledger.Wei(10), ledger.Amount{}, "long-charge-"+job.JobID); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := e.Ledger.Statement(e.Ctx, poolA.Ref(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Entries) != 2*jobs+1 || all.Truncated || all.Drawn.Cmp(ledger.Wei(30*jobs)) != 0 || all.Released.Cmp(ledger.Wei(20*jobs)) != 0 {
		t.Fatalf("full statement: %d entries (truncated %v), drawn %s, released %s", len(all.Entries), all.Truncated, all.Drawn, all.Released)
	}
	last, err := e.Ledger.Statement(e.Ctx, poolA.Ref(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !last.Truncated || last.Drawn.Cmp(all.Drawn) != 0 || last.Released.Cmp(all.Released) != 0 || len(last.Entries) != 10 {
		t.Fatalf("limited statement: %d entries (truncated %v), drawn %s, released %s", len(last.Entries), last.Truncated, last.Drawn, last.Released)
	}
	for i, en := range last.Entries {
		if en.ID != all.Entries[len(all.Entries)-10+i].ID {
			t.Fatalf("entry %d of the limited statement is %d, want the full statement's %d", i, en.ID, all.Entries[len(all.Entries)-10+i].ID)
		}
	}
}

func testBadInput(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	mustOpen(e, jobA1, 100, 0)
	before := e.MustVerify()
	huge := ledger.AmountFromBig(new(big.Int).Lsh(big.NewInt(1), 256))
	cases := map[string]error{}
	try := func(name string, err error) { cases[name] = err }
	_, err := e.Ledger.Credit(e.Ctx, poolA.Ref(), ledger.Wei(-1), "neg")
	try("negative credit", err)
	_, err = e.Ledger.Credit(e.Ctx, poolA.Ref(), huge, "huge")
	try("credit above 2^256-1", err)
	_, err = e.Ledger.Credit(e.Ctx, poolA.Ref(), ledger.Wei(1), "")
	try("empty key", err)
	_, err = e.Ledger.Credit(e.Ctx, poolA.Ref(), ledger.Wei(1), strings.Repeat("k", ledger.MaxKeyBytes+1))
	try("oversized key", err)
	_, err = e.Ledger.Credit(e.Ctx, ledger.PoolKey{Sender: "0xaaaa", Capability: "ec\nho"}.Ref(), ledger.Wei(1), "ctl")
	try("control character", err)
	_, err = e.Ledger.Credit(e.Ctx, ledger.PoolKey{Sender: "", Capability: "echo"}.Ref(), ledger.Wei(1), "nosender")
	try("empty sender", err)
	_, err = e.Ledger.Credit(e.Ctx, ledger.PoolKey{Sender: "0xaaaa", Capability: "\xff"}.Ref(), ledger.Wei(1), "utf8")
	try("invalid UTF-8", err)
	_, err = charge(e, jobA1.Ref(), -5, 0, "negc")
	try("negative charge", err)
	_, err = charge(e, jobA1.Ref(), 5, -1, "negg")
	try("negative grace", err)
	_, err = e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: jobA2, Capability: "echo", TTL: -time.Second})
	try("negative TTL", err)
	_, err = e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: ledger.JobKey{Sender: "0xaaaa"}, Capability: "echo"})
	try("empty job ID", err)
	_, err = e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: jobA2, Capability: "echo", Reserve: ledger.Wei(-1)})
	try("negative reserve", err)
	_, err = e.Ledger.CloseJob(e.Ctx, ledger.JobKey{Sender: "0xaaaa", JobID: strings.Repeat("j", ledger.MaxNameBytes+1)})
	try("oversized job ID", err)
	for name, err := range cases {
		if !errors.Is(err, ledger.ErrInvalidInput) {
			t.Errorf("%s: error = %v, want ErrInvalidInput", name, err)
		}
	}
	after := e.MustVerify()
	if after.Entries != before.Entries || after.Accounts != before.Accounts || after.Credited.Cmp(before.Credited) != 0 {
		t.Errorf("bad input changed the ledger: %+v → %+v", before, after)
	}
}

func testOverflow(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1, "one")
	_, err := e.Ledger.Credit(e.Ctx, poolA.Ref(), ledger.MaxAmount, "max")
	WantErr(t, err, ledger.ErrAmountOverflow)
	e.WantBalance(poolA.Ref(), 1)
}

func testSurvivesRestart(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "p")
	mustOpen(e, jobA1, 300, 0)
	charge(e, jobA1.Ref(), 10, 0, "c")
	e.Restart()
	e.WantBalance(poolA.Ref(), 700)
	e.WantBalance(jobA1.Ref(), 290)
	// Idempotency survives the restart.
	if r := e.Credit(poolA.Ref(), 1000, "p"); !r.Replayed {
		t.Fatalf("credit after restart not recognised as a replay: %+v", r)
	}
	// So does the TTL: the hold comes back after the restart.
	e.Clock.Advance(2 * time.Minute)
	if n, err := e.Ledger.ExpireJobs(e.Ctx); err != nil || n != 1 {
		t.Fatalf("sweep after restart expired %d, %v", n, err)
	}
	e.WantBalance(poolA.Ref(), 990)
}

// testConcurrent runs goroutines that each credit, open, charge and close
// their own jobs on shared pools, and checks the totals against what the
// goroutines saw acknowledged.
func testConcurrent(t *testing.T, e *Env) {
	credited, charged := ConcurrentLoad(t, []*ledger.Ledger{e.Ledger}, 16, 12)
	r := e.MustVerify()
	if r.Credited.Cmp(ledger.Wei(credited)) != 0 || r.Charged.Cmp(ledger.Wei(charged)) != 0 || r.OpenJobs != 0 {
		t.Fatalf("report %+v; acknowledged credited %d charged %d", r, credited, charged)
	}
}

// ConcurrentLoad runs workers goroutines, spread over ledgers (replicas of
// one store, or one ledger), each crediting a shared pool and opening,
// paying (twice with one key), charging and closing jobs of its own. It
// returns the totals the workers saw acknowledged, to compare with Verify.
func ConcurrentLoad(t testing.TB, ledgers []*ledger.Ledger, workers, jobs int) (credited, charged int64) {
	t.Helper()
	ctx := context.Background()
	senders := []string{"0xs1", "0xs2", "0xs3"}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := ledgers[w%len(ledgers)]
			sender := senders[w%len(senders)]
			pool := ledger.PoolKey{Sender: sender, Capability: "echo"}
			myCredit, myCharge := int64(0), int64(0)
			for j := range jobs {
				key := fmt.Sprintf("w%d-j%d", w, j)
				if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(100), key+"-pool"); err != nil {
					errs <- err
					return
				}
				myCredit += 100
				job := ledger.JobKey{Sender: sender, JobID: key}
				if _, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(150)}); err != nil {
					errs <- err
					return
				}
				// A replayed credit must not count twice.
				for range 2 {
					r, err := l.Credit(ctx, job.Ref(), ledger.Wei(20), key+"-pay")
					if err != nil {
						errs <- err
						return
					}
					if !r.Replayed {
						myCredit += 20
					}
				}
				if _, err := l.Charge(ctx, job.Ref(), ledger.Wei(15), ledger.Wei(0), key+"-use"); err == nil {
					myCharge += 15
				} else if !errors.Is(err, ledger.ErrInsufficientFunds) {
					errs <- err
					return
				}
				if _, err := l.CloseJob(ctx, job); err != nil {
					errs <- err
					return
				}
			}
			mu.Lock()
			credited += myCredit
			charged += myCharge
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return credited, charged
}

// testConcurrentAdmission opens 100 jobs at once against a pool that covers
// 10 minimums: exactly 10 are admitted and the pool is never overdrawn.
func testConcurrentAdmission(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 10*60, "fund")
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := open(e, ledger.JobKey{Sender: poolA.Sender, JobID: fmt.Sprintf("c%d", i)}, 60, 60)
			switch {
			case err == nil:
				mu.Lock()
				admitted++
				mu.Unlock()
			case !errors.Is(err, ledger.ErrInsufficientFunds):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if admitted != 10 {
		t.Fatalf("admitted %d jobs, want 10", admitted)
	}
	e.WantBalance(poolA.Ref(), 0)
}

// testReplaysInBatches sends new and replayed keyed operations at once, so
// that batches mix them: a batch takes its keys to be new and must still
// answer every replay as one (and every reuse with other inputs as a
// conflict), counting nothing twice.
func testReplaysInBatches(t *testing.T, e *Env) {
	for i := range 20 {
		e.Credit(poolA.Ref(), 10, fmt.Sprintf("c%d", i))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	replayed, conflicts := 0, 0
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			amount := int64(10)
			if i >= 10 && i < 20 {
				amount = 11 // c10..c19 again with other inputs
			}
			r, err := e.Ledger.Credit(e.Ctx, poolA.Ref(), ledger.Wei(amount), fmt.Sprintf("c%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ledger.ErrIdempotencyConflict) && i >= 10 && i < 20:
				conflicts++
			case err != nil:
				t.Errorf("credit c%d: %v", i, err)
			case r.Replayed != (i < 10):
				t.Errorf("credit c%d: %+v", i, r)
			case r.Replayed:
				replayed++
			}
		}()
	}
	wg.Wait()
	if replayed != 10 || conflicts != 10 {
		t.Fatalf("replayed %d, conflicts %d; want 10, 10", replayed, conflicts)
	}
	e.WantBalance(poolA.Ref(), 600)
	// Jobs finished twice at once, among jobs finished once.
	for i := range 10 {
		mustOpen(e, ledger.JobKey{Sender: poolA.Sender, JobID: fmt.Sprintf("j%d", i)}, 20, 0)
	}
	for i := range 10 {
		job := ledger.JobKey{Sender: poolA.Sender, JobID: fmt.Sprintf("j%d", i)}
		for range 1 + i%2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.Ledger.FinishJob(e.Ctx, job, ledger.Wei(5), ledger.Wei(0), "use-"+job.JobID)
				if err != nil || r.State != ledger.StateClosed {
					t.Errorf("finish %s: %+v, %v", job.JobID, r, err)
				}
			}()
		}
	}
	wg.Wait()
	e.WantBalance(poolA.Ref(), 550)
}
