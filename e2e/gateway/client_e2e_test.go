package gateway_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"byoc/gateway"
	"byoc/wire"
	"byoc/worker"
)

// Without a key the gateway runs offchain: free capabilities work with
// unsigned requests; a priced one is a clear 402, not a crash.
func TestOffchainWithoutKey(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "free", 0, 4)
	register(t, o.URL, w, worker.Reverse, "paid", 1000, 4)
	gw := startGateway(t, "", []string{o.URL}, nil)
	r := submit(t, gw, jobSpec{capability: "free", body: "abc"})
	mustOK(t, r)
	if r.body != "cba" || r.header.Get(wire.HeaderOrchestratorURL) != o.URL {
		t.Fatalf("free job: %q %v", r.body, r.header)
	}
	r = submit(t, gw, jobSpec{capability: "paid", body: "abc"})
	if r.status != http.StatusPaymentRequired || !containsAll(r.body, "payment needed but the gateway has no key", "--dev-key") {
		t.Fatalf("priced job without a key: %d %q", r.status, r.body)
	}
	if w.Handler().Stats().Served != 1 {
		t.Error("the worker ran the unpaid job")
	}
}

// Bad client input gets a clear 4xx and never reaches an orchestrator.
func TestBadClientInput(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, func(c *gateway.NodeConfig) { c.Gateway.MaxBodyBytes = 1000 })
	for _, tc := range []struct {
		name   string
		spec   jobSpec
		status int
		want   string
	}{
		{"GET", jobSpec{capability: "reverse", method: http.MethodGet}, 405, "Method not allowed"},
		{"no header", jobSpec{raw: "-"}, 400, "Unable to parse job request"},
		{"not base64", jobSpec{raw: "%%%"}, 400, "not valid base64"},
		{"not JSON", jobSpec{raw: b64("hello world")}, 400, "not valid JSON"},
		{"no timeout", jobSpec{raw: b64(`{"capability":"reverse","request":"{}","parameters":"{}"}`)}, 400, "timeout_seconds is required"},
		{"negative timeout", jobSpec{raw: b64(`{"capability":"reverse","request":"{}","parameters":"{}","timeout_seconds":-5}`)}, 400, "must be positive"},
		{"float timeout", jobSpec{raw: b64(`{"capability":"reverse","request":"{}","parameters":"{}","timeout_seconds":1.5}`)}, 400, "Unable to parse job request"},
		{"huge timeout", jobSpec{capability: "reverse", timeout: 7200}, 400, "exceeds this gateway's maximum of 3600"},
		{"no capability", jobSpec{capability: ""}, 400, "no capability"},
		{"request not JSON", jobSpec{capability: "reverse", request: "run echo"}, 400, "Unable to unmarshal job request err=invalid character 'r'"},
		{"parameters not JSON", jobSpec{capability: "reverse", parameters: "[1"}, 400, "Unable to unmarshal job parameters"},
		{"bad job id", jobSpec{capability: "reverse", id: "a b"}, 400, "Invalid job id"},
		{"attempt-like job id", jobSpec{capability: "reverse", id: "x~2"}, 400, "Invalid job id"},
		{"bad search timeout", jobSpec{capability: "reverse", header: map[string]string{wire.HeaderOrchSearchTimeout: "soon"}}, 400, "Livepeer-Orch-Search-Timeout"},
		{"body too large", jobSpec{capability: "reverse", body: strings.Repeat("x", 1001)}, 413, "request body too large"},
		{"unknown capability", jobSpec{capability: "nope"}, 503, "capability not offered"},
	} {
		r := submit(t, gw, tc.spec)
		if r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, r.status, r.body, tc.status, tc.want)
		}
	}
	if n := w.Handler().Stats().Served; n != 0 {
		t.Errorf("the worker ran %d jobs", n)
	}
	if s := books(t, gw.Ledger, o.Address.Hex(), "reverse"); s != (side{}) {
		t.Errorf("bad input moved money: %+v", s)
	}
}

// A job ID a client reuses is refused before anything is paid: the
// orchestrator closed that job's hold and would not open it again.
func TestClientJobIDReused(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, nil)
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", id: "job-1", body: "abc"}))
	before := agree(t, gw, o, "reverse")
	r := submit(t, gw, jobSpec{capability: "reverse", id: "job-1", body: "abc"})
	if r.status != http.StatusConflict || !strings.Contains(r.body, "job id already used") {
		t.Fatalf("reused id: %d %q", r.status, r.body)
	}
	if after := agree(t, gw, o, "reverse"); after != before {
		t.Errorf("the refused job moved money: %+v → %+v", before, after)
	}
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", id: "job-2", body: "abc"}))
	agree(t, gw, o, "reverse")
}

// Server-sent events stream through as they come, end at [DONE], and the
// stream's charge (the hold's balance before minus after) is booked
// exactly as the orchestrator charged it.
func TestSSEJob(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.SSE, "sse", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, nil)
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/process/request/", strings.NewReader(`{"text":"hi","events":4,"interval_ms":30}`))
	req.Header.Set(wire.HeaderJobRequest, b64(`{"capability":"sse","request":"{}","parameters":"{}","timeout_seconds":5}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get(wire.HeaderOrchestratorURL) != o.URL {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			events = append(events, strings.TrimPrefix(line, "data: "))
		}
	}
	want := []string{`{"i":0,"token":"Hello"}`, `{"i":1,"token":"from"}`, `{"i":2,"token":"SSE"}`, `{"i":3,"token":"hi"}`, `{"balance": 4000.000}`, `[DONE]`}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	idle(t, gw)
	if s := agree(t, gw, o, "sse"); s.charged != 1000 || s.pool != 4000 {
		t.Errorf("%+v", s)
	}
}
