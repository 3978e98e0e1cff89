package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/internal/workerstub"
	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/wire"
)

// onEachStore runs f on a node with an embedded (SQLite) ledger and on one
// with a PostgreSQL ledger (skipped without BYOC_POSTGRES_DSN); tweak
// points the node's configuration at the store.
func onEachStore(t *testing.T, f func(t *testing.T, tweak func(*orchestrator.NodeConfig))) {
	t.Run("sqlite", func(t *testing.T) { f(t, func(*orchestrator.NodeConfig) {}) })
	t.Run("postgres", func(t *testing.T) {
		dsn := ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
		f(t, func(c *orchestrator.NodeConfig) { c.LedgerDSN = dsn })
	})
}

// clockWorker is a worker whose work takes time on the node's manual clock,
// so the time a job is billed for is exact. Its routes:
//
//	/run        advances the clock by the body's advance_ms, answers "done"
//	/overrun    advances the clock 5 s, then works until the orchestrator
//	            cuts it (its timeout)
//	/sse        streams an event, advances the clock by advance_ms, streams
//	            another, then: with "break", drops its connection; else
//	            streams until the orchestrator cuts it
//
// got receives a value once the work is done (the clock moved and, for
// streams, the events are out).
type clockWorker struct {
	clock *ledger.ManualClock
	got   chan struct{}
}

type clockJob struct {
	AdvanceMS int64 `json:"advance_ms"`
	Break     bool  `json:"break"`
}

// readClockJob reads the whole body (so the server notices when the
// orchestrator hangs up) and decodes it.
func readClockJob(r *http.Request) clockJob {
	var j clockJob
	b, _ := io.ReadAll(r.Body)
	json.Unmarshal(b, &j)
	return j
}

func startClockWorker(t *testing.T, clock *ledger.ManualClock) (*clockWorker, string) {
	cw := &clockWorker{clock: clock, got: make(chan struct{}, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/run", func(w http.ResponseWriter, r *http.Request) {
		j := readClockJob(r)
		clock.Advance(time.Duration(j.AdvanceMS) * time.Millisecond)
		io.WriteString(w, "done")
		cw.got <- struct{}{}
	})
	mux.HandleFunc("/overrun", func(w http.ResponseWriter, r *http.Request) {
		readClockJob(r)
		clock.Advance(5 * time.Second)
		cw.got <- struct{}{}
		<-r.Context().Done()
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		j := readClockJob(r)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		io.WriteString(w, "data: {\"i\":1}\n\n")
		rc.Flush()
		clock.Advance(time.Duration(j.AdvanceMS) * time.Millisecond)
		io.WriteString(w, "data: {\"i\":2}\n\n")
		rc.Flush()
		if j.Break {
			conn, _, err := rc.Hijack()
			if err != nil {
				panic(err)
			}
			conn.Close() // mid-stream: no end of the chunked body
			cw.got <- struct{}{}
			return
		}
		cw.got <- struct{}{}
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return cw, srv.URL
}

// clockNode starts a node on a manual clock with a clock worker registered
// as capabilities run, overrun and sse, at 1000 wei per second.
func clockNode(t *testing.T, tweak func(*orchestrator.NodeConfig)) (*orchestrator.Node, *clockWorker, *testnet.Client) {
	clock := ledger.NewManualClock(time.Now())
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		tweak(c)
	})
	cw, url := startClockWorker(t, clock)
	for _, name := range []string{"run", "overrun", "sse"} {
		c := wire.ExternalCapability{Name: name, URL: url + "/" + name, Capacity: 4, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei"}
		if err := workerstub.Register(context.Background(), n.URL, testnet.Secret, c); err != nil {
			t.Fatal(err)
		}
	}
	return n, cw, testnet.NewClient(t, n.URL, testnet.KeyA)
}

// metric returns the node's metrics text.
func metrics(t *testing.T, n *orchestrator.Node) string {
	t.Helper()
	resp, err := http.Get(n.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jobOutcome(capability, outcome string) string {
	return fmt.Sprintf(`byoc_orchestrator_jobs_total{capability=%q,outcome=%q} 1`, capability, outcome)
}

// A job is billed whole seconds, rounded up, and never more than its
// timeout_seconds: at a 3 s timeout, 2 s is 2, 2.001 s is 3, 3 s is 3, and
// 3.001 s or 10 s are 3, not 4 or 10.
func TestBilledTimeAtTheBoundary(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		n, _, c := clockNode(t, tweak)
		for i, tc := range []struct {
			ran  time.Duration
			want int64
		}{
			{2 * time.Second, 2000},
			{2*time.Second + time.Millisecond, 3000},
			{3 * time.Second, 3000},
			{3*time.Second + time.Millisecond, 3000},
			{10 * time.Second, 3000},
		} {
			id := fmt.Sprintf("b%d", i)
			r := c.Job(testnet.JobSpec{Capability: "run", ID: id, Timeout: 3, Body: fmt.Sprintf(`{"advance_ms":%d}`, tc.ran.Milliseconds()), Payment: c.Pay(c.Token("run", ""), 6)})
			if r.Status != http.StatusOK || r.Body != "done" {
				t.Fatalf("job that ran %v: %d %s", tc.ran, r.Status, r.Body)
			}
			s := testnet.Statement(t, n, c.Addr(), id)
			if testnet.Amount(s.Charged) != tc.want || r.Header.Get(wire.HeaderJobCharged) != fmt.Sprint(tc.want) || testnet.Amount(s.Released) != 6000-tc.want {
				t.Errorf("job that ran %v at a 3 s timeout: charged %s (Livepeer-Job-Charged %q) released %s; want %d",
					tc.ran, s.Charged, r.Header.Get(wire.HeaderJobCharged), s.Released, tc.want)
			}
		}
		testnet.Verify(t, n)
	})
}

// A job cut at its timeout_seconds is charged exactly its timeout, however
// long past it the worker was seen to run.
func TestTimeoutChargesTheTimeout(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		n, _, c := clockNode(t, tweak)
		r := c.Job(testnet.JobSpec{Capability: "overrun", ID: "late", Timeout: 1, Body: "{}", Payment: c.Pay(c.Token("overrun", ""), 6)})
		if r.Status != http.StatusGatewayTimeout {
			t.Fatalf("job past its timeout: %d %s", r.Status, r.Body)
		}
		s := testnet.Statement(t, n, c.Addr(), "late")
		if testnet.Amount(s.Charged) != 1000 || r.Header.Get(wire.HeaderJobCharged) != "1000" || testnet.Amount(s.Released) != 5000 {
			t.Errorf("job cut at its 1 s timeout after 5 s on the clock: charged %s (Livepeer-Job-Charged %q) released %s; want 1000",
				s.Charged, r.Header.Get(wire.HeaderJobCharged), s.Released)
		}
		testnet.Verify(t, n)
	})
}

// The same on the wall clock, with the sample worker sleeping past the
// timeout: the orchestrator sees it just past 1 s, and charges 1 s.
func TestTimeoutChargesTheTimeoutWallClock(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Sleep, "sleep", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	r := c.Job(testnet.JobSpec{Capability: "sleep", ID: "late", Timeout: 1, Body: testnet.SleepBody(time.Minute), Payment: c.Pay(c.Token("sleep", ""), 6)})
	if r.Status != http.StatusGatewayTimeout {
		t.Fatalf("job past its timeout: %d %s", r.Status, r.Body)
	}
	if s := testnet.Statement(t, n, c.Addr(), "late"); testnet.Amount(s.Charged) != 1000 || r.Header.Get(wire.HeaderJobCharged) != "1000" {
		t.Errorf("job cut at its 1 s timeout: charged %s (Livepeer-Job-Charged %q), want 1000", s.Charged, r.Header.Get(wire.HeaderJobCharged))
	}
	testnet.Verify(t, n)
}

// A job whose hold covers less than the time it ran is charged its hold,
// no more: the hold ends at zero, not in debt to the pool, and
// Livepeer-Job-Charged says what was taken.
func TestChargeNeverExceedsTheHold(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		n, _, c := clockNode(t, tweak)
		// 6 tickets and an empty pool: a 6000 hold for a job allowed 30 s.
		r := c.Job(testnet.JobSpec{Capability: "run", ID: "short", Timeout: 30, Body: `{"advance_ms":10000}`, Payment: c.Pay(c.Token("run", ""), 6)})
		if r.Status != http.StatusOK {
			t.Fatalf("job: %d %s", r.Status, r.Body)
		}
		s := testnet.Statement(t, n, c.Addr(), "short")
		if testnet.Amount(s.Credited) != 6000 || testnet.Amount(s.Charged) != 6000 || testnet.Amount(s.Released) != 0 || r.Header.Get(wire.HeaderJobCharged) != "6000" {
			t.Errorf("10 s on a 6000 hold: credited %s charged %s released %s (Livepeer-Job-Charged %q); want 6000 charged, 0 released",
				s.Credited, s.Charged, s.Released, r.Header.Get(wire.HeaderJobCharged))
		}
		if got := testnet.Balance(t, n, testnet.Pool(c.Addr(), "run")); got != 0 || r.Header.Get(wire.HeaderBalance) != "0" {
			t.Errorf("pool %d (Livepeer-Balance %q), want 0: never in debt", got, r.Header.Get(wire.HeaderBalance))
		}
		testnet.Verify(t, n)
	})
}

// An SSE job cut at its timeout is charged at most its timeout, and the
// client is told with an error event after the balance line.
func TestSSECutAtTimeout(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		n, _, c := clockNode(t, tweak)
		r := c.Job(testnet.JobSpec{Capability: "sse", ID: "long", Timeout: 2, Body: `{"advance_ms":5000}`, Payment: c.Pay(c.Token("sse", ""), 6)})
		if r.Status != http.StatusOK || strings.Count(r.Body, `"i":`) != 2 {
			t.Fatalf("stream: %d\n%s", r.Status, r.Body)
		}
		if !strings.HasSuffix(r.Body, "data: {\"balance\": 4000.000}\n\n\nevent: error\ndata: {\"error\":\"job timed out: the worker did not finish within 2 s\"}\n\n") {
			t.Errorf("a stream cut at its timeout ends:\n%s", r.Body)
		}
		if s := testnet.Statement(t, n, c.Addr(), "long"); testnet.Amount(s.Charged) != 2000 || testnet.Amount(s.Released) != 4000 || s.Account.State != ledger.StateClosed {
			t.Errorf("stream cut at its 2 s timeout after 5 s on the clock: charged %s released %s state %s; want 2000", s.Charged, s.Released, s.Account.State)
		}
		if m := metrics(t, n); !strings.Contains(m, jobOutcome("sse", "timeout")) {
			t.Errorf("metrics lack %s", jobOutcome("sse", "timeout"))
		}
		testnet.Verify(t, n)
	})
}

// A job's admission that carries tickets is synced before the job is
// answered (a ticket's credit is never acknowledged before it is durable);
// its finish, and the admission of a job that carries none, are
// acknowledged once written, their syncs deferred (meter.Config.DurableJobs).
func TestTicketAdmissionSynced(t *testing.T) {
	n, _, c := clockNode(t, func(*orchestrator.NodeConfig) {})
	s, ok := n.Store.(*journal.Store)
	if !ok {
		t.Fatalf("the node's store is a %T, not the journal", n.Store)
	}
	deferred := func(spec testnet.JobSpec) uint64 {
		t.Helper()
		before := s.Stats().Deferred
		if r := c.Job(spec); r.Status != http.StatusOK {
			t.Fatalf("job %s: %d %s", spec.ID, r.Status, r.Body)
		}
		return s.Stats().Deferred - before
	}
	if got := deferred(testnet.JobSpec{Capability: "run", ID: "paid", Timeout: 3, Body: `{"advance_ms":1000}`, Payment: c.Pay(c.Token("run", ""), 12)}); got != 1 {
		t.Errorf("a job with tickets: %d deferred records, want 1 (its finish; its admission synced)", got)
	}
	if got := deferred(testnet.JobSpec{Capability: "run", ID: "from-pool", Timeout: 3, Body: `{"advance_ms":1000}`}); got != 2 {
		t.Errorf("a job paid from the pool: %d deferred records, want 2 (its admission and its finish)", got)
	}
	testnet.Verify(t, n)
}
