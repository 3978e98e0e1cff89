package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/wire"
	"byoc/worker"
)

// tokenGate holds an orchestrator's token answers while closed.
type tokenGate struct {
	mu   sync.Mutex
	open chan struct{} // closed while answers pass
}

func (g *tokenGate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// hold makes token answers wait; pass lets them (and the held ones) go.
func (g *tokenGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *tokenGate) pass() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// gatedTokens puts a TLS proxy in front of an orchestrator whose token
// answers wait while the gate holds them (it starts holding); jobs go to
// the token's service_addr, the orchestrator itself.
func gatedTokens(t *testing.T, orchURL string) (string, *tokenGate) {
	t.Helper()
	g := &tokenGate{open: make(chan struct{})}
	target, _ := url.Parse(orchURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	proxy.Transport = tr
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/process/token" {
			select {
			case <-g.wait():
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		g.pass()
		srv.Close()
		tr.CloseIdleConnections() // else the orchestrator's shutdown waits for them
	})
	return srv.URL, g
}

// Among orchestrators at the same price, one that does not answer tokens
// while the others do is not waited for, and not selected — whether tokens
// are asked for per job or reused. The jobs allow a search of 30 s and
// the client gives up after 20 s: only a gateway that does not wait for the
// held token answers them.
func TestSlowOrchestratorNotSelected(t *testing.T) {
	for _, reuse := range []time.Duration{-1, 0} {
		t.Run(fmt.Sprintf("reuse=%v", reuse), func(t *testing.T) {
			a := startOrch(t, nil)
			b := startOrch(t, nil)
			w := startWorker(t)
			register(t, a.URL, w, worker.Reverse, "reverse", 1000, 4)
			register(t, b.URL, w, worker.Reverse, "reverse", 1000, 4)
			slowA, gate := gatedTokens(t, a.URL)
			gw := startGateway(t, keyA, []string{slowA, b.URL}, func(c *gateway.NodeConfig) { c.Gateway.TokenReuse = reuse })
			for i := 0; i < 3; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				r := submit(t, gw, jobSpec{capability: "reverse", body: "abc", ctx: ctx,
					header: map[string]string{wire.HeaderOrchSearchTimeout: "30s", wire.HeaderOrchSearchRespTimeout: "30s"}})
				cancel()
				mustOK(t, r)
				if got := r.header.Get(wire.HeaderOrchestratorURL); got != b.URL {
					t.Fatalf("job %d ran at %s, want the answering %s", i, got, b.URL)
				}
			}
			agree(t, gw, b, "reverse")
			// Alone, the slow one is used once it answers.
			gate.pass()
			r := submit(t, gw, jobSpec{capability: "reverse", body: "abc", parameters: `{"orchestrators":{"include":["` + slowA + `"]}}`})
			mustOK(t, r)
			if got := r.header.Get(wire.HeaderOrchestratorURL); got != a.URL {
				t.Fatalf("include-filtered job ran at %s", got)
			}
			agree(t, gw, a, "reverse")
			if reuse >= 0 {
				return // the next job would reuse the token just fetched
			}
			// A search that ends before it answers leaves nothing usable: 503.
			gate.hold()
			r = submit(t, gw, jobSpec{capability: "reverse", body: "abc", parameters: `{"orchestrators":{"include":["` + slowA + `"]}}`,
				header: map[string]string{wire.HeaderOrchSearchTimeout: "100ms"}})
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("with a 100ms search timeout: %d %s", r.status, r.body)
			}
		})
	}
}

// Recent job latency counts: once an orchestrator has been slow to run
// jobs, a faster one at the same price is preferred.
func TestJobLatencyRanks(t *testing.T) {
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	w := startWorker(t)
	// One capability name, two implementations: a sleeps, b echoes.
	register(t, a.URL, w, worker.Sleep, "work", 1000, 4)
	register(t, b.URL, w, worker.Echo, "work", 1000, 4)
	gw := startGateway(t, keyA, []string{a.URL, b.URL}, nil)
	only := func(u string) string { return `{"orchestrators":{"include":["` + u + `"]}}` }
	body := sleepBody(time.Second) // far above an echo's latency, even on a busy machine
	if r := submit(t, gw, jobSpec{capability: "work", body: body, parameters: only(a.URL)}); r.status != 200 || r.header.Get(wire.HeaderOrchestratorURL) != a.URL {
		t.Fatalf("a: %d %s", r.status, r.body)
	}
	if r := submit(t, gw, jobSpec{capability: "work", body: body, parameters: only(b.URL)}); r.status != 200 || r.header.Get(wire.HeaderOrchestratorURL) != b.URL {
		t.Fatalf("b: %d %s", r.status, r.body)
	}
	for i := 0; i < 3; i++ {
		r := submit(t, gw, jobSpec{capability: "work", body: body})
		mustOK(t, r)
		if got := r.header.Get(wire.HeaderOrchestratorURL); got != b.URL {
			t.Fatalf("job %d ran at %s, want the faster %s", i, got, b.URL)
		}
	}
	agree(t, gw, a, "work")
	agree(t, gw, b, "work")
	// The excluded one is never asked.
	r := submit(t, gw, jobSpec{capability: "work", body: body, parameters: `{"orchestrators":{"exclude":["` + b.URL + `"]}}`})
	if r.status != 200 || r.header.Get(wire.HeaderOrchestratorURL) != a.URL {
		t.Fatalf("exclude b: %d from %s", r.status, r.header.Get(wire.HeaderOrchestratorURL))
	}
}

// The cheaper orchestrator wins; one above --max-price is never used.
func TestPriceOrderAndMaxPrice(t *testing.T) {
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	w := startWorker(t)
	register(t, a.URL, w, worker.Reverse, "reverse", 2000, 4)
	register(t, b.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{a.URL, b.URL}, nil)
	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	if r.status != 200 || r.header.Get(wire.HeaderOrchestratorURL) != b.URL {
		t.Fatalf("cheapest: %d from %s", r.status, r.header.Get(wire.HeaderOrchestratorURL))
	}
	capped := startGateway(t, keyB, []string{a.URL}, func(c *gateway.NodeConfig) { c.Gateway.MaxPrice = big.NewRat(1999, 1) })
	r = submit(t, capped, jobSpec{capability: "reverse", body: "abc"})
	if r.status != http.StatusServiceUnavailable || !containsAll(r.body, "price above the maximum", "2000 wei/s > --max-price 1999") {
		t.Fatalf("over the cap: %d %q", r.status, r.body)
	}
	agree(t, gw, b, "reverse")
}

// Concurrent jobs from one sender each have their own hold on both sides:
// funded, charged and released on their own, and the books agree. They
// reuse one token, so their tickets come from one shared PM session: a
// repeated nonce would be refused by the orchestrator and show as a
// difference in the books.
func TestConcurrentJobsIsolated(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Sleep, "sleep", 1000, 8)
	gw := startGateway(t, keyA, []string{o.URL}, nil)
	mustOK(t, submit(t, gw, jobSpec{capability: "sleep", body: sleepBody(0)})) // the token the others reuse
	const n = 8
	var wg sync.WaitGroup
	results := make([]jobResult, n)
	for i := range n {
		wg.Go(func() {
			results[i] = submit(t, gw, jobSpec{capability: "sleep", body: sleepBody(150 * time.Millisecond)})
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Fatalf("job %d: %d %s", i, r.status, r.body)
		}
		id := r.header.Get(gateway.HeaderJobIDResponse)
		if ids[id] {
			t.Fatalf("job id %s used twice", id)
		}
		ids[id] = true
		s := statement(t, o, gw.Address(), id)
		if amount(t, s.Charged) != 1000 || s.Account.State != "closed" || s.Credited.Add(s.Drawn).Cmp(ledgerWei(5000)) < 0 {
			t.Errorf("job %s at the orchestrator: charged %s, credited %s + drawn %s, state %s", id, s.Charged, s.Credited, s.Drawn, s.Account.State)
		}
	}
	s := agree(t, gw, o, "sleep")
	if s.charged != (n+1)*1000 || s.openJobs != 0 {
		t.Errorf("%+v", s)
	}
	if reused := metric(t, gw, "byoc_gateway_orchestrator_attempts_total", "stage", "token", "outcome", "reused"); reused != n {
		t.Errorf("%v jobs reused the token, want %d", reused, n)
	}
}

// Webhook discovery: the list comes from a URL (go-livepeer's format), is
// fetched on demand before the first refresh, and a failing webhook is a
// clear 503, never a crash.
func TestWebhookDiscovery(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	var mu sync.Mutex
	status, list := http.StatusInternalServerError, []map[string]any{}
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if status != http.StatusOK {
			http.Error(rw, "down", status)
			return
		}
		json.NewEncoder(rw).Encode(list)
	}))
	t.Cleanup(hook.Close)
	gw := startGateway(t, keyA, nil, func(c *gateway.NodeConfig) {
		c.Discovery = gateway.DiscoveryConfig{WebhookURL: hook.URL, Refresh: time.Hour}
	})
	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	if r.status != http.StatusServiceUnavailable || !containsAll(r.body, "discovery webhook", "status 500") {
		t.Fatalf("webhook down: %d %q", r.status, r.body)
	}
	mu.Lock()
	status, list = http.StatusOK, []map[string]any{{"address": o.URL, "score": 1}, {"address": "not a url ::"}}
	mu.Unlock()
	r = submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	mustOK(t, r)
	if r.header.Get(wire.HeaderOrchestratorURL) != o.URL {
		t.Fatalf("served by %s", r.header.Get(wire.HeaderOrchestratorURL))
	}
	agree(t, gw, o, "reverse")
}

func TestDiscoveryBeforeFirstFetch(t *testing.T) {
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		<-release
		rw.Write([]byte(`[{"address":"127.0.0.1:1"}]`))
	}))
	t.Cleanup(hook.Close)
	d, err := gateway.NewDiscovery(gateway.DiscoveryConfig{WebhookURL: hook.URL})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing fetched yet, and the fetch hangs: a job's search timeout
	// bounds the wait and the answer is an error, not a panic (D30).
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if list, err := d.Orchestrators(ctx); err == nil || len(list) != 0 || !strings.Contains(err.Error(), "not answered yet") {
		t.Fatalf("before the first fetch: %v %v", list, err)
	}
	close(release)
	list, err := d.Orchestrators(context.Background())
	if err != nil || len(list) != 1 || list[0] != "https://127.0.0.1:1" {
		t.Fatalf("after: %v %v", list, err)
	}
}
