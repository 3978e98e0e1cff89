package meter_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator/meter"
)

// A stream's hold is charged lazily: what it owes grows with the clock
// without a ledger write, a settlement commits it in whole seconds rounded
// up, a settlement the hold cannot cover charges nothing and marks the
// stream dry, and the finish charges what is owed up to what the hold
// holds, under a key naming the reason, releasing the rest. Nothing moves
// after the finish.
func TestStreamLazySettlement(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, rec *recorder) {
		e.Credit(pool.Ref(), 10000, "fund")
		req := job("s1", 5*time.Second)
		req.TTL = time.Minute
		s, a, err := m.OpenStream(e.Ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "held at start", a.Held, 5000)
		hold := pool.Job("s1").Ref()
		wantAmount(t, "owed at start (one second at least)", s.Owed(m.Now()), 1000)

		e.Clock.Advance(2500 * time.Millisecond)
		wantAmount(t, "owed at 2.5 s", s.Owed(m.Now()), 3000)
		e.WantBalance(hold, 5000) // computed, not written
		c, err := s.Settle(e.Ctx, m.Now())
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "settled at 2.5 s", c.Charged, 3000)
		e.WantBalance(hold, 2000)
		if c, err = s.Settle(e.Ctx, m.Now()); err != nil || !c.Charged.IsZero() {
			t.Errorf("settling twice at one time: %s, %v; want nothing", c.Charged, err)
		}

		e.Clock.Advance(2 * time.Second) // 4.5 s: 5 s, 2000 more, held 2000
		if _, err := s.Settle(e.Ctx, m.Now()); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Second) // 5.5 s: 6 s, 1000 more, held 0
		dryAt := m.Now()
		if _, err := s.Settle(e.Ctx, dryAt); !errors.Is(err, meter.ErrInsufficientBalance) {
			t.Fatalf("settling past the hold: %v, want ErrInsufficientBalance", err)
		}
		if !s.DrySince().Equal(dryAt) {
			t.Errorf("dry since %v, want %v", s.DrySince(), dryAt)
		}
		e.Clock.Advance(time.Second)
		if _, err := s.Settle(e.Ctx, m.Now()); !errors.Is(err, meter.ErrInsufficientBalance) || !s.DrySince().Equal(dryAt) {
			t.Errorf("a second failed settlement: %v, dry since %v; want the first time kept", err, s.DrySince())
		}
		e.WantBalance(hold, 0)

		f, err := s.Finish(e.Ctx, m.Now(), "insufficient_balance")
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "finish charged (nothing left)", f.Charged, 0)
		wantAmount(t, "total", f.Total, 5000)
		wantAmount(t, "pool after", f.PoolBalance, 5000)
		if _, err := s.Settle(e.Ctx, m.Now().Add(time.Hour)); !errors.Is(err, meter.ErrStreamClosed) {
			t.Errorf("settling a finished stream: %v, want ErrStreamClosed", err)
		}
		if _, err := s.Pay(e.Ctx, nil, m.Now()); !errors.Is(err, meter.ErrStreamClosed) {
			t.Errorf("paying a finished stream: %v, want ErrStreamClosed", err)
		}
		if f, err := s.Finish(e.Ctx, m.Now().Add(time.Hour), "again"); err != nil || !f.Charged.IsZero() {
			t.Errorf("finishing twice: %+v, %v; want nothing", f, err)
		}
		wantAmount(t, "charges reported", rec.charged, 5000)
		st, err := e.Ledger.Statement(e.Ctx, hold, 100)
		if err != nil {
			t.Fatal(err)
		}
		if st.Account.State != ledger.StateClosed {
			t.Errorf("hold %s after finish, want closed", st.Account.State)
		}
	})
}

// A stream stopped with money left is charged what it owes at the stop and
// releases the rest; the closing charge's key names why it stopped.
func TestStreamFinishReleasesTheRest(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		e.Credit(pool.Ref(), 10000, "fund")
		req := job("s2", 8*time.Second)
		req.TTL = time.Minute
		s, _, err := m.OpenStream(e.Ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(3200 * time.Millisecond)
		bal, err := s.Balance(e.Ctx, m.Now())
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "balance at 3.2 s (hold less owed)", bal, 4000)
		f, err := s.Finish(e.Ctx, m.Now(), "stopped")
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "charged at stop", f.Charged, 4000)
		wantAmount(t, "released", f.Released, 4000)
		e.WantBalance(pool.Ref(), 6000)
		st, err := e.Ledger.Statement(e.Ctx, pool.Job("s2").Ref(), 100)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, en := range st.Entries {
			found = found || (en.Kind == ledger.EntryCharge && strings.Contains(en.Key, ":stopped:"))
		}
		if !found {
			t.Errorf("no charge keyed with the reason in %+v", st.Entries)
		}
	})
}

// A free stream holds nothing and owes nothing.
func TestStreamFree(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		req := job("free", time.Second)
		req.Price = new(big.Rat)
		s, _, err := m.OpenStream(e.Ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Hour)
		if !s.Owed(m.Now()).IsZero() || !s.Free() {
			t.Errorf("a free stream owes %s", s.Owed(m.Now()))
		}
		if _, err := s.Finish(e.Ctx, m.Now(), "stopped"); err != nil {
			t.Fatal(err)
		}
	})
}

// A stream stopped with nothing owed (settled at that very second) still
// has why it ended on its hold's statement.
func TestStreamFinishNothingOwedKeepsTheReason(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		e.Credit(pool.Ref(), 10000, "fund")
		req := job("s3", 8*time.Second)
		req.TTL = time.Minute
		s, _, err := m.OpenStream(e.Ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(2 * time.Second)
		if _, err := s.Settle(e.Ctx, m.Now()); err != nil {
			t.Fatal(err)
		}
		f, err := s.Finish(e.Ctx, m.Now(), "stopped")
		if err != nil || !f.Charged.IsZero() {
			t.Fatalf("finish with nothing owed: %+v %v", f, err)
		}
		st, err := e.Ledger.Statement(e.Ctx, pool.Job("s3").Ref(), 100)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, en := range st.Entries {
			found = found || strings.Contains(en.Key, ":stopped:")
		}
		if !found || st.Account.State != ledger.StateClosed || st.Charged.Cmp(ledger.Wei(2000)) != 0 {
			t.Errorf("statement %+v: want closed, 2000 charged, the reason recorded", st)
		}
	})
}

// A settlement whose outcome is unknown (the caller gave up; the ledger
// may have committed it) is sent again, same key and amount, before the
// next one: it counts once, whether it had committed or not.
func TestStreamUnsureChargeCountsOnce(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		e.Credit(pool.Ref(), 100000, "fund")
		req := job("s4", 60*time.Second)
		req.TTL = time.Hour
		s, _, err := m.OpenStream(e.Ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(23 * time.Second)
		gone, cancel := context.WithCancel(e.Ctx)
		cancel()
		if _, err := s.Settle(gone, m.Now()); err == nil {
			t.Fatal("a settlement with a cancelled context succeeded")
		}
		// As if it had committed all the same.
		if _, err := e.Ledger.Charge(e.Ctx, pool.Job("s4").Ref(), ledger.Wei(23000), ledger.Amount{}, "compute:r-s4:23"); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(23 * time.Second)
		c, err := s.Settle(e.Ctx, m.Now())
		if err != nil {
			t.Fatal(err)
		}
		// This settlement accounts for the unsure 23000 (found committed)
		// and charges 23000 more: nothing twice.
		wantAmount(t, "accounted for by the second settlement", c.Charged, 46000)
		wantAmount(t, "total at 46 s", c.Total, 46000)
		e.WantBalance(pool.Job("s4").Ref(), 60000-46000)
	})
}
