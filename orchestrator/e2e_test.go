package orchestrator_test

import (
	"byoc/internal/testnet"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/internal/workerstub"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/wire"
)

// Prices in these tests: 1000 wei per second, tickets of EV 1000 wei, and a
// 5 s minimum: a job needs 5 tickets (or 5000 wei of prepaid credit).

func TestTokenShape(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)

	tok := c.Token("reverse", "")
	p := tok.TicketParams
	switch {
	case tok.Price == nil || tok.Price.PricePerUnit != 1000 || tok.Price.PixelsPerUnit != 1:
		t.Errorf("price %+v", tok.Price)
	case p == nil || len(p.Recipient) != 20 || p.ExpirationParams == nil || len(p.ExpirationBlock) == 0:
		t.Errorf("ticket params %+v", p)
	case tok.ServiceAddr != n.URL || tok.AvailableCapacity != 4 || tok.LastNonce != 0:
		t.Errorf("token %+v", tok)
	case tok.PoolBalance != "0" || tok.Balance != 0 || tok.JobBalance != "":
		t.Errorf("balances %+v", tok)
	case tok.SenderAddress == nil || tok.SenderAddress.Addr != c.Addr():
		t.Errorf("sender %+v", tok.SenderAddress)
	}
	// A free capability still gets ticket params (go-livepeer gateways need them).
	testnet.Register(t, n.URL, w, workerstub.Echo, "echo", 0, 1)
	if tok := c.Token("echo", ""); tok.TicketParams == nil || tok.Price.PixelsPerUnit != 1 {
		t.Errorf("free token %+v", tok)
	}

	for _, tc := range []struct {
		name, capability, sender string
		want                     int
	}{
		{"unknown capability", "nope", "", http.StatusNotFound},
		{"no capability header", "", "", http.StatusBadRequest},
		{"no sender header", "reverse", "-", http.StatusBadRequest},
		{"garbage sender header", "reverse", "!!!", http.StatusBadRequest},
		{"forged sender signature", "reverse", `{"addr":"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23","sig":"0x` + strings.Repeat("11", 65) + `"}`, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/process/token", nil)
		if tc.capability != "" {
			req.Header.Set(wire.HeaderCapability, tc.capability)
		}
		switch tc.sender {
		case "":
			js, _ := wire.NewJobSender(c.Signer)
			h, _ := wire.EncodeJobSenderHeader(js)
			req.Header.Set(wire.HeaderJobSender, h)
		case "-":
		case "!!!":
			req.Header.Set(wire.HeaderJobSender, tc.sender)
		default:
			req.Header.Set(wire.HeaderJobSender, testnet.B64(tc.sender))
		}
		resp, err := testnet.Insecure.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}

// A paid job: the payment funds the job's hold, the compute used is
// charged, and the rest goes back to the sender's pool.
func TestPaidJobChargesAndReleases(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)

	r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "job-1", Body: `{"text":"hello"}`, Payment: c.Pay(c.Token("reverse", ""), 7)})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"reversed":"olleh"`) {
		t.Fatalf("job: %d %s %v", r.Status, r.Body, r.Err)
	}
	s := testnet.Statement(t, n, c.Addr(), "job-1")
	if s.Account.State != ledger.StateClosed || testnet.Amount(s.Credited) != 7000 || testnet.Amount(s.Charged) != 1000 || testnet.Amount(s.Released) != 6000 {
		t.Errorf("statement: state %s credited %s charged %s released %s", s.Account.State, s.Credited, s.Charged, s.Released)
	}
	if r.Header.Get(wire.HeaderJobCharged) != "1000" || r.Header.Get(wire.HeaderPaymentCredited) != "7000" {
		t.Errorf("Livepeer-Job-Charged %q, want 1000; Livepeer-Payment-Credited %q, want 7000",
			r.Header.Get(wire.HeaderJobCharged), r.Header.Get(wire.HeaderPaymentCredited))
	}
	if got := testnet.Balance(t, n, testnet.Pool(c.Addr(), "reverse")); got != 6000 || r.Header.Get(wire.HeaderBalance) != "6000" {
		t.Errorf("pool %d, Livepeer-Balance %q; want 6000", got, r.Header.Get(wire.HeaderBalance))
	}
	// The next token shows the carried-over credit, and the next job runs on
	// it without paying again.
	if tok := c.Token("reverse", ""); tok.Balance != 6000 || tok.PoolBalance != "6000" {
		t.Errorf("token after the job: balance %d pool %s", tok.Balance, tok.PoolBalance)
	}
	r = c.Job(testnet.JobSpec{Capability: "reverse", ID: "job-2", Body: "abc"})
	if r.Status != http.StatusOK || r.Body != "cba" {
		t.Fatalf("prepaid job: %d %q", r.Status, r.Body)
	}
	if s := testnet.Statement(t, n, c.Addr(), "job-2"); testnet.Amount(s.Drawn) != 6000 || testnet.Amount(s.Charged) != 1000 || testnet.Amount(s.Released) != 5000 {
		t.Errorf("prepaid job statement: drawn %s charged %s released %s", s.Drawn, s.Charged, s.Released)
	}
	testnet.Verify(t, n)
}

// A job whose hold cannot reach the minimum is refused (402); the payment
// it carried stays the sender's, in its pool.
func TestUnderpaidJobRefused(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "j1", Body: "x", Payment: c.Pay(c.Token("reverse", ""), 3)})
	if r.Status != http.StatusPaymentRequired || !strings.Contains(r.Body, "Insufficient balance") || r.Header.Get(wire.HeaderPaymentCredited) != "3000" {
		t.Fatalf("underpaid job: %d %s (Livepeer-Payment-Credited %q, want 3000: kept in the pool)", r.Status, r.Body, r.Header.Get(wire.HeaderPaymentCredited))
	}
	if got := testnet.Balance(t, n, testnet.Pool(c.Addr(), "reverse")); got != 3000 {
		t.Fatalf("pool after refusal = %d, want the 3000 paid", got)
	}
	if w.Handler().Stats().Served != 0 {
		t.Fatal("the worker ran a refused job")
	}
	// Topping up with 2 more tickets is enough: the pool's 3000 is drawn.
	r = c.Job(testnet.JobSpec{Capability: "reverse", ID: "j2", Body: "x", Payment: c.Pay(c.Token("reverse", ""), 2)})
	if r.Status != http.StatusOK {
		t.Fatalf("topped-up job: %d %s", r.Status, r.Body)
	}
	testnet.Verify(t, n)
}

// startHeldWorker registers capability "gate" (1000 wei per second) with
// the orchestrator at orchURL, served by a worker that holds the job sent
// to path p until the test closes release[p]; entered gets p when the job
// arrives. Other paths are 404.
func startHeldWorker(t *testing.T, orchURL string, paths ...string) (entered chan string, release map[string]chan struct{}) {
	entered, release = make(chan string, len(paths)), map[string]chan struct{}{}
	for _, p := range paths {
		release[p] = make(chan struct{})
	}
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		gate, ok := release[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.ReadAll(r.Body) // so the server notices when the orchestrator hangs up
		entered <- p
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(ws.Close)
	c := wire.ExternalCapability{Name: "gate", URL: ws.URL, Capacity: 4, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei"}
	if err := workerstub.Register(context.Background(), orchURL, testnet.Secret, c); err != nil {
		t.Fatal(err)
	}
	return entered, release
}

// Two concurrent jobs of one sender have separate holds: each is funded,
// charged and released on its own. The worker holds each job until the
// test lets it go, and the node bills on a manual clock, so what each job
// is charged does not depend on how busy the machine is.
func TestConcurrentJobsSeparateHolds(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Clock = clock })
	entered, release := startHeldWorker(t, n.URL, "short", "long")
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	payA, payB := c.Pay(c.Token("gate", ""), 6), c.Pay(c.Token("gate", ""), 9)
	results := map[string]chan testnet.JobResult{"short": make(chan testnet.JobResult, 1), "long": make(chan testnet.JobResult, 1)}
	for _, j := range []struct{ id, pay string }{{"short", payA}, {"long", payB}} {
		go func() {
			results[j.id] <- c.Job(testnet.JobSpec{Capability: "gate", ID: j.id, Path: j.id, Body: "x", Payment: j.pay})
		}()
	}
	// While both run, each has its own open hold with its own payment (the
	// worker may start while the admission's commit is in flight, so the
	// holds are looked for until they show).
	for range 2 {
		<-entered
	}
	held := map[string]int64{}
	testnet.Eventually(t, "both holds open while the jobs run", func() bool {
		var open []ledger.Account
		testnet.Admin(t, n, "/admin/jobs?sender="+c.Addr(), &open)
		clear(held)
		for _, a := range open {
			held[a.Ref.Name] = testnet.Amount(a.Balance)
		}
		return len(held) == 2
	})
	if held["short"] != 6000 || held["long"] != 9000 {
		t.Errorf("open holds while running: %v, want short 6000 long 9000", held)
	}
	// The short job ends at once (billed one second, the least); the long
	// one 1.5 s later (billed two).
	close(release["short"])
	if r := <-results["short"]; r.Status != http.StatusOK {
		t.Fatalf("short: %d %s", r.Status, r.Body)
	}
	clock.Advance(1500 * time.Millisecond)
	close(release["long"])
	if r := <-results["long"]; r.Status != http.StatusOK {
		t.Fatalf("long: %d %s", r.Status, r.Body)
	}
	short, long := testnet.Statement(t, n, c.Addr(), "short"), testnet.Statement(t, n, c.Addr(), "long")
	if testnet.Amount(short.Charged) != 1000 || testnet.Amount(short.Released) != 5000 || testnet.Amount(long.Charged) != 2000 || testnet.Amount(long.Released) != 7000 {
		t.Errorf("short charged %s released %s; long charged %s released %s", short.Charged, short.Released, long.Charged, long.Released)
	}
	if got := testnet.Balance(t, n, testnet.Pool(c.Addr(), "gate")); got != 12000 {
		t.Errorf("pool = %d, want 12000", got)
	}
	testnet.Verify(t, n)
}

// A request without a job ID is a legacy request: paid into and charged
// to the pool, as a capability-keyed node would, through a hold of its own
// closed back into the pool.
func TestLegacyJobChargedToPool(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	r := c.Job(testnet.JobSpec{Capability: "reverse", Body: "abc", Payment: c.Pay(c.Token("reverse", ""), 6)})
	if r.Status != http.StatusOK || r.Body != "cba" || r.Header.Get(wire.HeaderBalance) != "5000" {
		t.Fatalf("legacy job: %d %q balance %q", r.Status, r.Body, r.Header.Get(wire.HeaderBalance))
	}
	jobs, _ := n.Ledger.List(context.Background(), ledger.AccountFilter{Kind: ledger.KindJob, State: ledger.StateOpen})
	if len(jobs) != 0 {
		t.Fatalf("a legacy request left job accounts open: %+v", jobs)
	}
	r = c.Job(testnet.JobSpec{Capability: "reverse", Body: "abc"})
	if r.Status != http.StatusOK || r.Header.Get(wire.HeaderBalance) != "4000" {
		t.Fatalf("second legacy job: %d balance %q", r.Status, r.Header.Get(wire.HeaderBalance))
	}
	r = c.Job(testnet.JobSpec{Capability: "reverse", Body: "abc"})
	if r.Status != http.StatusPaymentRequired {
		t.Fatalf("legacy job below the minimum: %d %s", r.Status, r.Body)
	}
	testnet.Verify(t, n)
}

// Sender B cannot see or spend sender A's job: the same job ID under B is
// another job, on B's money.
func TestSenderIsolation(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Clock = clock })
	entered, release := startHeldWorker(t, n.URL, "a")
	a, b := testnet.NewClient(t, n.URL, testnet.KeyA), testnet.NewClient(t, n.URL, testnet.KeyB)
	done := make(chan testnet.JobResult, 1)
	go func() {
		done <- a.Job(testnet.JobSpec{Capability: "gate", ID: "shared", Path: "a", Body: "x", Payment: a.Pay(a.Token("gate", ""), 8)})
	}()
	<-entered // A's job runs until the test lets it go
	var tok *wire.JobToken
	testnet.Eventually(t, "A's running job in its token", func() bool {
		tok = a.Token("gate", "shared")
		return tok.JobBalance != ""
	})
	if tok.JobBalance != "8000" || tok.Balance != 8000 {
		t.Errorf("A's token for its running job: job %q balance %d", tok.JobBalance, tok.Balance)
	}
	if tok := b.Token("gate", "shared"); tok.JobBalance != "" || tok.Balance != 0 {
		t.Errorf("B sees A's job: job %q balance %d", tok.JobBalance, tok.Balance)
	}
	// B's job "shared" runs on B's money only: unpaid, it is refused.
	if r := b.Job(testnet.JobSpec{Capability: "gate", ID: "shared", Path: "a", Body: "x"}); r.Status != http.StatusPaymentRequired {
		t.Errorf("B's unpaid job with A's ID: %d %s", r.Status, r.Body)
	}
	close(release["a"])
	if r := <-done; r.Status != http.StatusOK {
		t.Fatalf("A's job: %d %s", r.Status, r.Body)
	}
	if s := testnet.Statement(t, n, a.Addr(), "shared"); testnet.Amount(s.Credited) != 8000 || testnet.Amount(s.Charged) != 1000 {
		t.Errorf("A's job: credited %s charged %s", s.Credited, s.Charged)
	}
	if got := testnet.Balance(t, n, testnet.Pool(b.Addr(), "gate")); got != 0 {
		t.Errorf("B's pool = %d", got)
	}
	testnet.Verify(t, n)
}

// A gateway that goes away mid-job: the job is charged for the time the
// worker spent, on the node's (manual) clock, and its hold goes back to
// the pool at once.
func TestGatewayGoneReleasesHold(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Clock = clock })
	entered, _ := startHeldWorker(t, n.URL, "gone")
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan testnet.JobResult)
	go func() {
		done <- c.Job(testnet.JobSpec{Ctx: ctx, Capability: "gate", ID: "gone", Path: "gone", Body: "x", Payment: c.Pay(c.Token("gate", ""), 10)})
	}()
	<-entered
	clock.Advance(1500 * time.Millisecond) // the worker had the job 1.5 s: 2 s billed
	cancel()
	<-done
	testnet.Eventually(t, "the hold to close", func() bool {
		a, err := n.Ledger.Account(context.Background(), ledger.JobKey{Sender: c.Addr(), JobID: "gone"}.Ref())
		return err == nil && a.State.IsFinal()
	})
	s := testnet.Statement(t, n, c.Addr(), "gone")
	if testnet.Amount(s.Charged) != 2000 || testnet.Amount(s.Released) != 8000 || testnet.Balance(t, n, testnet.Pool(c.Addr(), "gate")) != 8000 {
		t.Errorf("after the gateway left: charged %s released %s", s.Charged, s.Released)
	}
	testnet.Verify(t, n)
}

// A worker that dies mid-job is removed; the job is charged for the time
// the worker had it (on the node's manual clock), the rest is released,
// and the gateway gets a 5xx so it can try another orchestrator.
func TestWorkerCrashMidJob(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Clock = clock })
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Sleep, "sleep", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	done := make(chan testnet.JobResult)
	go func() {
		done <- c.Job(testnet.JobSpec{Capability: "sleep", ID: "crash", Body: testnet.SleepBody(time.Minute), Payment: c.Pay(c.Token("sleep", ""), 10)})
	}()
	if err := w.Handler().WaitFor(context.Background(), func(s workerstub.Stats) bool { return s.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2500 * time.Millisecond) // 3 s billed
	w.Crash()
	r := <-done
	if r.Status != http.StatusBadGateway || !strings.Contains(r.Body, "removing capability") {
		t.Fatalf("job on a crashed worker: %d %s", r.Status, r.Body)
	}
	if s := testnet.Statement(t, n, c.Addr(), "crash"); testnet.Amount(s.Charged) != 3000 || s.Account.State != ledger.StateClosed {
		t.Errorf("crashed job: charged %s state %s", s.Charged, s.Account.State)
	}
	if status, _ := c.TokenRaw("sleep", ""); status != http.StatusNotFound {
		t.Errorf("token after the worker was removed: %d", status)
	}
	testnet.Verify(t, n)
}

// An SSE job is charged while it streams and stopped, alone, when its hold
// runs dry; a second job of the same sender, held by its worker beside the
// stream, runs on. The node bills on a manual clock and its charge ticks
// are the test's.
func TestSSEJobRunsOutOfBalance(t *testing.T) {
	ticks := make(chan time.Time)
	var clock *ledger.ManualClock
	n, cw, c := clockNode(t, func(cfg *orchestrator.NodeConfig) {
		clock = cfg.Clock.(*ledger.ManualClock)
		cfg.Orchestrator.MinCompute = 2 * time.Second
		cfg.Orchestrator.Ticker = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
	})
	entered, release := startHeldWorker(t, n.URL, "other")
	released := false
	t.Cleanup(func() { // before the worker closes, should the test stop early
		if !released {
			close(release["other"])
		}
	})
	other := make(chan testnet.JobResult, 1)
	go func() {
		other <- c.Job(testnet.JobSpec{Capability: "gate", ID: "other", Path: "other", Body: "x", Payment: c.Pay(c.Token("gate", ""), 6)})
	}()
	<-entered
	// 3 tickets: three seconds of a stream that would run on.
	done := make(chan testnet.JobResult, 1)
	go func() {
		done <- c.Job(testnet.JobSpec{Capability: "sse", ID: "stream", Body: `{"advance_ms":0}`, Payment: c.Pay(c.Token("sse", ""), 3)})
	}()
	<-cw.got // the stream is out and stays open
	tick := func() { t.Helper(); tickStream(t, ticks, clock, done) }
	clock.Advance(3 * time.Second)
	tick() // 3 s: 3000 charged, the hold is empty
	tick() // taken once the relay is back from the first tick's charge
	clock.Advance(time.Second)
	tick() // 4 s: 1000 more, on an empty hold
	r := <-done
	if r.Status != http.StatusOK || !strings.HasSuffix(r.Body, "event: insufficient balance\ndata: {\"balance\": 0}\n\ndata: [DONE]\n\n") {
		t.Errorf("stream: %d\n%s", r.Status, r.Body)
	}
	if s := testnet.Statement(t, n, c.Addr(), "stream"); testnet.Amount(s.Charged) != 3000 || testnet.Amount(s.Account.Balance) != 0 {
		t.Errorf("stream charged %s (balance %s), want exactly its 3000", s.Charged, s.Account.Balance)
	}
	select {
	case o := <-other:
		t.Fatalf("the sender's other job ended with the stream: %d %s", o.Status, o.Body)
	default:
	}
	close(release["other"])
	released = true
	if o := <-other; o.Status != http.StatusOK || o.Body != "done" {
		t.Errorf("the sender's other job: %d %s", o.Status, o.Body)
	}
	testnet.Verify(t, n)
}

// An SSE job that finishes is charged for the seconds it used, its events
// relayed as they came, the balance line before [DONE].
func TestSSEJobCompletes(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.SSE, "sse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	r := c.Job(testnet.JobSpec{Capability: "sse", ID: "s1", Body: `{"events":3,"interval_ms":10}`, Payment: c.Pay(c.Token("sse", ""), 6)})
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("sse: %d %v", r.Status, r.Header)
	}
	if !strings.Contains(r.Body, "data: {\"balance\": 5000.000}\n\n\ndata: [DONE]") || strings.Count(r.Body, `"i":`) != 3 {
		t.Errorf("sse body:\n%s", r.Body)
	}
	if s := testnet.Statement(t, n, c.Addr(), "s1"); testnet.Amount(s.Charged) != 1000 {
		t.Errorf("sse charged %s", s.Charged)
	}
	testnet.Verify(t, n)
}

// A payment replayed after the orchestrator restarted is refused and
// credits nothing: seen nonces are in the ledger's store, and ticket params
// issued before the restart stay valid (the PM secret is in the data dir).
func TestReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	n := testnet.StartNode(t, dir, nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	payment := c.Pay(c.Token("reverse", ""), 6)
	if r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "first", Body: "a", Payment: payment}); r.Status != http.StatusOK {
		t.Fatalf("first job: %d %s", r.Status, r.Body)
	}
	n.Close()
	n = testnet.StartNode(t, dir, func(cfg *orchestrator.NodeConfig) {
		cfg.Listen = strings.Replace(n.URL, "https://", "https://", 1) // same address, so the token's service_addr holds
	})
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c.Orch = n.URL
	before := testnet.Balance(t, n, testnet.Pool(c.Addr(), "reverse"))
	r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "replay", Body: "a", Payment: payment})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "already seen") || r.Header.Get(wire.HeaderPaymentCredited) != "0" {
		t.Fatalf("replayed payment: %d %s (Livepeer-Payment-Credited %q, want 0)", r.Status, r.Body, r.Header.Get(wire.HeaderPaymentCredited))
	}
	if after := testnet.Balance(t, n, testnet.Pool(c.Addr(), "reverse")); after != before {
		t.Fatalf("replay changed the pool from %d to %d", before, after)
	}
	// Fresh tickets on params issued before the restart are still good.
	tok := c.Token("reverse", "")
	n.Close()
	n = testnet.StartNode(t, dir, func(cfg *orchestrator.NodeConfig) { cfg.Listen = n.URL })
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	if r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "fresh", Body: "a", Payment: c.Pay(tok, 1)}); r.Status != http.StatusOK {
		t.Fatalf("payment on pre-restart params: %d %s", r.Status, r.Body)
	}
	testnet.Verify(t, n)
}

// Bad input gets a clear 4xx and never changes a balance.
func TestBadInputChangesNothing(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Orchestrator.MaxBodyBytes = 1024 })
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	a, b := testnet.NewClient(t, n.URL, testnet.KeyA), testnet.NewClient(t, n.URL, testnet.KeyB)
	unsigned := testnet.NewClient(t, n.URL, "")
	fund := a.Job(testnet.JobSpec{Capability: "reverse", ID: "fund", Body: "x", Payment: a.Pay(a.Token("reverse", ""), 10)})
	if fund.Status != http.StatusOK {
		t.Fatalf("funding job: %d %s", fund.Status, fund.Body)
	}
	before := testnet.Verify(t, n)
	good := a.Pay(a.Token("reverse", ""), 6)
	for _, tc := range []struct {
		name string
		c    *testnet.Client
		spec testnet.JobSpec
		want int
		text string
	}{
		{"oversized body", a, testnet.JobSpec{Capability: "reverse", ID: "big", Body: strings.Repeat("x", 2000), Payment: good}, 413, "too large"},
		{"malformed payment", a, testnet.JobSpec{Capability: "reverse", ID: "m", Body: "x", Payment: "!!notbase64"}, 400, "Invalid payment"},
		{"forged tickets", a, testnet.JobSpec{Capability: "reverse", ID: "f", Body: "x", Payment: tamper(t, a.Pay(a.Token("reverse", ""), 6))}, 400, "Invalid payment"},
		{"someone else's tickets", b, testnet.JobSpec{Capability: "reverse", ID: "s", Body: "x", Payment: good}, 400, "pay for a job of"},
		{"negative timeout", a, testnet.JobSpec{Capability: "reverse", ID: "n", Body: "x", Edit: func(r *wire.JobRequest) { r.TimeoutSeconds = -5 }}, 400, "timeout"},
		{"absurd timeout", a, testnet.JobSpec{Capability: "reverse", ID: "t", Body: "x", Timeout: 1 << 40}, 400, "timeout"},
		{"forged job signature", a, testnet.JobSpec{Capability: "reverse", ID: "g", Body: "x", Edit: func(r *wire.JobRequest) { r.Sender = b.Addr() }}, 400, "Could not verify job creds"},
		{"garbage job header", a, testnet.JobSpec{Capability: "reverse", ID: "h", Body: "x", Header: map[string]string{wire.HeaderJobRequest: "%%%"}}, 400, "Could not verify job creds"},
		{"request not JSON", a, testnet.JobSpec{Capability: "reverse", ID: "r", Body: "x", Edit: func(r *wire.JobRequest) { r.Request = "run it" }}, 400, ""},
		{"unknown capability", a, testnet.JobSpec{Capability: "nope", ID: "u", Body: "x"}, 503, "No capacity"},
		{"unsigned job on a priced capability", unsigned, testnet.JobSpec{Capability: "reverse", ID: "x", Body: "x"}, 402, "sign the request"},
		{"job ID with a control character", a, testnet.JobSpec{Capability: "reverse", ID: "bad\x01id", Body: "x"}, 400, "Invalid job id"},
	} {
		r := tc.c.Job(tc.spec)
		if r.Status != tc.want || !strings.Contains(r.Body, tc.text) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, r.Status, r.Body, tc.want, tc.text)
		}
	}
	after := testnet.Verify(t, n)
	if after.Credited.Cmp(before.Credited) != 0 || after.Charged.Cmp(before.Charged) != 0 || after.PoolTotal.Cmp(before.PoolTotal) != 0 {
		t.Errorf("bad input moved money: %+v → %+v", before, after)
	}
	if w.Handler().Stats().Served != 1 {
		t.Errorf("the worker ran %d jobs, want only the funding one", w.Handler().Stats().Served)
	}
	// The untouched payment still works afterwards.
	if r := a.Job(testnet.JobSpec{Capability: "reverse", ID: "ok", Body: "x", Payment: good}); r.Status != http.StatusOK {
		t.Errorf("good payment after the bad ones: %d %s", r.Status, r.Body)
	}
}

// tamper flips a bit in the first ticket's signature of a payment header.
func tamper(t *testing.T, header string) string {
	p, err := wire.DecodePaymentHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Clone()
	q.TicketSenderParams[0].Sig[3] ^= 0x10
	return wire.EncodePaymentHeader(q)
}

func TestRegistration(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	post := func(path, auth, body string) int {
		req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := testnet.Insecure.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := `{"name":"r","url":"` + w.CapabilityURL(workerstub.Reverse) + `","capacity":1,"price_per_unit":3,"price_scaling":2}`
	for _, tc := range []struct {
		name, path, auth, body string
		want                   int
	}{
		{"wrong secret", "/capability/register", "nope", good, 401},
		{"no secret", "/capability/register", "", good, 401},
		{"bad JSON", "/capability/register", testnet.Secret, "{", 400},
		{"USD without a price feed", "/capability/register", testnet.Secret, strings.Replace(good, `"price_scaling":2`, `"price_scaling":2,"currency":"USD"`, 1), 400},
		{"zero capacity", "/capability/register", testnet.Secret, strings.Replace(good, `"capacity":1`, `"capacity":0`, 1), 400},
		{"ftp URL", "/capability/register", testnet.Secret, strings.Replace(good, "http://", "ftp://", 1), 400},
		{"good", "/capability/register", testnet.Secret, good, 200},
		{"unregister, wrong secret", "/capability/unregister", "nope", "r", 401},
	} {
		if got := post(tc.path, tc.auth, tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	// 3/2 wei per second is quoted exactly, not floored to 1 (D15).
	if tok := c.Token("r", ""); tok.Price.PricePerUnit != 3 || tok.Price.PixelsPerUnit != 2 {
		t.Errorf("fractional price quoted as %+v", tok.Price)
	}
	// A second worker adds its capacity; re-registering one updates it.
	w2 := testnet.StartWorker(t)
	body2 := strings.Replace(good, w.URL(), w2.URL(), 1)
	post("/capability/register", testnet.Secret, body2)
	post("/capability/register", testnet.Secret, strings.Replace(good, `"capacity":1`, `"capacity":3`, 1))
	if tok := c.Token("r", ""); tok.AvailableCapacity != 4 {
		t.Errorf("capacity of two workers = %d, want 3+1", tok.AvailableCapacity)
	}
	if post("/capability/unregister", testnet.Secret, "r") != 200 {
		t.Fatal("unregister failed")
	}
	if r := c.Job(testnet.JobSpec{Capability: "r", ID: "gone", Body: "x"}); r.Status != http.StatusServiceUnavailable {
		t.Errorf("job after unregister: %d", r.Status)
	}
}

// Capacity is a limit: with one slot busy, the next job gets 503 and the
// token says no capacity; a free capability needs no payment.
func TestCapacityEnforced(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Sleep, "sleep", 0, 1)
	c := testnet.NewClient(t, n.URL, "")
	done := make(chan testnet.JobResult)
	go func() {
		done <- c.Job(testnet.JobSpec{Capability: "sleep", ID: "a", Body: testnet.SleepBody(time.Minute)})
	}()
	if err := w.Handler().WaitFor(context.Background(), func(s workerstub.Stats) bool { return s.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	if r := c.Job(testnet.JobSpec{Capability: "sleep", ID: "b", Body: testnet.SleepBody(0)}); r.Status != http.StatusServiceUnavailable {
		t.Errorf("second job on a full capability: %d %s", r.Status, r.Body)
	}
	if status, _ := c.TokenRaw("sleep", ""); status != http.StatusServiceUnavailable {
		t.Errorf("token on a full capability: %d", status)
	}
	w.Crash()
	<-done
	testnet.Verify(t, n)
}

func TestAdminAndMetrics(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	c.Job(testnet.JobSpec{Capability: "reverse", ID: "j", Body: "x", Payment: c.Pay(c.Token("reverse", ""), 6)})
	req, _ := http.NewRequest(http.MethodGet, n.AdminURL+"/admin/pools", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin without a token: %v %v", resp, err)
	}
	var pools []ledger.Account
	if testnet.Admin(t, n, "/admin/pools", &pools) != 200 || len(pools) != 1 || testnet.Amount(pools[0].Balance) != 5000 {
		t.Errorf("pools %+v", pools)
	}
	var st ledger.Statement
	if testnet.Admin(t, n, "/admin/jobs/"+c.Addr()+"/j", &st) != 200 || testnet.Amount(st.Charged) != 1000 {
		t.Errorf("statement %+v", st)
	}
	if testnet.Admin(t, n, "/admin/jobs/"+c.Addr()+"/nope", nil) != http.StatusNotFound {
		t.Error("statement of an unknown job is not 404")
	}
	// A list's limit and a winners' state that make no sense are refused
	// saying so, not read as the defaults.
	for _, path := range []string{"/admin/pools?limit=abc", "/admin/pools?limit=0", "/admin/jobs?limit=-1",
		"/admin/jobs?limit=99999999999999999999", "/admin/jobs/" + c.Addr() + "/j?limit=1e3", "/admin/winners?limit=100001",
		"/admin/winners?state=won"} {
		req, _ := http.NewRequest(http.MethodGet, n.AdminURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+n.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "want ") {
			t.Errorf("%s: %d %q; want 400 saying what it wants", path, resp.StatusCode, body)
		}
	}
	if testnet.Admin(t, n, "/admin/pools?limit=1", &pools) != 200 || len(pools) != 1 {
		t.Errorf("pools with limit=1: %+v", pools)
	}
	var winners []ledger.Winner
	if testnet.Admin(t, n, "/admin/winners?state=redeemed&limit=100000", &winners) != 200 {
		t.Error("winners redeemed, limit=100000: not 200")
	}
	resp, err := http.Get(n.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`byoc_orchestrator_jobs_total{capability="reverse",outcome="ok"} 1`,
		`byoc_orchestrator_tickets_total{result="credited"} 6`,
		`byoc_orchestrator_charged_wei_total 1000`,
		`byoc_orchestrator_worker_seconds_count{capability="reverse"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A worker that refuses our token (401) is removed, and the job, which it
// did not run, is not charged.
func TestWorkerRefusingTokenIsRemoved(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := workerstub.Start(t, workerstub.Config{Token: "right"})
	c := w.Capability(workerstub.Reverse)
	c.Name, c.PricePerUnit, c.Token = "reverse", 1000, "wrong"
	if err := workerstub.Register(context.Background(), n.URL, testnet.Secret, c); err != nil {
		t.Fatal(err)
	}
	cl := testnet.NewClient(t, n.URL, testnet.KeyA)
	r := cl.Job(testnet.JobSpec{Capability: "reverse", ID: "j", Body: "x", Payment: cl.Pay(cl.Token("reverse", ""), 6)})
	if r.Status != http.StatusBadGateway || !strings.Contains(r.Body, "worker auth token failed") {
		t.Fatalf("job on a worker refusing our token: %d %s", r.Status, r.Body)
	}
	if s := testnet.Statement(t, n, cl.Addr(), "j"); testnet.Amount(s.Charged) != 0 || testnet.Amount(s.Released) != 6000 {
		t.Errorf("charged %s released %s, want nothing charged", s.Charged, s.Released)
	}
	if status, _ := cl.TokenRaw("reverse", ""); status != http.StatusNotFound {
		t.Errorf("token after removal: %d", status)
	}
	testnet.Verify(t, n)
}

// One sender may run at most MaxOpenJobsPerSender jobs at once.
func TestOpenJobsPerSenderBounded(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Orchestrator.MaxOpenJobsPerSender = 1 })
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Sleep, "sleep", 0, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	done := make(chan testnet.JobResult)
	go func() {
		done <- c.Job(testnet.JobSpec{Capability: "sleep", ID: "a", Body: testnet.SleepBody(time.Minute)})
	}()
	if err := w.Handler().WaitFor(context.Background(), func(s workerstub.Stats) bool { return s.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	if r := c.Job(testnet.JobSpec{Capability: "sleep", ID: "b", Body: testnet.SleepBody(0)}); r.Status != http.StatusTooManyRequests {
		t.Errorf("second job of the sender: %d %s", r.Status, r.Body)
	}
	if r := testnet.NewClient(t, n.URL, testnet.KeyB).Job(testnet.JobSpec{Capability: "sleep", ID: "b", Body: testnet.SleepBody(0)}); r.Status != http.StatusOK {
		t.Errorf("another sender's job: %d %s", r.Status, r.Body)
	}
	w.Crash()
	<-done
}

// The orchestrator runs on a PostgreSQL ledger (--ledger-dsn) as on the
// embedded one.
func TestPostgresLedger(t *testing.T) {
	dsn := ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.LedgerDSN = dsn })
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "pg", Body: "abc", Payment: c.Pay(c.Token("reverse", ""), 6)})
	if r.Status != http.StatusOK || r.Header.Get(wire.HeaderBalance) != "5000" {
		t.Fatalf("job on PostgreSQL: %d %q %s", r.Status, r.Header.Get(wire.HeaderBalance), r.Body)
	}
	testnet.Verify(t, n)
}
