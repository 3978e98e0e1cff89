package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/wire"
)

// FuzzGatewayJob sends arbitrary client requests (method, path under
// /process/request/, the Livepeer header, other header lines, body) to a
// gateway served in process (httptest.NewRecorder), paying with KeyA and
// books in a SQLite ledger, in front of a byoc orchestrator on loopback
// (and a dead address it must fail over from) whose worker answers at
// once: "reverse" at 1000 wei per second, "free" at 0, a stream under
// <url>/sse, the status asked for under <url>/status/<code>. The client's
// header is plain base64 JSON, so mutations make real jobs with any
// capability, ID, timeout and parameters. After each request, once the
// gateway has posted its books:
//   - no panic; no 5xx but 503 (no orchestrator could run it) and the
//     worker's own status relayed;
//   - a request the gateway refused itself (no Livepeer-Job-Id in the
//     answer) is a 4xx, reached no orchestrator and changed no books;
//   - both ledgers' invariants hold, and the gateway's books for the
//     orchestrator agree with the orchestrator's ledger for the gateway,
//     capability by capability: pool, credits, charges, open holds.
func FuzzGatewayJob(f *testing.F) {
	quiet := slog.New(slog.DiscardHandler)
	orch := testnet.StartNode(f, ledgertest.TempDir(f), func(c *orchestrator.NodeConfig) {
		c.AdminListen = ""
		c.Orchestrator.MinCompute = minCompute
		c.Orchestrator.Logger = quiet
	})
	w := testnet.StartFuzzWorker(f)
	for _, c := range []string{
		`{"name":"reverse","url":"` + w.URL + `/w","capacity":4,"price_per_unit":1000,"price_scaling":1,"currency":"wei"}`,
		`{"name":"free","url":"` + w.URL + `/w","capacity":4,"price_per_unit":0}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, orch.URL+"/capability/register", strings.NewReader(c))
		req.Header.Set("Authorization", secret)
		resp, err := testnet.Insecure.Do(req)
		if err != nil {
			f.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			f.Fatalf("register: %d", resp.StatusCode)
		}
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	deadURL := "https://" + dead.Addr().String()
	dead.Close()

	env := ledgertest.NewEnv(f, ledgertest.SQLite)
	disc, err := gateway.NewDiscovery(gateway.DiscoveryConfig{Static: []string{orch.URL, deadURL}, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	signer, err := ethsig.KeySignerFromHex(keyA)
	if err != nil {
		f.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Discovery: disc, Ledger: env.Ledger, Signer: signer, MinCompute: minCompute,
		MaxBodyBytes: 4096, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(gw.CloseIdleConnections) // before the orchestrator's graceful shutdown
	handler := gw.Handler()

	client := func(capability, id string, timeout int, parameters string) string {
		m := fmt.Sprintf(`{"capability":%q,"request":"{}","parameters":%q,"timeout_seconds":%d`, capability, parameters, timeout)
		if id != "" {
			m += fmt.Sprintf(`,"id":%q`, id)
		}
		return b64(m + "}")
	}
	post, text := http.MethodPost, "Content-Type: text/plain"
	for _, s := range []struct {
		method, suffix, job, headers string
		body                         []byte
	}{
		{post, "", client("reverse", "paid-1", 5, "{}"), text, []byte("hello")},
		{post, "", client("reverse", "", 5, "{}"), text, []byte("no id")},
		{post, "x/y?q=1", client("free", "free-1", 5, "{}"), "Content-Type: application/json", []byte(`{"a":1}`)},
		{post, "sse", client("reverse", "stream-1", 5, "{}"), "", nil},
		{post, "status/404", client("reverse", "err-1", 5, "{}"), "", nil},
		{post, "status/500", client("free", "err-2", 5, "{}"), "", nil},
		{post, "", client("nope", "unknown-1", 5, "{}"), "", nil},
		{post, "", client("reverse", "filtered", 5, `{"orchestrators":{"exclude":["`+orch.URL+`"]}}`), "", nil},
		{post, "", client("reverse", "search", 5, "{}"), "Livepeer-Orch-Search-Timeout: 2s\nLivepeer-Orch-Search-Resp-Timeout: 1s", nil},
		{post, "", client("reverse", "bad~id", 5, "{}"), "", nil},
		{post, "", client("reverse", "long", 7200, "{}"), "", nil},
		{post, "", client("reverse", "zero", 0, "{}"), "", nil},
		{post, "", client("reverse", "big", 5, "{}"), "", bytes.Repeat([]byte("z"), 5000)},
		{post, "", client("reverse", "notjson", 5, "run it"), "", nil},
		{post, "", "%%%", "", nil},
		{post, "", "", "", nil},
		{http.MethodGet, "", client("reverse", "get", 5, "{}"), "", nil},
		{post, "", client("free", "chunked", 5, "{}"), "Transfer-Encoding: chunked", []byte("1\r\na\r\n0\r\n\r\n")},
		{post, "%25zz", client("reverse", "pct", 5, "{}"), "", []byte("x")},
		{post, ".", client("free", "dot", 5, "{}"), "", []byte("\xff")},
		{post, "", client("free", "badchunk", 5, "{}"), "Transfer-Encoding: chunked", []byte("zz\r\nab")},
	} {
		f.Add(s.method, s.suffix, s.job, s.headers, s.body)
	}

	f.Fuzz(func(t *testing.T, method, suffix, job, headers string, body []byte) {
		req, ok := testnet.RawRequest(method, "/process/request/"+suffix, "gateway.test", []string{wire.HeaderJobRequest, job}, headers, body)
		if !ok {
			return
		}
		gwBefore, orchBefore, calls := reportOf(t, env.Store), reportOf(t, orch.Store), w.Calls.Load()
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := gw.WaitIdle(ctx); err != nil {
			t.Fatalf("the gateway is still posting the job's books: %v", err)
		}
		status, answer := rec.Code, rec.Body.String()
		reached := w.Calls.Load() > calls
		fromWorker := reached && strings.Contains(answer, "worker status")
		if status >= 500 && status != http.StatusServiceUnavailable && !fromWorker {
			t.Fatalf("status %d (worker reached: %v): %s", status, reached, answer)
		}
		gwAfter, orchAfter := reportOf(t, env.Store), reportOf(t, orch.Store)
		// A path with a dot segment is redirected to its clean form by the
		// router (307, the method and body kept): not a refusal, and like
		// one it reaches nothing.
		cleaned := status == http.StatusTemporaryRedirect && rec.Header().Get("Location") != ""
		if rec.Header().Get(gateway.HeaderJobIDResponse) == "" {
			switch {
			case (status < 400 || status >= 500) && !cleaned:
				t.Fatalf("refused without a job ID, yet status %d: %s", status, answer)
			case reached || orchAfter.Entries != orchBefore.Entries || orchAfter.Accounts != orchBefore.Accounts:
				t.Fatalf("a request answered %d without a job ID reached the orchestrator: %s", status, answer)
			case gwAfter.Entries != gwBefore.Entries || gwAfter.Accounts != gwBefore.Accounts:
				t.Fatalf("a request answered %d without a job ID changed the books: %+v → %+v", status, gwBefore, gwAfter)
			}
		}
		for _, capability := range []string{"reverse", "free"} {
			g := books(t, env.Ledger, orch.Address.Hex(), capability)
			o := books(t, orch.Ledger, gw.Address(), capability)
			if g != o {
				t.Fatalf("after %d %.200q: books disagree for %s:\n  gateway      %+v\n  orchestrator %+v", status, answer, capability, g, o)
			}
		}
	})
}

// reportOf checks every invariant of a ledger and returns its totals.
func reportOf(t *testing.T, s ledger.Store) ledger.Report {
	t.Helper()
	r, err := ledger.Verify(context.Background(), s, ledger.VerifyOptions{Now: time.Now(), StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("ledger invariants violated: %v", r.Problems)
	}
	return r
}
