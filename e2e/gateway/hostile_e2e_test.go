package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/ledger"
	"byoc/wire"
	"byoc/worker"
)

// lies is what a lying orchestrator changes in a real one's answers.
type lies struct {
	// token rewrites a token's JSON fields (service_addr already points at
	// the liar, so jobs come through it).
	token func(tok map[string]json.RawMessage)
	// job rewrites a job answer's headers.
	job func(h http.Header)
	// hold, if set, holds each job answer until it is closed or the
	// gateway gives up on it.
	hold <-chan struct{}
}

// liar puts a TLS proxy in front of a real orchestrator that tells the
// gateway what l says, and returns its URL. What the orchestrator does
// (admission, payment, charge) is real; only its words change.
func liar(t *testing.T, orchURL string, l lies) string {
	t.Helper()
	target, _ := url.Parse(orchURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	proxy.Transport = tr
	var self string
	proxy.ModifyResponse = func(resp *http.Response) error {
		switch {
		case resp.Request.URL.Path == "/process/token" && resp.StatusCode == http.StatusOK:
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			var tok map[string]json.RawMessage
			if err := json.Unmarshal(body, &tok); err != nil {
				return err
			}
			tok["service_addr"], _ = json.Marshal(self)
			if l.token != nil {
				l.token(tok)
			}
			body, _ = json.Marshal(tok)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		case strings.HasPrefix(resp.Request.URL.Path, "/process/request/"):
			if l.job != nil {
				l.job(resp.Header)
			}
			if l.hold != nil {
				select {
				case <-l.hold:
				case <-resp.Request.Context().Done():
				}
			}
		}
		return nil
	}
	srv := httptest.NewUnstartedServer(proxy)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	self = srv.URL
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections() // else the orchestrator's shutdown waits for them
	})
	return srv.URL
}

// huge is an orchestrator's absurd claim: 10^40 wei.
const huge = "10000000000000000000000000000000000000000"

// An orchestrator answering Livepeer-Job-Charged: 10^40 gets the job's
// hold booked as its charge, no more: the books' pool there stays at zero,
// not −10^40; the claim is counted, and the orchestrator ranks after the
// others at its price, so the next job goes to an honest one even though
// the liar is faster.
func TestOverchargeClaimCapped(t *testing.T) {
	w := startWorker(t)
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	// One capability name: the liar echoes at once, the honest one sleeps.
	register(t, a.URL, w, worker.Echo, "work", 1000, 4)
	register(t, b.URL, w, worker.Sleep, "work", 1000, 4)
	lying := liar(t, a.URL, lies{job: func(h http.Header) { h.Set(wire.HeaderJobCharged, huge) }})
	gw := startGateway(t, keyA, []string{lying, b.URL}, nil)
	only := func(u string) string { return `{"orchestrators":{"include":["` + u + `"]}}` }
	body := sleepBody(100 * time.Millisecond)

	mustOK(t, submit(t, gw, jobSpec{capability: "work", body: body, parameters: only(b.URL)}))
	r := submit(t, gw, jobSpec{capability: "work", body: body, parameters: only(lying)})
	mustOK(t, r)
	if got := r.header.Get(wire.HeaderOrchestratorURL); got != lying {
		t.Fatalf("the job ran at %s, want the liar %s", got, lying)
	}
	ctx := context.Background()
	pool, err := gw.Ledger.Balance(ctx, ledger.PoolKey{Sender: a.Address.Hex(), Capability: "work"}.Ref())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the books' pool at the liar after its claim of %s wei: %s wei", huge, pool)
	// It drew nothing and was paid 5 tickets of 1000: its hold, 5000 wei,
	// is all the books charge; the orchestrator itself charged 1000.
	if pool.Sign() != 0 {
		t.Errorf("the books' pool at the liar is %s wei, want 0", pool)
	}
	// The client is told what the books charged, not the claim.
	if got := r.header.Get(wire.HeaderJobCharged); got != "5000" {
		t.Errorf("Livepeer-Job-Charged relayed %q, want the 5000 wei booked", got)
	}
	g := books(t, gw.Ledger, a.Address.Hex(), "work")
	if g.credited != 5000 || g.charged != 5000 || g.openJobs != 0 {
		t.Errorf("books at the liar %+v: want 5000 paid and 5000 charged", g)
	}
	if n := metric(t, gw, "byoc_gateway_overcharge_claims_total", "orchestrator", lying); n != 1 {
		t.Errorf("%v overcharge claims counted, want 1", n)
	}
	if n := metric(t, gw, "byoc_gateway_overcharge_claimed_wei_total", "orchestrator", lying); n < 9.99e39 {
		t.Errorf("excess counted %v wei", n)
	}
	// The liar answers faster; still the honest one runs the next jobs.
	for i := range 2 {
		r := submit(t, gw, jobSpec{capability: "work", body: body})
		mustOK(t, r)
		if got := r.header.Get(wire.HeaderOrchestratorURL); got != b.URL {
			t.Errorf("job %d after the lie ran at %s, want the honest %s", i, got, b.URL)
		}
	}
	var st *gateway.OrchestratorStatus
	for _, s := range gw.Orchestrators() {
		if s.URL == lying {
			st = &s
		}
	}
	if st == nil || st.Failures != 1 || !strings.Contains(st.LastError, "claimed a charge of "+huge) {
		t.Errorf("the liar's status: %+v", st)
	}
	agree(t, gw, b, "work")
}

// Lying pool and credit figures never move the books beyond what was
// paid: an absurd or negative Livepeer-Balance and pool_balance confirmed
// twice write the pool down to zero at most; a negative, absurd or
// malformed Livepeer-Payment-Credited writes off nothing, and "0" writes
// off the tickets sent, no more.
func TestLyingFiguresBounded(t *testing.T) {
	neg := "-" + huge
	for _, tc := range []struct {
		name string
		l    lies
		// the books' pool after two jobs: the first pays 5000 and is
		// charged 1000; the second draws the 4000 left, pays 1000 and is
		// charged 1000.
		want int64
		// charged is the Livepeer-Job-Charged the client gets for each
		// job: what the books charged ("" for none: a claim they did not
		// take).
		charged string
		// frozen stops the gateway's clock: its estimate of a charge, a
		// second at the price, does not depend on how long the job took.
		frozen bool
	}{
		{"negative balance and pool", lies{
			token: func(tok map[string]json.RawMessage) { tok["pool_balance"] = json.RawMessage(`"` + neg + `"`) },
			job:   func(h http.Header) { h.Set(wire.HeaderBalance, neg) },
		}, 4000, "1000", false}, // written down to 0 after the first job (not to −10^40), then the second's 4000
		{"absurd balance and pool", lies{
			token: func(tok map[string]json.RawMessage) { tok["pool_balance"] = json.RawMessage(`"` + huge + `"`) },
			job:   func(h http.Header) { h.Set(wire.HeaderBalance, huge) },
		}, 4000, "1000", false},
		{"malformed balance", lies{job: func(h http.Header) { h.Set(wire.HeaderBalance, "lots") }}, 4000, "1000", false},
		{"negative credited", lies{job: func(h http.Header) { h.Set(wire.HeaderPaymentCredited, "-5") }}, 4000, "1000", false},
		{"absurd credited", lies{job: func(h http.Header) { h.Set(wire.HeaderPaymentCredited, huge) }}, 4000, "1000", false},
		{"malformed credited", lies{job: func(h http.Header) { h.Set(wire.HeaderPaymentCredited, "0x10") }}, 4000, "1000", false},
		// Each job's tickets written off as refused: 5000 each, nothing more.
		{"nothing credited", lies{job: func(h http.Header) { h.Set(wire.HeaderPaymentCredited, "0") }}, 0, "0", false},
		// A charge the books cannot read is not relayed: they book their
		// estimate (a second at the price) instead.
		{"malformed charge", lies{job: func(h http.Header) { h.Set(wire.HeaderJobCharged, "lots") }}, 4000, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := startWorker(t)
			a := startOrch(t, nil)
			register(t, a.URL, w, worker.Reverse, "reverse", 1000, 4)
			lying := liar(t, a.URL, tc.l)
			gw := startGateway(t, keyA, []string{lying}, func(c *gateway.NodeConfig) {
				c.Gateway.TokenReuse = -1
				if tc.frozen {
					t0 := time.Now()
					c.Gateway.Now = func() time.Time { return t0 }
				}
			})
			for i := range 2 {
				r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
				mustOK(t, r)
				if got, ok := r.header[wire.HeaderJobCharged]; tc.charged == "" && ok || tc.charged != "" && (len(got) != 1 || got[0] != tc.charged) {
					t.Errorf("job %d: Livepeer-Job-Charged %q, want %q", i, got, tc.charged)
				}
			}
			g := books(t, gw.Ledger, a.Address.Hex(), "reverse")
			if g.pool != tc.want || g.credited > 10000 {
				t.Errorf("books %+v: want the pool at %d", g, tc.want)
			}
		})
	}
}

// A token whose service_addr names another host than the orchestrator
// it came from is refused and logged, and the job goes to another
// orchestrator: the other host receives nothing. With
// AllowForeignServiceAddr (--allow-foreign-service-addr) it is used.
func TestForeignServiceAddrRefused(t *testing.T) {
	w := startWorker(t)
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	register(t, a.URL, w, worker.Reverse, "reverse", 1000, 4)
	register(t, b.URL, w, worker.Reverse, "reverse", 1000, 4)
	// The decoy: a proxy to a on another loopback address, counting what
	// reaches it.
	var reached atomic.Int64
	target, _ := url.Parse(a.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	proxy.Transport = tr
	decoy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	decoy.Listener.Close()
	decoy.Listener = ln
	decoy.StartTLS()
	t.Cleanup(func() {
		decoy.Close()
		tr.CloseIdleConnections()
	})
	// a's tokens, asked from a on 127.0.0.1, send jobs to the decoy.
	elsewhere := liar(t, a.URL, lies{token: func(tok map[string]json.RawMessage) {
		tok["service_addr"], _ = json.Marshal(decoy.URL)
	}})

	gw := startGateway(t, keyA, []string{elsewhere, b.URL}, nil)
	for i := range 2 {
		r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
		mustOK(t, r)
		if got := r.header.Get(wire.HeaderOrchestratorURL); got != b.URL {
			t.Errorf("job %d ran at %s, want %s", i, got, b.URL)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the other host received %d requests", n)
	}
	// Alone, it is refused with a clear answer, and the refusal counted.
	// (Above, the jobs may have gone to b before a's token was in.)
	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc", parameters: `{"orchestrators":{"include":["` + elsewhere + `"]}}`})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "is not on the host of "+elsewhere) {
		t.Errorf("only the foreign one: %d %s", r.status, r.body)
	}
	if n := metric(t, gw, "byoc_gateway_orchestrator_attempts_total", "orchestrator", elsewhere, "stage", "token", "outcome", "foreign_service_addr"); n < 1 {
		t.Errorf("refusals counted: %v", n)
	}
	agree(t, gw, b, "reverse")

	// An operator who fronts orchestrators with another host allows it.
	gw2 := startGateway(t, keyA, []string{elsewhere}, func(c *gateway.NodeConfig) { c.Gateway.AllowForeignServiceAddr = true })
	r = submit(t, gw2, jobSpec{capability: "reverse", body: "abc"})
	mustOK(t, r)
	if got := r.header.Get(wire.HeaderOrchestratorURL); got != decoy.URL || reached.Load() != 1 {
		t.Errorf("allowed: ran at %s, the other host reached %d times", got, reached.Load())
	}
	agree(t, gw2, a, "reverse")
}

// An orchestrator that has not answered by timeout_seconds + JobMargin is
// given up on: the client gets 504, the job is not run again, and the books
// charge what the orchestrator may be entitled to (timeout_seconds at its
// price), which is what it charged here.
func TestJobTimeout504(t *testing.T) {
	w := startWorker(t)
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	register(t, a.URL, w, worker.Reverse, "reverse", 1000, 4)
	register(t, b.URL, w, worker.Reverse, "reverse", 2000, 4) // dearer: tried second
	release := make(chan struct{})
	defer close(release)
	stuck := liar(t, a.URL, lies{hold: release}) // a runs the job; its answer never comes
	// b's tokens take the same way (a proxy that lies about nothing), so
	// that a's do not come so much later than b's that the gateway stops
	// waiting for them (a slow machine, the race detector).
	honest := liar(t, b.URL, lies{})
	gw := startGateway(t, keyA, []string{stuck, honest}, func(c *gateway.NodeConfig) { c.Gateway.JobMargin = 100 * time.Millisecond })
	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc", timeout: 1})
	if r.status != http.StatusGatewayTimeout || !strings.Contains(r.body, "did not answer within timeout_seconds (1) + 100ms") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if n := metric(t, gw, "byoc_gateway_jobs_total", "outcome", "timeout"); n != 1 {
		t.Errorf("%v timeouts counted", n)
	}
	if n := w.Handler().Stats().Served; n != 1 {
		t.Errorf("the worker ran the job %d times, want once (not retried at the next orchestrator)", n)
	}
	// Paid 5000 (the 5 s minimum); charged one second: 1000 on both sides.
	if s := agree(t, gw, a, "reverse"); s.pool != 4000 || s.charged != 1000 {
		t.Errorf("orchestrator %+v: want 1000 charged, 4000 left", s)
	}
}
