package signer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
)

// wait is one call of a sink's After: how long, and the channel to fire.
type wait struct {
	d    time.Duration
	fire chan time.Time
}

// testSink is an HTTP receiver of usage events and an EventSink whose
// waits the test fires by hand.
type testSink struct {
	sink      *EventSink
	batches   chan []CloudEvent
	waits     chan wait
	delivered chan int
	status    atomic.Int32
}

func newTestSink(t *testing.T, env *ledgertest.Env) *testSink {
	ts := &testSink{batches: make(chan []CloudEvent, 16), waits: make(chan wait, 16), delivered: make(chan int, 16)}
	ts.status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if ct := r.Header.Get("Content-Type"); ct != "application/cloudevents-batch+json" {
			t.Errorf("Content-Type %q", ct)
		}
		var evs []CloudEvent
		if err := json.Unmarshal(b, &evs); err != nil {
			t.Errorf("batch %q: %v", b, err)
		}
		ts.batches <- evs
		w.WriteHeader(int(ts.status.Load()))
	}))
	t.Cleanup(srv.Close)
	ts.sink = NewEventSink(EventSink{URL: srv.URL, Ledger: env.Ledger, Source: "test", Poll: time.Minute,
		Logger:    slog.New(slog.DiscardHandler),
		After:     func(d time.Duration) <-chan time.Time { c := make(chan time.Time, 1); ts.waits <- wait{d, c}; return c },
		Delivered: func(n int) { ts.delivered <- n }})
	return ts
}

func (ts *testSink) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.sink.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

// payAs posts a payment request for customer and returns the status.
func payAs(t *testing.T, h http.Handler, body, customer string) int {
	t.Helper()
	code, _, _ := post(t, h, "/generate-live-payment", body, HeaderAuthID, customer)
	return code
}

// TestUsageEventsAtLeastOnce: each signed payment's event is written with
// its spend (a refused payment writes none), and delivered as a CloudEvent
// (id = the outbox key, subject = the customer) after the sink has failed
// twice, backing off 1 s then 2 s; the redelivery carries the same IDs;
// once accepted, nothing is pending.
func TestUsageEventsAtLeastOnce(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex(), Events: true}
		s, _ := newTestSigner(t, rc, func(c *Config) { c.Budget = b })
		h := s.Handler()
		b.Grant(env.Ctx, "alice", costOf(t, 6), "g")
		req := rc.request(nil, "m", 27648000, "") // 3 tickets
		for i, want := range []int{200, 200, 483} {
			if code := payAs(t, h, req, "alice"); code != want {
				t.Fatalf("payment %d: %d, want %d", i, code, want)
			}
		}
		ts := newTestSink(t, env)
		ts.status.Store(503)
		ts.run(t)
		first := recv(t, ts.batches)
		if w := recv(t, ts.waits); w.d != time.Second {
			t.Errorf("first backoff %s", w.d)
		} else {
			w.fire <- time.Time{}
		}
		recv(t, ts.batches)
		w := recv(t, ts.waits)
		if w.d != 2*time.Second {
			t.Errorf("second backoff %s", w.d)
		}
		ts.status.Store(200)
		w.fire <- time.Time{}
		third := recv(t, ts.batches)
		if n := recv(t, ts.delivered); n != 2 {
			t.Errorf("delivered %d", n)
		}
		if len(first) != 2 || len(third) != 2 || first[0].ID != third[0].ID || first[1].ID != third[1].ID || first[0].ID == first[1].ID {
			t.Fatalf("batches %+v / %+v", first, third)
		}
		for _, ev := range third {
			var u UsageEvent
			if err := json.Unmarshal(ev.Data, &u); err != nil {
				t.Fatal(err)
			}
			if ev.SpecVersion != "1.0" || ev.Type != EventTypeUsage || ev.Subject != "alice" || ev.Source != "test" ||
				u.AuthID != "alice" || u.NumTickets != 3 || u.ComputedFee != "18432000000" || u.ID != ev.ID ||
				u.Spent != costOf(t, 3).String() || u.ManifestID != "m" || u.SessionStatus != "new" || u.Cost != "666.6666666667" {
				t.Errorf("event %+v data %+v", ev, u)
			}
		}
		if w := recv(t, ts.waits); w.d != time.Minute {
			t.Errorf("idle wait %s, want the poll interval", w.d)
		}
		if left, err := env.Ledger.PendingOutbox(env.Ctx, 0, 10); err != nil || len(left) != 0 {
			t.Errorf("pending after delivery: %v %v", left, err)
		}
	})
}

// TestUsageEventsSurviveRestart: events written before a crash (the sink
// never ran) are delivered by the next process.
func TestUsageEventsSurviveRestart(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex(), Events: true, Unlimited: true}
		s, _ := newTestSigner(t, rc, func(c *Config) { c.Budget = b })
		for _, who := range []string{"a", "b", "a"} {
			if code := payAs(t, s.Handler(), rc.request(nil, "m", 1, ""), who); code != 200 {
				t.Fatalf("%d", code)
			}
		}
		env.Restart()
		ts := newTestSink(t, env)
		ts.run(t)
		got := recv(t, ts.batches)
		recv(t, ts.delivered)
		if len(got) != 3 || got[0].Subject != "a" || got[1].Subject != "b" || got[2].Subject != "a" {
			t.Errorf("after restart: %+v", got)
		}
		b.Ledger = env.Ledger
		if v, _ := b.Read(env.Ctx, "a"); v.Spent.Cmp(costOf(t, 2)) != 0 {
			t.Errorf("a's usage %+v", v)
		}
	})
}

// TestStatement: a customer's grants and spends, JSON and CSV, from the
// admin API.
func TestStatement(t *testing.T) {
	rc := loadRecorded(t)
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
	s, _ := newTestSigner(t, rc, func(c *Config) { c.Budget = b })
	b.Grant(env.Ctx, "fay", costOf(t, 5), "g1")
	payAs(t, s.Handler(), rc.request(nil, "m", 27648000, ""), "fay")
	mux := http.NewServeMux()
	BudgetRoutes(mux, b)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/admin/statement?customer=fay&format=csv", nil))
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if len(lines) != 3 || lines[0] != "customer,at,kind,amount_wei,balance_wei,ref" ||
		!strings.HasPrefix(lines[1], "fay,2026-") || !strings.Contains(lines[1], ",grant,40000000000,40000000000,g1") ||
		!strings.Contains(lines[2], ",spend,-24000000000,16000000000,") {
		t.Errorf("csv:\n%s", w.Body.String())
	}
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/admin/statement?customer=fay", nil))
	var st CustomerStatement
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || len(st.Lines) != 2 || st.Spent.String() != "24000000000" || st.Lines[1].Kind != "spend" || len(st.Lines[1].Ref) != 32 {
		t.Errorf("json %s (%v)", w.Body.String(), err)
	}
}

// TestBudgetAlertsSurviveRestart: a threshold alert is written to the
// outbox in the transaction of the spend that crossed it, so alerts
// pending when the signer dies (no sink ever ran) are delivered by the
// next process, once per crossing, as JSON to the alert URL; the usage
// sink delivers the usage events only, the alert sink the alerts only.
func TestBudgetAlertsSurviveRestart(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		var logged []Alert
		b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex(), Events: true, Thresholds: []int{80, 100},
			AlertOutbox: true, Alert: func(a Alert) { logged = append(logged, a) }}
		s, _ := newTestSigner(t, rc, func(c *Config) { c.Budget = b })
		if _, err := b.Grant(env.Ctx, "dave", costOf(t, 5), "g"); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if code := payAs(t, s.Handler(), rc.request(nil, "m", 1, ""), "dave"); code != 200 { // 1 ticket each
				t.Fatalf("%d", code)
			}
		}
		if len(logged) != 2 {
			t.Errorf("logged alerts %+v, want 80 %% and 100 %%", logged)
		}
		env.Restart()

		alerts := make(chan Alert, 4)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var a Alert
			if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("alert: %v (%s)", err, r.Header.Get("Content-Type"))
			}
			alerts <- a
		}))
		t.Cleanup(srv.Close)
		delivered := make(chan int, 4)
		as := NewEventSink(EventSink{URL: srv.URL, Ledger: env.Ledger, Topics: []string{TopicAlert}, Plain: true, Poll: time.Minute,
			Logger: slog.New(slog.DiscardHandler), After: func(time.Duration) <-chan time.Time { return make(chan time.Time) },
			Delivered: func(n int) { delivered <- n }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { as.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		for i, want := range []int{80, 100} {
			a := recv(t, alerts)
			recv(t, delivered)
			if a.Customer != "dave" || a.Threshold != want || a.Granted.Cmp(costOf(t, 5)) != 0 || a.ID != logged[i].ID {
				t.Errorf("alert %d after the restart: %+v, want %d %% (logged %+v)", i, a, want, logged[i])
			}
		}
		ts := newTestSink(t, env)
		ts.run(t)
		if got := recv(t, ts.batches); len(got) != 5 || got[0].Type != EventTypeUsage || got[4].Type != EventTypeUsage {
			t.Errorf("the usage sink delivered %d events: %+v", len(got), got)
		}
		recv(t, ts.delivered)
		if evs, err := env.Ledger.PendingOutbox(env.Ctx, 0, 100); err != nil || len(evs) != 0 {
			t.Errorf("pending after both sinks: %d (%v)", len(evs), err)
		}
		select {
		case a := <-alerts:
			t.Errorf("an alert delivered twice: %+v", a)
		default:
		}
	})
}

// TestOutboxPrune: delivered events older than the retention are deleted,
// undelivered ones never, recent ones not yet, the newest one not (the
// next ID follows it); after a restart the next event gets a new ID, and a
// spend retried after its event was pruned is replayed, not written again.
func TestOutboxPrune(t *testing.T) {
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		b := &Budgets{Ledger: env.Ledger, Owner: "0x0000000000000000000000000000000000000001", Events: true, Unlimited: true}
		spend := func(key string) {
			t.Helper()
			if err := b.Spend(env.Ctx, &Spend{Customer: "a", Amount: ledger.Wei(10), Key: key, Event: UsageEvent{ID: key}}); err != nil {
				t.Fatal(err)
			}
		}
		pending := func() []ledger.OutboxEvent {
			t.Helper()
			evs, err := env.Ledger.PendingOutbox(env.Ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			return evs
		}
		deliver := func(evs ...ledger.OutboxEvent) {
			t.Helper()
			var ids []int64
			for _, e := range evs {
				ids = append(ids, e.ID)
			}
			if err := env.Ledger.MarkDelivered(env.Ctx, ids); err != nil {
				t.Fatal(err)
			}
		}
		prune := func(want int64) {
			t.Helper()
			if n, err := env.Ledger.PruneOutbox(env.Ctx, time.Hour); err != nil || n != want {
				t.Errorf("pruned %d (%v), want %d", n, err, want)
			}
		}
		for _, k := range []string{"k1", "k2", "k3"} {
			spend(k)
		}
		evs := pending()
		deliver(evs[0], evs[1])
		env.Clock.Advance(2 * time.Hour)
		deliver(evs[2])
		spend("k4")
		prune(2) // k1, k2; k3 delivered just now, k4 pending
		if got := pending(); len(got) != 1 || got[0].Key != "k4" {
			t.Errorf("pending after pruning: %+v", got)
		}
		env.Clock.Advance(2 * time.Hour)
		prune(1) // k3
		deliver(pending()...)
		env.Clock.Advance(2 * time.Hour)
		prune(0) // k4 is the newest: kept
		if _, err := env.Ledger.PruneOutbox(env.Ctx, -time.Second); !errors.Is(err, ledger.ErrInvalidInput) {
			t.Errorf("a negative retention: %v", err)
		}

		env.Restart()
		b.Ledger = env.Ledger
		spend("k1") // retried after its event was pruned: replayed
		spend("k5")
		got := pending()
		if len(got) != 1 || got[0].Key != "k5" || got[0].ID <= evs[2].ID+1 {
			t.Errorf("pending after the restart: %+v (k4 had ID %d)", got, evs[2].ID+1)
		}
		if v, _ := b.Read(env.Ctx, "a"); v.Spent.Cmp(ledger.Wei(50)) != 0 {
			t.Errorf("spent %s, want 50 (five spends, k1 once)", v.Spent)
		}
	})
}
