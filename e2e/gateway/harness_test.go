package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/ledger/stores"
	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

// The shared test keys, PM secret and ticket EV (internal/testnet).
const (
	keyA   = testnet.KeyA
	keyB   = testnet.KeyB
	secret = testnet.Secret
)

// Amounts in these tests: tickets of EV 1000 wei and prices around 1000 wei
// per second, with a 5 s minimum on both sides, so a job's hold needs
// 5000 wei (5 tickets) and numbers stay readable.
var testEV = testnet.TestEV

const minCompute = 5 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BYOC_TEST_LOG") != "" {
		return slog.New(newKeyCheck(t, slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
	return slog.New(newKeyCheck(t, slog.DiscardHandler))
}

// startOrch starts an orchestrator on loopback with an embedded ledger
// (testnet.StartNode, with a 5 s minimum), whose ledger is verified when
// the test ends unless the test closed it (closeOrch verified it then).
func startOrch(t *testing.T, tweak func(*orchestrator.NodeConfig)) *orchestrator.Node {
	t.Helper()
	n := testnet.StartNode(t, t.TempDir(), func(cfg *orchestrator.NodeConfig) {
		cfg.AdminListen = ""
		cfg.Orchestrator.MinCompute = minCompute
		cfg.Orchestrator.Logger = testLogger(t)
		if tweak != nil {
			tweak(cfg)
		}
	})
	t.Cleanup(func() { // runs before testnet's Close
		if !closed[n] {
			verifyLedger(t, "orchestrator "+n.URL, n.Ledger, n.Store)
		}
		for _, gw := range gateways {
			gw.CloseIdleConnections() // else the graceful shutdown waits a second for them
		}
	})
	return n
}

// closed lists the orchestrators a test closed (after verifying them);
// gateways, the gateways running (tests here do not run in parallel).
var (
	closed   = map[*orchestrator.Node]bool{}
	gateways []*gateway.Node
)

// closeOrch verifies an orchestrator's ledger and stops it, as a test step
// (the gateway's idle connections are closed first, else the orchestrator's
// graceful shutdown waits a second for them).
func closeOrch(t *testing.T, n *orchestrator.Node, gw *gateway.Node) {
	t.Helper()
	gw.CloseIdleConnections()
	verifyLedger(t, "orchestrator "+n.URL, n.Ledger, n.Store)
	n.Close()
	closed[n] = true
}

// startWorker starts the sample worker itself: these tests run every role.
func startWorker(t *testing.T) *worker.Server {
	t.Helper()
	w, err := worker.Start("", worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// register registers one of the worker's capabilities under name.
func register(t *testing.T, orchURL string, w *worker.Server, capability, name string, price int64, capacity int) {
	t.Helper()
	testnet.Register(t, orchURL, w, capability, name, price, capacity)
}

// startGateway starts a gateway on loopback paying with key ("" for none)
// and using the given orchestrators.
func startGateway(t *testing.T, key string, orchs []string, tweak func(*gateway.NodeConfig)) *gateway.Node {
	t.Helper()
	cfg := gateway.NodeConfig{
		Listen:        "127.0.0.1:0",
		AdminListen:   "127.0.0.1:0",
		DataDir:       t.TempDir(),
		SweepInterval: 50 * time.Millisecond,
		Discovery:     gateway.DiscoveryConfig{Static: orchs},
		Gateway: gateway.Config{
			MinCompute: minCompute,
			Logger:     testLogger(t),
		},
	}
	if key != "" {
		s, err := ethsig.KeySignerFromHex(key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Gateway.Signer = s
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := gateway.StartNode(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	gateways = append(gateways, n)
	t.Cleanup(func() {
		gateways = slices.DeleteFunc(gateways, func(g *gateway.Node) bool { return g == n })
		idle(t, n)
		verifyLedger(t, "gateway", n.Ledger, n.Store)
		http.DefaultClient.CloseIdleConnections() // the test client's, so the gateway's shutdown need not wait
		n.Close()
	})
	return n
}

// verifyLedger sweeps and checks every invariant of a ledger.
func verifyLedger(t *testing.T, name string, l *ledger.Ledger, s ledger.Store) {
	t.Helper()
	r, err := ledger.Verify(context.Background(), s, ledger.VerifyOptions{Now: time.Now(), StaleAfter: time.Hour})
	if err != nil {
		t.Errorf("verify %s: %v", name, err)
		return
	}
	for _, p := range r.Problems {
		t.Errorf("%s ledger invariant violated: %s", name, p)
	}
}

// jobSpec is a client's job.
type jobSpec struct {
	capability string
	id         string
	path       string
	body       string
	timeout    int
	request    string // default "{}"
	parameters string // default "{}"
	header     map[string]string
	raw        string // a raw Livepeer header value instead of the encoded request
	method     string
	ctx        context.Context
}

type jobResult struct {
	status int
	header http.Header
	body   string
}

// submit sends a job to the gateway the way a client does (an unsigned,
// base64 JSON Livepeer header) and reads the whole answer; then it waits
// until the gateway has posted the job's books.
func submit(t *testing.T, gw *gateway.Node, s jobSpec) jobResult {
	t.Helper()
	if s.timeout == 0 {
		s.timeout = 5
	}
	if s.request == "" {
		s.request = "{}"
	}
	if s.parameters == "" {
		s.parameters = "{}"
	}
	if s.method == "" {
		s.method = http.MethodPost
	}
	if s.ctx == nil {
		s.ctx = context.Background()
	}
	hdr := s.raw
	if hdr == "" {
		m := map[string]any{"capability": s.capability, "request": s.request, "parameters": s.parameters, "timeout_seconds": s.timeout}
		if s.id != "" {
			m["id"] = s.id
		}
		b, _ := json.Marshal(m)
		hdr = base64.StdEncoding.EncodeToString(b)
	}
	req, err := http.NewRequestWithContext(s.ctx, s.method, gw.URL+"/process/request/"+s.path, strings.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	if hdr != "-" {
		req.Header.Set(wire.HeaderJobRequest, hdr)
	}
	if strings.HasPrefix(s.body, "{") {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "text/plain")
	}
	for k, v := range s.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	idle(t, gw)
	return jobResult{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// idle waits until the gateway has finished every job's books.
func idle(t *testing.T, gw *gateway.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.WaitIdle(ctx); err != nil {
		t.Fatal("gateway still busy:", err)
	}
}

func amount(t *testing.T, a ledger.Amount) int64 {
	t.Helper()
	v, ok := a.Int64()
	if !ok {
		t.Fatalf("amount %s too large", a)
	}
	return v
}

// side sums one side's books for a counterpart: the pool and every job
// hold (all states) whose "sender" is the counterpart (for the gateway:
// the orchestrator's address; for the orchestrator: the gateway's).
type side struct {
	pool              int64
	credited, charged int64
	openJobs          int
}

func books(t *testing.T, l *ledger.Ledger, counterpart, capability string) side {
	t.Helper()
	ctx := context.Background()
	var s side
	bal, err := l.Balance(ctx, ledger.PoolKey{Sender: counterpart, Capability: capability}.Ref())
	if err != nil {
		t.Fatal(err)
	}
	s.pool = amount(t, bal)
	accts, err := l.List(ctx, ledger.AccountFilter{Sender: counterpart, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accts {
		if a.Ref.Kind == ledger.KindPool && a.Ref.Name != capability {
			continue
		}
		if a.Ref.Kind == ledger.KindJob {
			if a.State == ledger.StateOpen {
				s.openJobs++
			}
		}
		s.credited += amount(t, a.Credited)
		s.charged += amount(t, a.Charged)
	}
	return s
}

// agree checks that the gateway's books for orchestrator o and capability
// match o's ledger for the gateway: same pool, same credits, same charges,
// no open holds. It returns the orchestrator's side.
func agree(t *testing.T, gw *gateway.Node, o *orchestrator.Node, capability string) side {
	t.Helper()
	g := books(t, gw.Ledger, o.Address.Hex(), capability)
	ob := books(t, o.Ledger, gw.Address(), capability)
	if g != ob {
		t.Errorf("books disagree for %s at %s:\n  gateway      %+v\n  orchestrator %+v", capability, o.URL, g, ob)
	}
	return ob
}

func mustOK(t *testing.T, r jobResult) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func sleepBody(d time.Duration) string { return fmt.Sprintf(`{"duration_ms": %d}`, d.Milliseconds()) }

func statement(t *testing.T, n *orchestrator.Node, sender, job string) ledger.Statement {
	t.Helper()
	s, err := n.Ledger.Statement(context.Background(), ledger.JobKey{Sender: sender, JobID: job}.Ref(), 0)
	if err != nil {
		t.Fatalf("statement of %s: %v", job, err)
	}
	return s
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func ledgerWei(n int64) ledger.Amount { return ledger.Wei(n) }

// liveWorker registers a stream worker as capability "live" at o (1000
// wei/s, capacity capacity) and returns it.
func liveWorker(t *testing.T, o *orchestrator.Node, capacity int) *e2eStreamWorker {
	t.Helper()
	return registerLive(t, o, &e2eStreamWorker{}, capacity)
}

// registerLive registers w as capability "live" at o (1000 wei/s).
func registerLive(t *testing.T, o *orchestrator.Node, w *e2eStreamWorker, capacity int) *e2eStreamWorker {
	t.Helper()
	registerStream(t, o, "live", w, capacity)
	return w
}

// registerStream serves h and registers it as capability name at o (1000
// wei/s).
func registerStream(t *testing.T, o *orchestrator.Node, name string, h http.Handler, capacity int) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	body, _ := json.Marshal(wire.ExternalCapability{Name: name, URL: srv.URL, Capacity: capacity, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei"})
	req, _ := http.NewRequest(http.MethodPost, o.URL+"/capability/register", bytes.NewReader(body))
	req.Header.Set("Authorization", testnet.Secret)
	if resp, err := testnet.Insecure.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %v %v", resp, err)
	}
}

// startLive starts stream id of capability "live" through gw and requires
// it running.
func startLive(t *testing.T, ctx context.Context, gw *gateway.Node, id string) {
	t.Helper()
	startStream(t, ctx, gw, id, "running")
}

// startStream starts stream id of capability "live" through gw and
// requires it in state want once its start is decided (running: answered
// 200).
func startStream(t *testing.T, ctx context.Context, gw *gateway.Node, id, want string) {
	t.Helper()
	h, _ := wire.EncodeJobRequestHeader(&wire.JobRequest{Request: `{}`, Parameters: "{}", Capability: "live", TimeoutSeconds: 10})
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/process/stream/start", strings.NewReader(`{"stream_id":"`+id+`","params":"{}"}`))
	r.Header.Set(wire.HeaderJobRequest, h)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if want == "running" && resp.StatusCode != http.StatusOK {
		t.Fatalf("start %s: status %d", id, resp.StatusCode)
	}
	if st := gw.StreamState(ctx, id); st != want {
		t.Fatalf("stream %s: state %q, want %q", id, st, want)
	}
}

// streamStatus is stream id as gw's admin API lists it (zero if not).
func streamStatus(gw *gateway.Node, id string) gateway.StreamStatus {
	for _, s := range gw.Streams() {
		if s.ID == id {
			return s
		}
	}
	return gateway.StreamStatus{}
}

// storeDSNs sets the test's ledgers on store ("journal", "sqlite" or
// "postgres") and returns the orchestrator's and the gateway's DSNs (""
// for the embedded stores).
func storeDSNs(t *testing.T, store string) (orchDSN, gwDSN string) {
	t.Helper()
	switch store {
	case "sqlite":
		t.Setenv(stores.EnvStore, "sqlite")
	case "postgres":
		dsn := ledgertest.PostgresDSN(t)
		orchDSN, gwDSN = ledgertest.PostgresSchema(t, dsn), ledgertest.PostgresSchema(t, dsn)
	}
	return orchDSN, gwDSN
}

// gwClient sends requests to gw (with a Livepeer header when hdr is not
// nil) and returns each answer's status and body.
func gwClient(t *testing.T, ctx context.Context, gw *gateway.Node) func(method, path, body string, hdr *wire.JobRequest) (int, string) {
	return func(method, path, body string, hdr *wire.JobRequest) (int, string) {
		t.Helper()
		r, _ := http.NewRequestWithContext(ctx, method, gw.URL+path, strings.NewReader(body))
		if hdr != nil {
			h, _ := wire.EncodeJobRequestHeader(hdr)
			r.Header.Set(wire.HeaderJobRequest, h)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// streamNodes starts an orchestrator (tweak, if not nil, adjusts it) and a
// gateway in front of it, both on store's ledgers and one manual clock,
// neither ticking (tests drive settlements and top-ups); workers registers
// the orchestrator's workers in between.
func streamNodes(t *testing.T, store string, tweak func(*orchestrator.NodeConfig), workers func(*orchestrator.Node)) (*ledger.ManualClock, *orchestrator.Node, *gateway.Node) {
	t.Helper()
	orchDSN, gwDSN := storeDSNs(t, store)
	clock := ledger.NewManualClock(time.Now())
	noTicks := func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	o := startOrch(t, func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		c.LedgerDSN = orchDSN
		c.Orchestrator.StreamTicker = noTicks
		if tweak != nil {
			tweak(c)
		}
	})
	workers(o)
	gw := startGateway(t, testnet.KeyA, []string{o.URL}, func(c *gateway.NodeConfig) {
		c.LedgerDSN = gwDSN
		c.Gateway.StreamTicker = noTicks
		c.Gateway.StreamHost = "https://gw.example"
		c.Clock = clock // the books' time, and the token cache's
	})
	return clock, o, gw
}
