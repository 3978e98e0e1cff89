package orchestrator_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
)

// A running SSE job is charged on each tick of its ticker for the time on
// the ledger's clock, and stopped, alone, at the tick its hold cannot
// cover: here by hand, a manual clock and a ticker the test drives.
func TestSSEChargedOnTicks(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		ticks := make(chan time.Time)
		var clock *ledger.ManualClock
		n, cw, c := clockNode(t, func(cfg *orchestrator.NodeConfig) {
			tweak(cfg)
			clock = cfg.Clock.(*ledger.ManualClock)
			cfg.Orchestrator.Ticker = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
		})
		// 6 tickets and an empty pool: a 6000 hold (the minimum is 5 s).
		spec := testnet.JobSpec{Capability: "sse", ID: "ticked", Timeout: 30, Body: `{"advance_ms":0}`, Payment: c.Pay(c.Token("sse", ""), 6)}
		done := make(chan testnet.JobResult, 1)
		go func() { done <- c.Job(spec) }()
		<-cw.got // the worker streamed its events and keeps the stream open
		hold := ledger.JobKey{Sender: c.Addr(), JobID: "ticked"}.Ref()
		tick := func() { t.Helper(); tickStream(t, ticks, clock, done) }
		// at moves the clock by d and ticks; the second tick is taken only
		// once the relay is back from the first one's charge.
		at := func(d time.Duration) {
			t.Helper()
			clock.Advance(d)
			tick()
			tick()
		}
		at(2 * time.Second)
		if got := testnet.Balance(t, n, hold); got != 4000 {
			t.Errorf("hold after a tick at 2 s: %d, want 4000", got)
		}
		at(2500 * time.Millisecond) // 4.5 s: 5 s billed
		if got := testnet.Balance(t, n, hold); got != 1000 {
			t.Errorf("hold after a tick at 4.5 s: %d, want 1000", got)
		}
		clock.Advance(2 * time.Second) // 6.5 s: 7 s, 2000 more, on a hold of 1000
		// The tick at 4.5 s charges to 4.5 s even if its debit runs after
		// the clock moved: the stream ends only on this tick.
		var r testnet.JobResult
		select {
		case ticks <- clock.Now():
			r = <-done
		case r = <-done:
			t.Fatalf("the stream ended before the tick at 6.5 s: %d\n%s", r.Status, r.Body)
		}
		if r.Status != http.StatusOK || !strings.HasSuffix(r.Body, "event: insufficient balance\ndata: {\"balance\": 0}\n\ndata: [DONE]\n\n") {
			t.Fatalf("stream past its hold: %d\n%s", r.Status, r.Body)
		}
		s := testnet.Statement(t, n, c.Addr(), "ticked")
		if testnet.Amount(s.Charged) != 5000 || testnet.Amount(s.Released) != 1000 || s.Account.State != ledger.StateClosed {
			t.Errorf("stream stopped at 6.5 s on a 6000 hold: charged %s released %s state %s; want 5000 charged, 1000 released",
				s.Charged, s.Released, s.Account.State)
		}
		if m := metrics(t, n); !strings.Contains(m, jobOutcome("sse", "insufficient_balance")) {
			t.Errorf("metrics lack %s", jobOutcome("sse", "insufficient_balance"))
		}
		testnet.Verify(t, n)
	})
}

// tickStream hands a running stream's meter one tick at the clock's time;
// the stream must not end before taking it.
func tickStream(t *testing.T, ticks chan<- time.Time, clock *ledger.ManualClock, done <-chan testnet.JobResult) {
	t.Helper()
	select {
	case ticks <- clock.Now():
	case r := <-done:
		t.Fatalf("the stream ended before its tick: %d\n%s", r.Status, r.Body)
	}
}
