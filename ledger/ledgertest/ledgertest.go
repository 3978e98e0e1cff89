// Package ledgertest is the conformance suite every ledger.Store must pass,
// and the helpers the rest of byoc uses to test against a real ledger: a
// ledger on a fresh store with a manual clock, and an invariant check that
// runs when each test ends.
package ledgertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"byoc/ledger"
)

// Opener opens a store on one database. Calling it again (after the previous
// store was closed) reopens the same database, as a restarted process would.
type Opener func() ledger.Store

// Factory makes a fresh, empty database for one test and returns its Opener.
type Factory func(t testing.TB) Opener

// Epoch is where test clocks start.
var Epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Env is a ledger on a fresh store, for one test.
type Env struct {
	T      testing.TB
	Ctx    context.Context
	Clock  *ledger.ManualClock
	Open   Opener
	Store  ledger.Store
	Ledger *ledger.Ledger
	// AllowDebt lets MustVerify accept pools and open jobs below zero: for
	// tests that charge into grace on purpose (ledger.VerifyOptions).
	AllowDebt bool
}

// NewEnv opens a ledger on a fresh database from f. When the test ends it
// sweeps expired jobs, runs ledger.Verify, fails the test on any violated
// invariant, and closes everything.
func NewEnv(t testing.TB, f Factory) *Env {
	t.Helper()
	e := &Env{T: t, Ctx: context.Background(), Clock: ledger.NewManualClock(Epoch), Open: f(t)}
	e.Store = e.Open()
	e.Ledger = ledger.New(e.Store, ledger.Options{Clock: e.Clock, DefaultTTL: time.Minute})
	t.Cleanup(func() {
		if e.Ledger != nil {
			e.MustVerify()
			e.Ledger.Close()
			e.Store.Close()
		}
	})
	return e
}

// Restart closes the ledger and the store and opens them again on the same
// database, as a restarted node would.
func (e *Env) Restart() {
	e.T.Helper()
	e.Ledger.Close()
	if err := e.Store.Close(); err != nil {
		e.T.Fatalf("close store: %v", err)
	}
	e.Store = e.Open()
	e.Ledger = ledger.New(e.Store, ledger.Options{Clock: e.Clock, DefaultTTL: time.Minute})
}

// MustVerify sweeps expired jobs and checks every invariant.
func (e *Env) MustVerify() ledger.Report {
	e.T.Helper()
	if _, err := e.Ledger.ExpireJobs(e.Ctx); err != nil {
		e.T.Fatalf("sweep: %v", err)
	}
	r, err := ledger.Verify(e.Ctx, e.Store, ledger.VerifyOptions{Now: e.Clock.Now(), AllowDebt: e.AllowDebt})
	if err != nil {
		e.T.Fatalf("verify: %v", err)
	}
	for _, p := range r.Problems {
		e.T.Errorf("invariant violated: %s", p)
	}
	return r
}

// Balance returns an account's balance, failing the test on error.
func (e *Env) Balance(ref ledger.Ref) ledger.Amount {
	e.T.Helper()
	b, err := e.Ledger.Balance(e.Ctx, ref)
	if err != nil {
		e.T.Fatalf("balance %s: %v", ref, err)
	}
	return b
}

// WantBalance fails the test unless ref holds want wei.
func (e *Env) WantBalance(ref ledger.Ref, want int64) {
	e.T.Helper()
	if got := e.Balance(ref); got.Cmp(ledger.Wei(want)) != 0 {
		e.T.Errorf("balance of %s = %s, want %d", ref, got, want)
	}
}

// Credit credits amount, failing the test on error.
func (e *Env) Credit(to ledger.Ref, amount int64, key string) ledger.CreditResult {
	e.T.Helper()
	r, err := e.Ledger.Credit(e.Ctx, to, ledger.Wei(amount), key)
	if err != nil {
		e.T.Fatalf("credit %s %d %q: %v", to, amount, key, err)
	}
	return r
}

// WantErr fails the test unless errors.Is(err, want).
func WantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}
