package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/wire"
)

// TestFaultOrchestratorKilledMidStreamFailover runs two `byoc orchestrator`
// processes and a `byoc gateway` process; a client starts a stream through
// the gateway and the orchestrator serving it (A) is killed with kill -9.
// The gateway moves the stream to the other one (B) under the same stream
// ID, and the client's status and update URLs keep working; B bills only
// from when it started serving; A, restarted, resumes no stream (update,
// stop and a replayed payment are 404, reach no worker and credit
// nothing) and its hold expires into the pool; both orchestrators'
// ledgers and the gateway's books verify, and the gateway's books agree
// with each orchestrator on what it paid it.
func TestFaultOrchestratorKilledMidStreamFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const id, price = "fo9", 1000 // wei per second (registerStream)
	type node struct {
		dir, url string
		args     []string
		stub     *streamStub
		worker   string
		proc     *testnet.Process
	}
	var nodes [2]*node
	for i := range nodes {
		n := &node{dir: t.TempDir(), url: "https://" + testnet.FreePort(t), stub: &streamStub{}}
		n.args = []string{"orchestrator", "--secret", testnet.Secret, "--data-dir", n.dir, "--listen", n.url, "--admin-listen", "",
			"--ticket-ev", "1000", "--min-compute", "2s", "--hold-ttl-margin", "1s", "--sweep-interval", "100ms",
			"--stream-settle-interval", "200ms", "--stream-grace", "500ms"}
		srv := httptest.NewServer(n.stub)
		t.Cleanup(srv.Close)
		n.worker = srv.URL
		n.proc = testnet.StartProcess(t, "serving", n.args...)
		registerStream(t, n.url, n.worker)
		nodes[i] = n
	}
	gwDir, gwAddr := t.TempDir(), testnet.FreePort(t)
	gw := testnet.StartProcess(t, "gateway serving", "gateway", "--orch-addr", nodes[0].url+","+nodes[1].url,
		"--data-dir", gwDir, "--listen", gwAddr, "--admin-listen", "", "--dev-key", testnet.KeyA,
		"--min-compute", "2s", "--hold-ttl-margin", "1s", "--stream-pay-interval", "200ms", "--stream-top-up-below", "1s", "--stream-top-up", "1s")
	// A session's start pays 3 s; it is topped up by 1 s once its
	// orchestrator reports less than 1 s left: 2 s into the session, more
	// than the 3 pay intervals + 1 s margin of a top-up's TTL.
	var logs []string
	logDone := make(chan struct{})
	go func() {
		for l := range gw.Lines {
			logs = append(logs, l)
		}
		close(logDone)
	}()
	defer func() {
		gw.Kill9()
		<-logDone
		if t.Failed() {
			for _, l := range logs {
				t.Log("gateway: ", l)
			}
		}
	}()
	gwURL := "http://" + gwAddr + "/process/stream/"
	client := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, gwURL+path, strings.NewReader(body))
		if path == "start" {
			hdr, _ := json.Marshal(wire.JobRequest{Request: "{}", Parameters: "{}", Capability: "live", TimeoutSeconds: 3})
			req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status := func() (state, orch string) {
		t.Helper()
		code, b := client(http.MethodGet, id+"/status", "")
		var st struct{ State, Orchestrator string }
		if code != http.StatusOK || json.Unmarshal(b, &st) != nil {
			t.Fatalf("status: %d %s", code, b)
		}
		return st.State, st.Orchestrator
	}

	started := time.Now()
	if code, b := client(http.MethodPost, "start", `{"stream_id":"`+id+`","params":"{}"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, b)
	}
	testnet.Eventually(t, "the stream to start at one orchestrator", func() bool {
		return nodes[0].stub.count("/stream/start")+nodes[1].stub.count("/stream/start") == 1
	})
	a, b := nodes[0], nodes[1]
	if b.stub.count("/stream/start") == 1 {
		a, b = b, a
	}
	if state, orch := status(); state != "running" || strings.TrimSuffix(orch, "/") != a.url {
		t.Fatalf("before the kill: %s at %q, want running at %s", state, orch, a.url)
	}
	// The sender (the gateway's key) pays A once for the stream itself:
	// the payment a replay repeats after A's restart.
	c := testnet.NewClient(t, a.url, testnet.KeyA)
	details := `{"stream_id":"` + id + `"}`
	paid := c.Pay(c.Token("live", id), 5)
	if s := streamCall(t, c, a.url, "payment", wire.JobRequest{Request: details, Parameters: "{}", Capability: "live", TimeoutSeconds: 70}, paid); s != http.StatusOK {
		t.Fatalf("a payment to A for the running stream: %d", s)
	}
	killed := time.Now()
	a.proc.Kill9()

	testnet.Eventually(t, "the gateway to move the stream to B", func() bool {
		state, orch := status()
		return state == "running" && strings.TrimSuffix(orch, "/") == b.url && b.stub.count("/stream/start") == 1
	})
	// The client's URLs, the gateway's, reach the stream at B.
	if code, body := client(http.MethodPost, id+"/update", `{"prompt":"moved"}`); code != http.StatusOK {
		t.Errorf("update after the move: %d %s", code, body)
	}
	if n := b.stub.count("/stream/params"); n != 1 {
		t.Errorf("B's worker got %d updates, want 1", n)
	}

	a.proc = testnet.StartProcess(t, "serving", a.args...)
	registerStream(t, a.url, a.worker)
	calls := func() int {
		return a.stub.count("/stream/start") + a.stub.count("/stream/params") + a.stub.count("/stream/stop")
	}
	before := calls()
	for _, route := range []string{"payment", "update", "stop"} {
		payment := ""
		if route == "payment" {
			payment = paid // replayed
		}
		if s := streamCall(t, c, a.url, route, wire.JobRequest{Request: details, Parameters: "{}", Capability: "live", TimeoutSeconds: 70}, payment); s != http.StatusNotFound {
			t.Errorf("%s at the restarted A: %d, want 404", route, s)
		}
	}
	if n := calls() - before; n != 0 {
		t.Errorf("A's worker got %d calls after the restart", n)
	}
	testnet.Eventually(t, "A's hold of the dead stream to expire", func() bool { return openJobs(t, a.dir) == 0 })
	if state, orch := status(); state != "running" || strings.TrimSuffix(orch, "/") != b.url {
		t.Errorf("after A's restart: %s at %q, want still running at %s", state, orch, b.url)
	}

	// B is paid a top-up (its start's 3 s less the 1 s threshold run
	// out): the stream's hold in the books lives as long as that.
	testnet.Eventually(t, "a top-up to B", func() bool {
		return streamStatementOf(t, b.dir, c.Addr(), id).Credited.Cmp(ledger.Wei(3000)) > 0
	})
	if code, body := client(http.MethodPost, id+"/stop", ""); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, body)
	}
	stopped := time.Now()
	testnet.Eventually(t, "B's hold to close", func() bool { return openJobs(t, b.dir) == 0 })
	testnet.Eventually(t, "the gateway's books to close", func() bool { return openJobs(t, gwDir) == 0 })
	gw.Kill9()
	a.proc.Kill9()
	b.proc.Kill9()

	sender := c.Addr()
	stA := streamStatementOf(t, a.dir, sender, id)
	stB := streamStatementOf(t, b.dir, sender, id)
	// Each bills only the seconds it served (whole seconds, rounded up).
	bill := func(from, to time.Time) ledger.Amount {
		return ledger.Wei(price * int64(math.Ceil(to.Sub(from).Seconds())))
	}
	if stA.Charged.Cmp(bill(started, killed)) > 0 {
		t.Errorf("A charged %s for at most %s served", stA.Charged, killed.Sub(started))
	}
	if stB.Opened.Before(killed) {
		t.Errorf("B's hold opened at %s, before A was killed at %s", stB.Opened, killed)
	}
	if stB.Charged.Cmp(bill(stB.Opened, stopped)) > 0 {
		t.Errorf("B charged %s for at most %s served", stB.Charged, stopped.Sub(stB.Opened))
	}
	if stA.Account.State != ledger.StateExpired || stB.Account.State != ledger.StateClosed {
		t.Errorf("A's hold %s (want expired), B's %s (want closed)", stA.Account.State, stB.Account.State)
	}
	// The gateway's books: a hold per session, A's first; what each
	// says paid is what that orchestrator credited (A: plus the
	// sender's own payment; the replay credited nothing).
	var holds []ledger.Account
	for _, h := range gatewayJobs(t, gwDir) {
		if h.Ref.Name == "~stream-"+id {
			holds = append(holds, h)
		}
	}
	slices.SortFunc(holds, func(x, y ledger.Account) int { return x.OpenedAt.Compare(y.OpenedAt) })
	if len(holds) != 2 {
		t.Fatalf("the gateway's books hold %d sessions of the stream, want 2", len(holds))
	}
	if want := stA.Credited.Sub(ledger.Wei(5000)); holds[0].Credited.Cmp(want) != 0 {
		t.Errorf("the gateway booked %s paid to A, A credited %s of its payments", holds[0].Credited, want)
	}
	if holds[1].Credited.Cmp(stB.Credited) != 0 {
		t.Errorf("the gateway booked %s paid to B, B credited %s", holds[1].Credited, stB.Credited)
	}
	for _, h := range holds {
		if !h.State.IsFinal() {
			t.Errorf("the gateway's hold %s is %s", h.Ref, h.State)
		}
	}
	checkBooks(t, a.dir, nil)
	checkBooks(t, b.dir, nil)
	checkBooks(t, gwDir, nil)
	t.Logf("report: orchestrator killed mid-stream: moved to B in %s; A charged %s of %s credited (hold expired), B charged %s of %s (served %s); the replay credited nothing; all three ledgers verify",
		stB.Opened.Sub(killed).Round(time.Millisecond), stA.Charged, stA.Credited, stB.Charged, stB.Credited, stopped.Sub(stB.Opened).Round(time.Millisecond))
}

// streamStatementOf is `byoc ledger statement --stream id` of an
// orchestrator's ledger at dir.
func streamStatementOf(t *testing.T, dir, sender, id string) ledger.Statement {
	t.Helper()
	out, err := exec.Command(testnet.ByocBinary(t), "ledger", "statement", "--data-dir", dir, "--sender", sender,
		"--stream", id, "--role", "orchestrator", "--json").Output()
	if err != nil {
		t.Fatalf("byoc ledger statement: %v", err)
	}
	var st ledger.Statement
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("byoc ledger statement: %v\n%s", err, out)
	}
	return st
}

// gatewayJobs is `byoc ledger jobs --all` of the ledger at dir.
func gatewayJobs(t *testing.T, dir string) []ledger.Account {
	t.Helper()
	out, err := exec.Command(testnet.ByocBinary(t), "ledger", "jobs", "--all", "--data-dir", dir, "--json").Output()
	if err != nil {
		t.Fatalf("byoc ledger jobs: %v", err)
	}
	var jobs []ledger.Account
	if err := json.Unmarshal(out, &jobs); err != nil {
		t.Fatalf("byoc ledger jobs: %v\n%s", err, out)
	}
	return jobs
}
