package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
)

// memChannels stands in for the trickle server: it records which channels
// exist and the events the orchestrator writes.
type memChannels struct {
	mu     sync.Mutex
	open   map[string]string // name → MIME type
	closed []string
	events map[string][]string
}

func (m *memChannels) Create(name, mime string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open == nil {
		m.open = map[string]string{}
	}
	m.open[name] = mime
}

func (m *memChannels) Close(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.open, name)
	m.closed = append(m.closed, name)
}

func (m *memChannels) Publish(name string, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		m.events = map[string][]string{}
	}
	m.events[name] = append(m.events[name], string(b))
	return nil
}

func (m *memChannels) names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.open {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// workerCall is one call the stream worker got.
type workerCall struct {
	Path, StreamID, Auth, ContentType, Body string
}

// streamWorker answers /stream/start, /stream/params and /stream/stop and
// records each call.
type streamWorker struct {
	mu    sync.Mutex
	calls []workerCall
	// hang, when set, holds each /stream/stop until it is closed; stopping
	// gets the stream's ID when such a stop arrives.
	hang     chan struct{}
	stopping chan string
}

func (sw *streamWorker) handle(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	sw.mu.Lock()
	sw.calls = append(sw.calls, workerCall{r.URL.Path, r.Header.Get(wire.HeaderStreamID), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
	hang, stopping := sw.hang, sw.stopping
	sw.mu.Unlock()
	if hang != nil && r.URL.Path == "/live/stream/stop" {
		stopping <- r.Header.Get(wire.HeaderStreamID)
		<-hang
	}
	switch r.URL.Path {
	case "/live/stream/start":
		w.WriteHeader(http.StatusOK)
	case "/live/stream/params":
		io.WriteString(w, `{"updated":true}`)
	case "/live/stream/stop":
		io.WriteString(w, `{"stopped":true}`)
	default:
		http.NotFound(w, r)
	}
}

// callsFor returns the calls the worker got for stream id.
func (sw *streamWorker) callsFor(id string) []workerCall {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var out []workerCall
	for _, c := range sw.calls {
		if c.StreamID == id {
			out = append(out, c)
		}
	}
	return out
}

func (sw *streamWorker) count() int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return len(sw.calls)
}

// streamNet is an orchestrator on a manual clock with a stream worker
// registered as capability "live" (1000 wei per second, capacity 2, token
// "wtok"), in-memory channels and a paying client.
type streamNet struct {
	n      *orchestrator.Node
	clock  *ledger.ManualClock
	ch     *memChannels
	w      *streamWorker
	c      *testnet.Client
	ticks  chan time.Time
	period time.Duration // what the node asked its stream ticker for
}

func startStreamNet(t *testing.T, tweak func(*orchestrator.NodeConfig)) *streamNet {
	t.Helper()
	sn := &streamNet{clock: ledger.NewManualClock(time.Now()), ch: &memChannels{}, w: &streamWorker{}, ticks: make(chan time.Time)}
	var mu sync.Mutex
	sn.n = testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Clock = sn.clock
		c.Orchestrator.Channels = sn.ch
		c.Orchestrator.StreamGrace = 10 * time.Second
		c.Orchestrator.StreamSettleInterval = 5 * time.Second
		c.Orchestrator.StreamTicker = func(d time.Duration) (<-chan time.Time, func()) {
			mu.Lock()
			sn.period = d
			mu.Unlock()
			return sn.ticks, func() {}
		}
		if tweak != nil {
			tweak(c)
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(sn.w.handle))
	t.Cleanup(srv.Close)
	body, _ := json.Marshal(wire.ExternalCapability{Name: "live", URL: srv.URL + "/live", Capacity: 2, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei", Token: "wtok"})
	req, _ := http.NewRequest(http.MethodPost, sn.n.URL+"/capability/register", bytes.NewReader(body))
	req.Header.Set("Authorization", testnet.Secret)
	resp, err := testnet.Insecure.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	sn.c = testnet.NewClient(t, sn.n.URL, testnet.KeyA)
	return sn
}

type streamAnswer struct {
	Status int
	Header http.Header
	Body   string
}

// call sends a signed stream request to route with payment (a
// Livepeer-Payment header or "") and body.
func (sn *streamNet) call(t *testing.T, c *testnet.Client, route string, jr wire.JobRequest, payment, body string) streamAnswer {
	t.Helper()
	if jr.TimeoutSeconds == 0 {
		jr.TimeoutSeconds = 10
	}
	if jr.Capability == "" {
		jr.Capability = "live"
	}
	if err := wire.SignJobRequest(c.WireSigner(), &jr); err != nil {
		t.Fatal(err)
	}
	h, err := wire.EncodeJobRequestHeader(&jr)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, sn.n.URL+"/ai/stream/"+route, strings.NewReader(body))
	req.Header.Set(wire.HeaderJobRequest, h)
	req.Header.Set("Content-Type", "application/json")
	if payment != "" {
		req.Header.Set(wire.PaymentHeader, payment)
	}
	resp, err := testnet.Insecure.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return streamAnswer{resp.StatusCode, resp.Header, string(b)}
}

// start starts stream id paid with n tickets (timeout 10 s: a 10000 hold).
func (sn *streamNet) start(t *testing.T, c *testnet.Client, id string, tickets int, params string) streamAnswer {
	t.Helper()
	return sn.call(t, c, "start", wire.JobRequest{ID: id, Request: `{"run":"live"}`, Parameters: params}, c.Pay(c.Token("live", ""), tickets), `{"params":{"prompt":"hi"}}`)
}

// details is a request naming stream id, as gateways send on update, stop
// and payment.
func details(id string) string { return `{"stream_id":"` + id + `"}` }

// A stream's whole life on the orchestrator: a paid start opens one hold
// under the stream's ID, creates its channels and starts the worker with
// X-Stream-Id and the bearer token; update reaches /stream/params; a
// go-livepeer master gateway's payment (id "") tops up the stream its
// details name; stop charges the time used, releases the rest, tells the
// worker, closes the channels and frees the slot, answering 200 with the
// worker's body.
func TestStreamLifecycle(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		sn := startStreamNet(t, tweak)
		c := sn.c
		a := sn.start(t, c, "cam1", 10, `{"enable_data_output":true}`)
		if a.Status != http.StatusOK || a.Body != "" {
			t.Fatalf("start: %d %q", a.Status, a.Body)
		}
		base := sn.n.URL + "/ai/trickle/cam1"
		for h, want := range map[string]string{wire.HeaderControlURL: base + "-control", wire.HeaderEventsURL: base + "-events",
			wire.HeaderDataURL: base + "-data", wire.HeaderPublishURL: "", wire.HeaderSubscribeURL: "", wire.HeaderBalance: "9000"} {
			if got := a.Header.Get(h); got != want {
				t.Errorf("start %s = %q, want %q", h, got, want)
			}
		}
		if got := sn.ch.names(); !slices.Equal(got, []string{"cam1-control", "cam1-data", "cam1-events"}) {
			t.Errorf("channels %v", got)
		}
		calls := sn.w.callsFor("cam1")
		if len(calls) != 1 || calls[0].Path != "/live/stream/start" || calls[0].Auth != "Bearer wtok" || calls[0].ContentType != "application/json" {
			t.Fatalf("worker calls %+v", calls)
		}
		var wb map[string]any
		if err := json.Unmarshal([]byte(calls[0].Body), &wb); err != nil || wb["gateway_request_id"] != "cam1" ||
			wb["control_url"] != base+"-control" || wb["events_url"] != base+"-events" || wb["data_url"] != base+"-data" || wb["params"] == nil {
			t.Errorf("worker start body %s", calls[0].Body)
		}
		hold := ledger.JobKey{Sender: c.Addr(), JobID: "cam1"}.Ref()
		if got := testnet.Balance(t, sn.n, hold); got != 10000 {
			t.Errorf("hold after start %d, want 10000 (nothing charged until a settlement)", got)
		}

		sn.clock.Advance(3500 * time.Millisecond)
		u := sn.call(t, c, "update", wire.JobRequest{Request: details("cam1")}, "", `{"prompt":"bye"}`)
		if u.Status != http.StatusOK || u.Body != `{"updated":true}` {
			t.Errorf("update: %d %q", u.Status, u.Body)
		}
		if calls := sn.w.callsFor("cam1"); len(calls) != 2 || calls[1].Path != "/live/stream/params" || calls[1].Body != `{"prompt":"bye"}` || calls[1].Auth != "Bearer wtok" {
			t.Errorf("worker calls after update %+v", calls)
		}

		// A master gateway's top-up: id "", the stream in the details.
		p := sn.call(t, c, "payment", wire.JobRequest{Request: details("cam1"), Parameters: "{}", TimeoutSeconds: 70}, c.Pay(c.Token("live", ""), 5), "")
		if p.Status != http.StatusOK || p.Body != "" || p.Header.Get(wire.HeaderBalance) != "11000" || p.Header.Get(wire.HeaderPaymentCredited) != "5000" {
			t.Errorf("payment at 3.5 s: %d %q balance %q credited %q; want 200, 15000 - 4000 = 11000", p.Status, p.Body, p.Header.Get(wire.HeaderBalance), p.Header.Get(wire.HeaderPaymentCredited))
		}
		if got := testnet.Balance(t, sn.n, hold); got != 11000 {
			t.Errorf("hold after the payment %d, want 11000 (4 s charged at the payment)", got)
		}
		if tok := c.Token("live", "cam1"); tok.Balance != 11000 {
			t.Errorf("token naming the stream: balance %d, want 11000", tok.Balance)
		}

		sn.clock.Advance(2 * time.Second) // 5.5 s: 6 s billed
		s := sn.call(t, c, "stop", wire.JobRequest{Request: details("cam1")}, "", "stream ended")
		if s.Status != http.StatusOK || s.Body != `{"stopped":true}` {
			t.Errorf("stop: %d %q", s.Status, s.Body)
		}
		calls = sn.w.callsFor("cam1")
		if len(calls) != 3 || calls[2].Path != "/live/stream/stop" || calls[2].Body != "stream ended" || calls[2].Auth != "Bearer wtok" {
			t.Errorf("worker calls after stop %+v", calls)
		}
		if got := sn.ch.names(); len(got) != 0 {
			t.Errorf("channels open after stop: %v", got)
		}
		st := testnet.Statement(t, sn.n, c.Addr(), "cam1")
		if st.Account.State != ledger.StateClosed || testnet.Amount(st.Charged) != 6000 || testnet.Amount(st.Credited) != 15000 || testnet.Amount(st.Released) != 9000 {
			t.Errorf("stream stopped at 5.5 s: %s, credited %s charged %s released %s; want closed, 15000, 6000, 9000",
				st.Account.State, st.Credited, st.Charged, st.Released)
		}
		if tok := c.Token("live", ""); tok.AvailableCapacity != 2 {
			t.Errorf("capacity after stop %d, want 2", tok.AvailableCapacity)
		}

		// The stream is gone: nothing more reaches the worker.
		before := sn.w.count()
		for _, route := range []string{"update", "stop", "payment"} {
			if a := sn.call(t, c, route, wire.JobRequest{Request: details("cam1")}, "", "{}"); a.Status != http.StatusNotFound {
				t.Errorf("%s after stop: %d %q, want 404", route, a.Status, a.Body)
			}
			if a := sn.call(t, c, route, wire.JobRequest{Request: details("never")}, "", "{}"); a.Status != http.StatusNotFound {
				t.Errorf("%s of an unknown stream: %d %q, want 404", route, a.Status, a.Body)
			}
		}
		if sn.w.count() != before {
			t.Errorf("requests for unknown streams reached the worker")
		}
		testnet.Verify(t, sn.n)
	})
}

// IDs that could name another stream's channel are refused before any
// money moves or any channel is made; so are update, stop and payment of
// another sender's stream, and a second start of a running stream.
func TestStreamIDsCannotCollide(t *testing.T) {
	sn := startStreamNet(t, nil)
	c := sn.c
	for _, id := range []string{"a-out", "a-control", "a-events", "a-data", "a/b", "", "..", "a b", strings.Repeat("x", 129)} {
		a := sn.call(t, c, "start", wire.JobRequest{ID: id, Request: "{}"}, "", "{}")
		if a.Status != http.StatusBadRequest {
			t.Errorf("start of %q: %d %q, want 400", id, a.Status, a.Body)
		}
	}
	if sn.w.count() != 0 || len(sn.ch.names()) != 0 {
		t.Fatalf("a refused start reached the worker or made channels")
	}
	if a := sn.start(t, c, "a", 10, "{}"); a.Status != http.StatusOK {
		t.Fatalf("start a: %d %q", a.Status, a.Body)
	}
	if a := sn.start(t, c, "a", 10, "{}"); a.Status != http.StatusConflict {
		t.Errorf("second start of a: %d %q, want 409", a.Status, a.Body)
	}
	other := testnet.NewClient(t, sn.n.URL, testnet.KeyB)
	for _, route := range []string{"update", "stop", "payment"} {
		if a := sn.call(t, other, route, wire.JobRequest{Request: details("a")}, "", "{}"); a.Status != http.StatusNotFound {
			t.Errorf("%s of another sender's stream: %d %q, want 404", route, a.Status, a.Body)
		}
	}
	if a := sn.call(t, c, "payment", wire.JobRequest{ID: "b", Request: details("a")}, "", ""); a.Status != http.StatusBadRequest {
		t.Errorf("payment naming two streams: %d %q, want 400", a.Status, a.Body)
	}
	if n := len(sn.w.callsFor("a")); n != 1 {
		t.Errorf("the worker got %d calls for a, want its start only", n)
	}
	testnet.Verify(t, sn.n)
}

// A start that does not cover the minimum compute is 402, and leaves no
// stream, no channel and the slot free; the payment stays the sender's.
func TestStreamStartUnderpaid(t *testing.T) {
	sn := startStreamNet(t, nil)
	c := sn.c
	a := sn.start(t, c, "poor", 2, "{}") // 2000 < 5 s minimum
	if a.Status != http.StatusPaymentRequired || a.Body != "Insufficient balance for request\n" {
		t.Fatalf("underpaid start: %d %q", a.Status, a.Body)
	}
	if sn.w.count() != 0 || len(sn.ch.names()) != 0 {
		t.Errorf("an underpaid start reached the worker or made channels")
	}
	if got := testnet.Balance(t, sn.n, testnet.Pool(c.Addr(), "live")); got != 2000 {
		t.Errorf("pool %d, want the 2000 paid", got)
	}
	if tok := c.Token("live", ""); tok.AvailableCapacity != 2 {
		t.Errorf("capacity %d, want 2", tok.AvailableCapacity)
	}
	testnet.Verify(t, sn.n)
}

// Two streams of one sender; one is topped up, the other runs dry. At the
// batch tick after its grace the dry one alone is stopped: its worker gets
// /stream/stop, its last event says why, its channels close, its slot is
// freed and its hold is closed under a key naming the reason, charged
// nothing after that. The other keeps running and keeps being charged.
func TestStreamRunsDryAlone(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		sn := startStreamNet(t, tweak)
		c := sn.c
		for _, id := range []string{"rich", "poor"} {
			if a := sn.start(t, c, id, 10, "{}"); a.Status != http.StatusOK {
				t.Fatalf("start %s: %d %q", id, a.Status, a.Body)
			}
		}
		// tick drives the one settlement loop; the second send is taken
		// only once the first batch is done.
		tick := func() {
			t.Helper()
			sn.ticks <- sn.clock.Now()
			sn.ticks <- sn.clock.Now()
		}
		poorHold := ledger.JobKey{Sender: c.Addr(), JobID: "poor"}.Ref()
		richHold := ledger.JobKey{Sender: c.Addr(), JobID: "rich"}.Ref()
		sn.clock.Advance(5 * time.Second)
		tick()
		if p, r := testnet.Balance(t, sn.n, poorHold), testnet.Balance(t, sn.n, richHold); p != 5000 || r != 5000 {
			t.Errorf("holds at 5 s: poor %d rich %d, want 5000 each", p, r)
		}
		sn.clock.Advance(5 * time.Second) // 10 s: both held exactly 10 s
		tick()
		top := sn.call(t, c, "payment", wire.JobRequest{ID: "rich", Request: details("rich"), TimeoutSeconds: 70}, c.Pay(c.Token("live", "rich"), 20), "")
		if top.Status != http.StatusOK || top.Header.Get(wire.HeaderBalance) != "20000" {
			t.Fatalf("top-up of rich: %d %q balance %q", top.Status, top.Body, top.Header.Get(wire.HeaderBalance))
		}
		sn.clock.Advance(5 * time.Second) // 15 s: poor cannot pay: dry
		tick()
		if got := testnet.Balance(t, sn.n, poorHold); got != 0 {
			t.Errorf("poor's hold at 15 s: %d, want 0 (dry, the 5 s owed not charged)", got)
		}
		if len(sn.w.callsFor("poor")) != 1 {
			t.Errorf("poor stopped before its grace")
		}
		var open []orchestrator.StreamInfo
		if testnet.Admin(t, sn.n, "/admin/streams", &open); len(open) != 2 || open[0].ID != "poor" || open[0].DrySince.IsZero() || testnet.Amount(open[0].Owed) != 5000 {
			t.Errorf("admin streams while poor is dry: %+v", open)
		}
		sn.clock.Advance(10 * time.Second) // 25 s: poor dry for 10 s, the grace
		tick()
		// The batch finished poor's hold; the worker is told after it.
		if err := sn.n.WaitStreamStops(context.Background()); err != nil {
			t.Fatal(err)
		}
		calls := sn.w.callsFor("poor")
		if len(calls) != 2 || calls[1].Path != "/live/stream/stop" || calls[1].Body != "insufficient balance" {
			t.Fatalf("poor's worker calls: %+v", calls)
		}
		sn.ch.mu.Lock()
		ev := sn.ch.events["poor-events"]
		closed := slices.Clone(sn.ch.closed)
		sn.ch.mu.Unlock()
		if len(ev) != 1 || !strings.Contains(ev[0], `"reason":"insufficient_balance"`) {
			t.Errorf("poor's last event: %q", ev)
		}
		if !slices.Contains(closed, "poor-control") || !slices.Contains(closed, "poor-events") || slices.Contains(closed, "rich-control") {
			t.Errorf("channels closed: %v", closed)
		}
		st := testnet.Statement(t, sn.n, c.Addr(), "poor")
		reason := false
		for _, e := range st.Entries {
			reason = reason || strings.Contains(e.Key, ":insufficient_balance:")
		}
		if st.Account.State != ledger.StateClosed || testnet.Amount(st.Charged) != 10000 || !reason {
			t.Errorf("poor's hold: %s charged %s, reason recorded %v; want closed, 10000, true", st.Account.State, st.Charged, reason)
		}
		if tok := c.Token("live", ""); tok.AvailableCapacity != 1 {
			t.Errorf("capacity with rich running: %d, want 1", tok.AvailableCapacity)
		}
		// No debit after release; rich goes on.
		sn.clock.Advance(5 * time.Second) // 30 s
		tick()
		if st2 := testnet.Statement(t, sn.n, c.Addr(), "poor"); len(st2.Entries) != len(st.Entries) {
			t.Errorf("poor's hold moved after its release: %d entries, then %d", len(st.Entries), len(st2.Entries))
		}
		if got := testnet.Balance(t, sn.n, richHold); got != 0 {
			t.Errorf("rich's hold at 30 s: %d, want 30000 - 30000 = 0", got)
		}
		if calls := sn.w.callsFor("rich"); len(calls) != 1 {
			t.Errorf("rich's worker calls %+v, want its start only", calls)
		}
		if open = nil; testnet.Admin(t, sn.n, "/admin/streams", &open) != http.StatusOK || len(open) != 1 || open[0].ID != "rich" {
			t.Errorf("admin streams: %+v", open)
		}
		if sn.period != 5*time.Second {
			t.Errorf("the settlement loop ticks every %v, want the configured 5 s", sn.period)
		}
		testnet.Verify(t, sn.n)
	})
}

// A dry stream stopped by the settlement batch has its hold finished in
// the batch and its worker told after it: a worker that hangs on
// /stream/stop (until the test releases it) delays no other stream's
// settlement, even with one settler, which a stop waiting on the worker
// would hold for the worker timeout (30 s). The rest of the stop (the last
// event, the channels, the capacity slot) follows once the worker answers.
func TestStreamHungWorkerDelaysNoSettlement(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		sn := startStreamNet(t, func(c *orchestrator.NodeConfig) {
			tweak(c)
			c.Orchestrator.StreamSettlers = 1
		})
		c := sn.c
		hang, stopping := make(chan struct{}), make(chan string, 1)
		var once sync.Once
		release := func() { once.Do(func() { close(hang) }) }
		t.Cleanup(release) // before the worker's server closes
		sn.w.mu.Lock()
		sn.w.hang, sn.w.stopping = hang, stopping
		sn.w.mu.Unlock()
		for _, id := range []string{"poor", "rich"} {
			if a := sn.start(t, c, id, 10, "{}"); a.Status != http.StatusOK {
				t.Fatalf("start %s: %d %q", id, a.Status, a.Body)
			}
		}
		if a := sn.call(t, c, "payment", wire.JobRequest{ID: "rich", Request: details("rich"), TimeoutSeconds: 70}, c.Pay(c.Token("live", "rich"), 30), ""); a.Status != http.StatusOK {
			t.Fatalf("top-up of rich: %d %q", a.Status, a.Body)
		}
		// settle runs one batch; a batch still running after the deadline
		// is waiting on the hung worker.
		settle := func() orchestrator.SettleStats {
			t.Helper()
			done := make(chan orchestrator.SettleStats, 1)
			go func() { done <- sn.n.SettleStreams(context.Background()) }()
			select {
			case st := <-done:
				return st
			case <-time.After(10 * time.Second):
				release()
				t.Fatalf("the settlement batch waited on the hung worker's /stream/stop")
				return orchestrator.SettleStats{}
			}
		}
		sn.clock.Advance(15 * time.Second) // poor owes 15000 on 10000: dry
		if st := settle(); st.Dry != 1 || st.Charged != 1 {
			t.Fatalf("settle at 15 s: %+v, want poor dry, rich charged", st)
		}
		sn.clock.Advance(10 * time.Second) // 25 s: poor dry for the grace
		if st := settle(); st.Stopped != 1 || st.Charged != 1 {
			t.Fatalf("settle at 25 s: %+v, want poor stopped, rich charged", st)
		}
		if id := <-stopping; id != "poor" {
			t.Fatalf("the worker was told to stop %q", id)
		}
		// The worker still hangs: poor's hold is finished all the same (no
		// debit after release), and the next batch bills rich on time.
		if st := testnet.Statement(t, sn.n, c.Addr(), "poor"); st.Account.State != ledger.StateClosed || testnet.Amount(st.Charged) != 10000 {
			t.Errorf("poor's hold while its worker hangs: %s charged %s, want closed, 10000", st.Account.State, st.Charged)
		}
		sn.clock.Advance(5 * time.Second)
		if st := settle(); st.Streams != 1 || st.Charged != 1 {
			t.Errorf("settle at 30 s with the worker hung: %+v, want rich charged", st)
		}
		if got := testnet.Balance(t, sn.n, ledger.JobKey{Sender: c.Addr(), JobID: "rich"}.Ref()); got != 10000 {
			t.Errorf("rich's hold at 30 s: %d, want 40000 - 30000", got)
		}
		if tok := c.Token("live", ""); tok.AvailableCapacity != 0 {
			t.Errorf("capacity while poor's worker has not stopped: %d, want 0 (its slot is freed once it has)", tok.AvailableCapacity)
		}
		release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sn.n.WaitStreamStops(ctx); err != nil {
			t.Fatalf("the stop did not finish once the worker answered: %v", err)
		}
		sn.ch.mu.Lock()
		ev, closed := sn.ch.events["poor-events"], slices.Clone(sn.ch.closed)
		sn.ch.mu.Unlock()
		if len(ev) != 1 || !strings.Contains(ev[0], `"reason":"insufficient_balance"`) || !slices.Contains(closed, "poor-control") {
			t.Errorf("after the worker answered: last event %q, channels closed %v", ev, closed)
		}
		if tok := c.Token("live", ""); tok.AvailableCapacity != 1 {
			t.Errorf("capacity after poor's stop: %d, want 1", tok.AvailableCapacity)
		}
		testnet.Verify(t, sn.n)
	})
}

// A dry stream paid within its grace runs on, charged the time it owed.
func TestStreamDryThenPaid(t *testing.T) {
	sn := startStreamNet(t, nil)
	c := sn.c
	if a := sn.start(t, c, "late", 10, "{}"); a.Status != http.StatusOK {
		t.Fatalf("start: %d %q", a.Status, a.Body)
	}
	sn.clock.Advance(12 * time.Second)
	st := sn.n.SettleStreams(context.Background())
	if st.Dry != 1 || st.Stopped != 0 {
		t.Fatalf("settle at 12 s: %+v, want one dry", st)
	}
	p := sn.call(t, c, "payment", wire.JobRequest{Request: details("late"), TimeoutSeconds: 70}, c.Pay(c.Token("live", "late"), 10), "")
	if p.Status != http.StatusOK || p.Header.Get(wire.HeaderBalance) != "8000" {
		t.Fatalf("payment while dry: %d %q balance %q, want 200, 20000 - 12000", p.Status, p.Body, p.Header.Get(wire.HeaderBalance))
	}
	sn.clock.Advance(5 * time.Second) // 17 s on a 20000 hold
	if st := sn.n.SettleStreams(context.Background()); st.Charged != 1 || st.Stopped != 0 || st.Dry != 0 {
		t.Errorf("settle after the payment: %+v, want charged, not dry", st)
	}
	sn.clock.Advance(10 * time.Second) // 27 s: 7000 more than held
	if a := sn.call(t, c, "payment", wire.JobRequest{Request: details("late"), TimeoutSeconds: 70}, "", ""); a.Status != http.StatusPaymentRequired || a.Header.Get(wire.HeaderBalance) != "-7000" {
		t.Errorf("payment without tickets while owing: %d %q balance %q, want 402, -7000", a.Status, a.Body, a.Header.Get(wire.HeaderBalance))
	}
	testnet.Verify(t, sn.n)
}

// A go-livepeer master gateway's cadence keeps a byoc stream alive: it
// starts with timeout_seconds (70) of credit, then every 50 s reads the
// capability's balance from a token (it never names the stream, so it
// reads the pool, which the stream does not draw from) and, below 120 s,
// pays 70 s to /ai/stream/payment with id "" and the stream in the
// details. With our settlements every 23 s the stream never runs dry, and
// each payment lands on the stream's own hold.
func TestStreamGoLivepeerGatewayCadence(t *testing.T) {
	sn := startStreamNet(t, func(c *orchestrator.NodeConfig) { c.Orchestrator.StreamSettleInterval = 23 * time.Second })
	c := sn.c
	a := sn.call(t, c, "start", wire.JobRequest{ID: "glp", Request: `{"run":"live"}`, Parameters: "{}", TimeoutSeconds: 70}, c.Pay(c.Token("live", ""), 70), `{"params":{}}`)
	if a.Status != http.StatusOK {
		t.Fatalf("start: %d %q", a.Status, a.Body)
	}
	hold := ledger.JobKey{Sender: c.Addr(), JobID: "glp"}.Ref()
	var elapsed time.Duration
	nextSettle, nextPay := 23*time.Second, 50*time.Second
	payments := 0
	for elapsed < 10*time.Minute {
		step := min(nextSettle, nextPay) - elapsed
		sn.clock.Advance(step)
		elapsed += step
		if elapsed == nextSettle {
			if st := sn.n.SettleStreams(context.Background()); st.Dry != 0 || st.Stopped != 0 || st.Charged != 1 {
				t.Fatalf("settlement at %v: %+v", elapsed, st)
			}
			nextSettle += 23 * time.Second
		}
		if elapsed == nextPay {
			tok := c.Token("live", "") // no Livepeer-Job-Id, as master gateways
			if tok.Balance < 120*1000 {
				p := sn.call(t, c, "payment", wire.JobRequest{Request: details("glp"), Parameters: "{}", TimeoutSeconds: 70}, c.Pay(tok, 70), "")
				if p.Status != http.StatusOK {
					t.Fatalf("payment at %v: %d %q", elapsed, p.Status, p.Body)
				}
				payments++
			}
			nextPay += 50 * time.Second
		}
	}
	if payments != 12 {
		t.Errorf("%d top-ups in 10 min, want 12", payments)
	}
	// 70 s + 12 × 70 s paid; 600 s charged (the last payment, at 600 s, settles).
	if got := testnet.Balance(t, sn.n, hold); got != (70+12*70-600)*1000 {
		t.Errorf("hold after 10 min: %d", got)
	}
	if open, err := sn.n.Streams(context.Background()); err != nil || len(open) != 1 {
		t.Errorf("streams after 10 min: %+v %v", open, err)
	}
	testnet.Verify(t, sn.n)
}

// An orchestrator that dies mid-stream resumes no stream when it comes
// back: update, stop and payment for it are 404 and reach no worker, the
// payment is not recorded, and once the hold has been idle for its TTL
// the sweeper releases it into the sender's pool. The hold's TTL is the
// settlement interval plus the grace plus the hold margin.
func TestStreamNotResumedAfterRestart(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		dir := t.TempDir()
		clock := ledger.NewManualClock(time.Now())
		cfg := restartableStreams(tweak, clock)
		n := testnet.StartNode(t, dir, cfg)
		sw := &streamWorker{}
		srv := httptest.NewServer(http.HandlerFunc(sw.handle))
		t.Cleanup(srv.Close)
		register := func(url string) {
			body, _ := json.Marshal(wire.ExternalCapability{Name: "live", URL: srv.URL + "/live", Capacity: 2, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei"})
			req, _ := http.NewRequest(http.MethodPost, url+"/capability/register", bytes.NewReader(body))
			req.Header.Set("Authorization", testnet.Secret)
			resp, err := testnet.Insecure.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("register: %v %v", resp, err)
			}
			resp.Body.Close()
		}
		register(n.URL)
		sn := &streamNet{n: n, clock: clock, w: sw, c: testnet.NewClient(t, n.URL, testnet.KeyA)}
		c := sn.c
		if a := sn.start(t, c, "crash", 10, "{}"); a.Status != http.StatusOK {
			t.Fatalf("start: %d %q", a.Status, a.Body)
		}
		clock.Advance(3 * time.Second)
		payment := c.Pay(c.Token("live", "crash"), 5) // made, never delivered before the crash
		n.Close()

		n2 := testnet.StartNode(t, dir, cfg)
		register(n2.URL)
		sn.n = n2
		c2 := testnet.NewClient(t, n2.URL, testnet.KeyA)
		before := len(sw.callsFor("crash"))
		for _, route := range []string{"update", "stop"} {
			if a := sn.call(t, c2, route, wire.JobRequest{Request: details("crash")}, "", "{}"); a.Status != http.StatusNotFound {
				t.Errorf("%s after the restart: %d %q, want 404", route, a.Status, a.Body)
			}
		}
		if a := sn.call(t, c2, "payment", wire.JobRequest{Request: details("crash"), TimeoutSeconds: 70}, payment, ""); a.Status != http.StatusNotFound {
			t.Errorf("payment after the restart: %d %q, want 404", a.Status, a.Body)
		}
		if got := len(sw.callsFor("crash")); got != before {
			t.Errorf("the worker got %d calls after the restart", got-before)
		}
		hold := ledger.JobKey{Sender: c.Addr(), JobID: "crash"}.Ref()
		if got := testnet.Balance(t, n2, hold); got != 10000 {
			t.Errorf("hold after the restart: %d, want the 10000 it held (the payment not recorded)", got)
		}
		clock.Advance(5*time.Second + 5*time.Second + 10*time.Second) // the TTL, from the start
		if _, err := n2.Ledger.ExpireJobs(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := testnet.Statement(t, n2, c.Addr(), "crash")
		if st.Account.State != ledger.StateExpired || testnet.Amount(st.Released) != 10000 {
			t.Errorf("the dead stream's hold: %s, released %s; want expired, 10000 back in the pool", st.Account.State, st.Released)
		}
		if got := testnet.Balance(t, n2, testnet.Pool(c.Addr(), "live")); got != 10000 {
			t.Errorf("pool %d, want 10000", got)
		}
		if a := sn.call(t, c2, "start", wire.JobRequest{ID: "crash", Request: "{}", Parameters: "{}"}, "", "{}"); a.Status != http.StatusConflict {
			t.Errorf("a new start with the dead stream's ID: %d %q, want 409 (IDs are single-use)", a.Status, a.Body)
		}
		testnet.Verify(t, n2)
	})
}

// restartableStreams configures a node for the restart tests: tweak's
// store, the same database again after a restart, clock, in-memory
// channels, no settlement ticker (settled by hand), 5 s settlement and
// grace, a 10 s hold margin.
func restartableStreams(tweak func(*orchestrator.NodeConfig), clock *ledger.ManualClock) func(*orchestrator.NodeConfig) {
	var dsn string
	return func(c *orchestrator.NodeConfig) {
		tweak(c)
		if dsn == "" {
			dsn = c.LedgerDSN
		}
		c.LedgerDSN = dsn // the same database after the restart
		c.Clock = clock
		c.Orchestrator.Channels = &memChannels{}
		c.Orchestrator.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
		c.Orchestrator.StreamSettleInterval = 5 * time.Second
		c.Orchestrator.StreamGrace = 5 * time.Second
		c.Orchestrator.HoldTTLMargin = 10 * time.Second
	}
}
