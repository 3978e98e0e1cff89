package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
)

// streamStub is a stream worker that counts the calls it gets by path.
type streamStub struct {
	mu    sync.Mutex
	calls map[string]int
}

func (s *streamStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[r.URL.Path]++
	s.mu.Unlock()
}

func (s *streamStub) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// registerStream registers the stub as capability "live" at 1000 wei/s.
func registerStream(t *testing.T, orchURL, workerURL string) {
	t.Helper()
	body, _ := json.Marshal(wire.ExternalCapability{Name: "live", URL: workerURL, Capacity: 4, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei"})
	req, _ := http.NewRequest(http.MethodPost, orchURL+"/capability/register", bytes.NewReader(body))
	req.Header.Set("Authorization", testnet.Secret)
	resp, err := testnet.Insecure.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
}

// streamCall sends a signed stream request as a gateway would.
func streamCall(t *testing.T, c *testnet.Client, orchURL, route string, jr wire.JobRequest, payment string) int {
	t.Helper()
	if err := wire.SignJobRequest(c.WireSigner(), &jr); err != nil {
		t.Fatal(err)
	}
	h, _ := wire.EncodeJobRequestHeader(&jr)
	req, _ := http.NewRequest(http.MethodPost, orchURL+"/ai/stream/"+route, strings.NewReader("{}"))
	req.Header.Set(wire.HeaderJobRequest, h)
	if payment != "" {
		req.Header.Set(wire.PaymentHeader, payment)
	}
	resp, err := testnet.Insecure.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFaultOrchestratorKilledMidBYOCStream kills a `byoc orchestrator`
// process (kill -9) while it runs a stream: restarted, it resumes no
// stream — update, stop and a payment made before the kill are 404, reach
// no worker and credit nothing — and the stream's hold expires into the
// sender's pool; the ledger verifies.
func TestFaultOrchestratorKilledMidBYOCStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir, addr := t.TempDir(), testnet.FreePort(t)
	url := "https://" + addr
	args := []string{"orchestrator", "--secret", testnet.Secret, "--data-dir", dir, "--listen", url, "--admin-listen", "",
		"--ticket-ev", "1000", "--min-compute", "2s", "--hold-ttl-margin", "1s", "--sweep-interval", "100ms",
		"--stream-settle-interval", "200ms", "--stream-grace", "500ms"}
	stub := &streamStub{}
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	orch := testnet.StartProcess(t, "serving", args...)
	registerStream(t, url, srv.URL)
	c := testnet.NewClient(t, url, testnet.KeyA)
	if s := streamCall(t, c, url, "start", wire.JobRequest{ID: "k9", Request: "{}", Parameters: "{}", Capability: "live", TimeoutSeconds: 30}, c.Pay(c.Token("live", ""), 30)); s != http.StatusOK {
		t.Fatalf("start: %d", s)
	}
	later := c.Pay(c.Token("live", "k9"), 5) // a top-up made, not delivered before the kill
	orch.Kill9()

	orch = testnet.StartProcess(t, "serving", args...)
	registerStream(t, url, srv.URL)
	calls := stub.count("/stream/start") + stub.count("/stream/params") + stub.count("/stream/stop")
	details := `{"stream_id":"k9"}`
	for route, payment := range map[string]string{"payment": later, "update": "", "stop": ""} {
		if s := streamCall(t, c, url, route, wire.JobRequest{Request: details, Parameters: "{}", Capability: "live", TimeoutSeconds: 70}, payment); s != http.StatusNotFound {
			t.Errorf("%s after the restart: %d, want 404", route, s)
		}
	}
	if now := stub.count("/stream/start") + stub.count("/stream/params") + stub.count("/stream/stop"); now != calls {
		t.Errorf("the worker got %d calls after the restart", now-calls)
	}
	// The hold's TTL is 200 ms + 500 ms + 1 s; the sweeper runs every 100 ms.
	testnet.Eventually(t, "the dead stream's hold to expire", func() bool { return openJobs(t, dir) == 0 })
	orch.Kill9()
	rep := checkBooks(t, dir, nil)
	if rep.Credited.Cmp(ledger.Wei(30000)) != 0 {
		t.Errorf("credited %s, want the start's 30000 only (the later payment credits nothing)", rep.Credited)
	}
	t.Logf("report: orchestrator killed mid-stream: restarted, it resumed no stream; the hold expired into the pool; charged %s; the ledger verifies", rep.Charged)
}

// TestFaultGatewayKilledMidBYOCStream kills a `byoc gateway` process
// (kill -9) while a stream it pays for runs: the orchestrator, paid no
// more, lets the stream run dry and stops it alone (the worker told, the
// hold closed); the restarted gateway's books release the stream's hold
// after its TTL; both ledgers verify and agree on what was paid.
func TestFaultGatewayKilledMidBYOCStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	orch := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Orchestrator.MinCompute = 2 * time.Second
		c.Orchestrator.StreamSettleInterval = 200 * time.Millisecond
		c.Orchestrator.StreamGrace = 500 * time.Millisecond
	})
	stub := &streamStub{}
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	registerStream(t, orch.URL, srv.URL)
	gwDir, gwAddr := t.TempDir(), testnet.FreePort(t)
	args := []string{"gateway", "--orch-addr", orch.URL, "--data-dir", gwDir, "--listen", gwAddr, "--admin-listen", "",
		"--dev-key", testnet.KeyA, "--min-compute", "2s", "--hold-ttl-margin", "1s",
		"--stream-pay-interval", "200ms", "--stream-top-up-below", "1s", "--stream-top-up", "1s",
		"--sweep-interval", "100ms"} // the restarted gateway's sweeper must run within Eventually's deadline
	gw := testnet.StartProcess(t, "gateway serving", args...)
	hdr, _ := json.Marshal(wire.JobRequest{Request: "{}", Parameters: "{}", Capability: "live", TimeoutSeconds: 3})
	req, _ := http.NewRequest(http.MethodPost, "http://"+gwAddr+"/process/stream/start", strings.NewReader(`{"stream_id":"gk9","params":"{}"}`))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("start: %v %v", resp, err)
	}
	resp.Body.Close()
	testnet.Eventually(t, "the stream to start at the orchestrator", func() bool { return stub.count("/stream/start") == 1 })
	gw.Kill9()

	sender := testnet.NewClient(t, orch.URL, testnet.KeyA).Addr()
	hold := ledger.JobKey{Sender: sender, JobID: "gk9"}.Ref()
	testnet.Eventually(t, "the orchestrator to stop the unpaid stream", func() bool {
		a, err := orch.Ledger.Account(context.Background(), hold)
		return err == nil && a.State.IsFinal() && stub.count("/stream/stop") == 1
	})
	st := testnet.Statement(t, orch, sender, "gk9")
	if st.Charged.Cmp(st.Credited.Add(st.Drawn)) != 0 {
		t.Errorf("the stream that ran dry: credited %s drawn %s charged %s; want all of it charged", st.Credited, st.Drawn, st.Charged)
	}
	// The gateway's hold of the stream expires 2 s (the start's 3 s less
	// the 1 s threshold) + 3 × 200 ms + 1 s after its last top-up (none:
	// it was killed while the stream held 3 s, before it fell below 1 s);
	// the restarted gateway's sweeper releases it.
	testnet.StartProcess(t, "gateway serving", args...)
	testnet.Eventually(t, "the gateway's books to release the stream's hold", func() bool { return openJobs(t, gwDir) == 0 })
	testnet.Verify(t, orch)
	rep := checkBooks(t, gwDir, nil)
	if rep.Credited.Cmp(st.Credited) != 0 {
		t.Errorf("the gateway booked %s paid, the orchestrator credited %s", rep.Credited, st.Credited)
	}
	t.Logf("report: gateway killed mid-stream: the orchestrator stopped the stream alone when it ran dry (charged %s); both ledgers verify", st.Charged)
}
