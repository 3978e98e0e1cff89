package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
)

// A stream and a job of one sender at one orchestrator count on the same
// prepaid credit in the pool: the stream's draw is reserved in the
// gateway's books (ledger.Pending) before its start is paid, as a job's
// is, so the job that begins while the stream holds that credit pays for
// itself in full instead of counting the credit a second time (and being
// refused 402 by the orchestrator, which holds it for the stream). The books
// never report more than the orchestrator holds (no comparison finds the
// orchestrator lower, nothing is written down) and, at the end, match its
// ledger exactly (the stream charged 6 s at both). On every store (the embedded
// journal, plain SQLite, PostgreSQL): both roles' ledgers on each.
func TestStreamAndJobShareAPool(t *testing.T) {
	for _, store := range []string{"journal", "sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { testStreamAndJobShareAPool(t, store) })
	}
}

func testStreamAndJobShareAPool(t *testing.T, store string) {
	clock, o, gw := streamNodes(t, store, nil, func(o *orchestrator.Node) { liveWorker(t, o, 8) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := gwClient(t, ctx, gw)
	startStream := func(id string) {
		t.Helper()
		status, out := client(http.MethodPost, "/process/stream/start", `{"stream_id":"`+id+`","params":"{}"}`,
			&wire.JobRequest{Request: `{}`, Parameters: "{}", Capability: "live", TimeoutSeconds: 10})
		if status != http.StatusOK || gw.StreamState(ctx, id) != "running" {
			t.Fatalf("start %s: %d %s", id, status, out)
		}
	}
	stopStream := func(id string) {
		t.Helper()
		if status, out := client(http.MethodPost, "/process/stream/"+id+"/stop", "bye", nil); status != http.StatusOK {
			t.Fatalf("stop %s: %d %s", id, status, out)
		}
	}
	gwPool := func() int64 {
		t.Helper()
		return books(t, gw.Ledger, o.Address.Hex(), "live").pool
	}

	// Credit in the pool: a stream paid for 10 s that ran 3 s leaves 7 s.
	startStream("first")
	clock.Advance(3 * time.Second)
	stopStream("first")
	if p := agree(t, gw, o, "live").pool; p != 7000 {
		t.Fatalf("pool after the first stream: %d, want 7000", p)
	}
	// A job reads the pool into the books and counts on its credit.
	mustOK(t, submit(t, gw, jobSpec{capability: "live", timeout: 5}))
	credit := gwPool()
	if credit <= 0 {
		t.Fatalf("no credit left in the pool for the race: %d", credit)
	}

	// The stream takes the pool's credit; the job right after it (its
	// token reused from the stream's start: the figure before the stream
	// drew) must not count it again.
	startStream("second")
	if p := gwPool(); p < 0 {
		t.Fatalf("the books' pool went negative: %d", p)
	}
	mustOK(t, submit(t, gw, jobSpec{capability: "live", timeout: 5}))
	if p := gwPool(); p < 0 {
		t.Fatalf("the books' pool went negative: %d", p)
	}
	// While the stream holds the credit, jobs compare the books with the
	// orchestrator's fresh figures: the books never claim more than it
	// holds (a second lower figure would write the books down).
	for range 2 {
		clock.Advance(3 * time.Second) // past the token reuse
		mustOK(t, submit(t, gw, jobSpec{capability: "live", timeout: 5}))
	}
	stopStream("second")
	if failed := metric(t, gw, "byoc_gateway_orchestrator_attempts_total", "stage", "job"); failed != 0 {
		t.Errorf("%v job attempts failed (402: a job counted on the credit the stream holds, paid too little)", failed)
	}
	if lower := metric(t, gw, "byoc_gateway_books_comparisons_total", "result", "orchestrator_lower"); lower != 0 {
		t.Errorf("%v comparisons found the orchestrator holding less than the books: the stream's credit was counted twice", lower)
	}
	if wd := metric(t, gw, "byoc_gateway_books_written_down_wei_total"); wd != 0 {
		t.Errorf("written down: %v wei", wd)
	}
	if agreed := metric(t, gw, "byoc_gateway_books_comparisons_total", "result", "agree"); agreed == 0 {
		t.Errorf("no comparison of the books agreed: the test compared nothing")
	}
	if p := gwPool(); p < 0 {
		t.Errorf("the books' pool went negative: %d", p)
	}
	agree(t, gw, o, "live")
}

// A stream whose start fails after its tickets reached the orchestrator
// (its worker answers 500): the orchestrator credited them to the stream's
// hold, charged the start's second and closed it, the rest going to the
// pool; the gateway's books do the same (its Livepeer-Job-Charged), so
// both show the payment and agree. A start that later succeeds at the same
// orchestrator counts on that credit. On every store, for both roles.
func TestStreamStartFailedAfterPayment(t *testing.T) {
	for _, store := range []string{"journal", "sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { testStreamStartFailedAfterPayment(t, store) })
	}
}

func testStreamStartFailedAfterPayment(t *testing.T, store string) {
	sw := &e2eStreamWorker{failStart: true}
	clock, o, gw := streamNodes(t, store, nil, func(o *orchestrator.Node) { registerLive(t, o, sw, 4) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	startStream(t, ctx, gw, "fails", "failed")
	if sw.count("/stream/start", "fails") != 1 {
		t.Fatalf("the worker did not get the start")
	}
	orchSt := statement(t, o, gw.Address(), "fails")
	if amount(t, orchSt.Credited) != 10000 || amount(t, orchSt.Charged) != 1000 || orchSt.Account.State != ledger.StateClosed {
		t.Fatalf("the orchestrator's hold of the failed start: credited %s charged %s %s; want 10000, 1000, closed",
			orchSt.Credited, orchSt.Charged, orchSt.Account.State)
	}
	gwSt, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: o.Address.Hex(), JobID: gateway.StreamHoldJobID("fails")}.Ref(), 0)
	if err != nil || amount(t, gwSt.Credited) != 10000 || amount(t, gwSt.Charged) != 1000 || gwSt.Account.State != ledger.StateClosed {
		t.Errorf("the gateway's books of the failed start: %+v, %v; want credited 10000, charged 1000, closed", gwSt.Account, err)
	}
	if p := agree(t, gw, o, "live").pool; p != 9000 {
		t.Errorf("pool after the failed start: %d, want 9000", p)
	}

	// The next stream counts on that credit, at both.
	sw.mu.Lock()
	sw.failStart = false
	sw.mu.Unlock()
	startStream(t, ctx, gw, "works", "running")
	clock.Advance(2 * time.Second)
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/process/stream/works/stop", strings.NewReader("bye"))
	if resp, err := http.DefaultClient.Do(r); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stop: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// It drew the 9000 and paid 1000; 2 s charged, 8000 released.
	if p := agree(t, gw, o, "live").pool; p != 8000 {
		t.Errorf("pool after the second stream: %d, want 8000", p)
	}
	if wd := metric(t, gw, "byoc_gateway_books_written_down_wei_total"); wd != 0 {
		t.Errorf("written down: %v wei", wd)
	}
}

// A stream whose start reached the orchestrator and ran there, but whose
// answer never came back (the connection broke): the gateway books the
// start's tickets as credited, as for a job, counts the stream failed and
// asks the orchestrator to stop it, so that it does not run on, charging
// its hold there, for a stream no client uses. The orchestrator's hold
// then closes at its stop, the worker gets the stop, and both books agree.
func TestStreamStartUnanswered(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	noTicks := func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	o := startOrch(t, func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		c.Orchestrator.StreamTicker = noTicks
	})
	sw := registerLive(t, o, &e2eStreamWorker{}, 4)
	drop := &dropStartAnswer{base: gateway.NewOrchestratorClient(nil).Transport}
	gw := startGateway(t, testnet.KeyA, []string{o.URL}, func(c *gateway.NodeConfig) {
		c.Gateway.StreamTicker = noTicks
		c.Gateway.StreamHost = "https://gw.example"
		c.Gateway.Client = &http.Client{Transport: drop}
		c.Clock = clock
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	startStream(t, ctx, gw, "unanswered", "failed")
	if drop.dropped.Load() != 1 {
		t.Fatalf("%d start answers dropped; want 1", drop.dropped.Load())
	}
	if sw.count("/stream/start", "unanswered") != 1 {
		t.Fatalf("the worker did not get the start")
	}
	testnet.Eventually(t, "the orchestrator to stop the stream whose start went unanswered", func() bool {
		return statement(t, o, gw.Address(), "unanswered").Account.State == ledger.StateClosed
	})
	if n := sw.count("/stream/stop", "unanswered"); n != 1 {
		t.Errorf("the worker got %d stops; want 1", n)
	}
	orchSt := statement(t, o, gw.Address(), "unanswered")
	gwSt, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: o.Address.Hex(), JobID: gateway.StreamHoldJobID("unanswered")}.Ref(), 0)
	if err != nil || gwSt.Account.State != ledger.StateClosed || gwSt.Credited.Cmp(orchSt.Credited) != 0 || orchSt.Credited.Sign() <= 0 {
		t.Errorf("the gateway's books of the unanswered start: %+v, %v; want closed, credited as the orchestrator's hold (%s)",
			gwSt.Account, err, orchSt.Credited)
	}
	agree(t, gw, o, "live") // each charged the start's second
}

// dropStartAnswer sends a stream's first start and loses its answer, as a
// connection that breaks after the orchestrator answered would.
type dropStartAnswer struct {
	base    http.RoundTripper
	dropped atomic.Int32
}

func (d *dropStartAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.base.RoundTrip(r)
	if err == nil && r.URL.Path == "/ai/stream/start" && d.dropped.Add(1) == 1 {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("connection reset before the answer (test)")
	}
	return resp, err
}
