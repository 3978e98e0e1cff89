package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/signer"
	"byoc/wire"
	"byoc/worker"
)

// startSigner starts a byoc signer with budgets enforced on loopback,
// signing with key.
func startSigner(t *testing.T, key string) *signer.Node {
	t.Helper()
	k, err := ethsig.KeySignerFromHex(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := signer.StartNode(context.Background(), signer.NodeConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Budgets: true,
		Signer: signer.Config{Key: k, Logger: testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		verifyLedger(t, "signer", n.Ledger, n.Budgets.Ledger.Store())
		n.Close()
	})
	return n
}

// startRemoteGateway starts a gateway that holds no key and pays through
// the signer as customer.
func startRemoteGateway(t *testing.T, s *signer.Node, customer string, orchs []string) *gateway.Node {
	t.Helper()
	remote, err := gateway.NewRemoteSigner(context.Background(), s.URL, map[string]string{signer.HeaderAuthID: customer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startGateway(t, "", orchs, func(cfg *gateway.NodeConfig) { cfg.Gateway.Remote = remote })
}

// customerPool is the orchestrator's pool of the signer's customer.
func customerPool(t *testing.T, o *orchestrator.Node, s *signer.Node, capability, customer string) ledger.Account {
	t.Helper()
	a, err := o.Ledger.Account(context.Background(), ledger.PoolKey{Sender: s.Address(), Capability: capability, Customer: customer}.Ref())
	if err != nil {
		t.Fatalf("%s's pool at the orchestrator: %v", customer, err)
	}
	return a
}

// TestRemoteSignerTwoCustomers: two gateways without keys, one per
// customer, pay through one byoc signer at one orchestrator. The
// orchestrator sees the signer as the sender and keys each job's pool by
// the customer bound into the signed request; what the signer charged each
// customer's budget is, to the wei, what the orchestrator credited that
// customer's pool. When bob's budget runs out his jobs stop (483, nothing
// more signed or credited) while alice's go on.
func TestRemoteSignerTwoCustomers(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	s := startSigner(t, keyA)
	ctx := context.Background()
	if _, err := s.Budgets.Grant(ctx, "alice", ledger.Wei(100_000), "g-alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Budgets.Grant(ctx, "bob", ledger.Wei(6_000), "g-bob"); err != nil { // a first hold (5000) and one top-up
		t.Fatal(err)
	}
	gwA := startRemoteGateway(t, s, "alice", []string{o.URL})
	gwB := startRemoteGateway(t, s, "bob", []string{o.URL})
	if gwA.Address() != s.Address() {
		t.Fatalf("gateway pays as %s, signer is %s", gwA.Address(), s.Address())
	}
	run := func(gw *gateway.Node) jobResult {
		return submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	}
	mustOK(t, run(gwA))
	mustOK(t, run(gwB))
	mustOK(t, run(gwA))
	mustOK(t, run(gwB))
	// Bob's third job needs a ticket his budget can no longer pay.
	if r := run(gwB); r.status != 483 || !strings.Contains(r.body, "cannot cover") {
		t.Errorf("bob's third job: %d %s", r.status, r.body)
	}
	mustOK(t, run(gwA))
	idle(t, gwA)
	idle(t, gwB)

	for _, c := range []struct {
		name string
		jobs int
	}{{"alice", 3}, {"bob", 2}} {
		pool := customerPool(t, o, s, "reverse", c.name)
		// Tickets are credited to a job's hold, which draws from and releases
		// to its pool: the customer's totals are the pool's and its jobs'.
		credited, charged := pool.Credited, pool.Charged
		jobs, err := o.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, PoolID: pool.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			credited, charged = credited.Add(j.Credited), charged.Add(j.Charged)
		}
		v, err := s.Budgets.Read(ctx, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != c.jobs || credited.Sign() == 0 || v.Spent.Cmp(credited) != 0 {
			t.Errorf("%s: %d jobs; the signer charged %s, the orchestrator credited %s", c.name, len(jobs), v.Spent, credited)
		}
		if charged.Cmp(ledger.Wei(int64(1000*c.jobs))) != 0 || pool.Balance.Cmp(credited.Sub(charged)) != 0 {
			t.Errorf("%s: charged %s for %d jobs, pool %s", c.name, charged, c.jobs, pool.Balance)
		}
	}
	// Nothing landed in the signer's customer-less pool.
	if bal, _ := o.Ledger.Balance(ctx, ledger.PoolKey{Sender: s.Address(), Capability: "reverse"}.Ref()); !bal.IsZero() {
		t.Errorf("customer-less pool holds %s", bal)
	}
}

// TestRemoteSignerStreams: two key-less gateways, one per customer, run a
// stream each at one orchestrator, paid through one byoc signer. Each
// stream's start and top-ups are signed with the customer bound in, so the
// orchestrator opens each stream's hold from that customer's pool; bob's
// budget pays his start but not a top-up (483), so only his stream runs
// dry and is stopped while alice's goes on. Per customer, what the signer
// charged is, to the wei, what the orchestrator credited that customer.
func TestRemoteSignerStreams(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	o := startOrch(t, func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		c.Orchestrator.StreamGrace = time.Second
		c.Orchestrator.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	})
	sw := liveWorker(t, o, 4)
	s := startSigner(t, keyA)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Budgets.Grant(ctx, "alice", ledger.Wei(1_000_000), "g-alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Budgets.Grant(ctx, "bob", ledger.Wei(15_000), "g-bob"); err != nil { // the start (10 s), not a top-up (70 s)
		t.Fatal(err)
	}
	gws := map[string]*gateway.Node{}
	for _, c := range []string{"alice", "bob"} {
		remote, err := gateway.NewRemoteSigner(ctx, s.URL, map[string]string{signer.HeaderAuthID: c}, nil)
		if err != nil {
			t.Fatal(err)
		}
		gws[c] = startGateway(t, "", []string{o.URL}, func(cfg *gateway.NodeConfig) {
			cfg.Gateway.Remote = remote
			cfg.Gateway.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
			cfg.Gateway.StreamHost = "https://gw.example"
			cfg.Clock = clock
		})
	}
	start := func(c, id string) {
		t.Helper()
		h, _ := wire.EncodeJobRequestHeader(&wire.JobRequest{Request: `{}`, Parameters: "{}", Capability: "live", TimeoutSeconds: 10})
		r, _ := http.NewRequest(http.MethodPost, gws[c].URL+"/process/stream/start", strings.NewReader(`{"stream_id":"`+id+`","params":"{}"}`))
		r.Header.Set(wire.HeaderJobRequest, h)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || gws[c].StreamState(ctx, id) != "running" {
			t.Fatalf("%s's stream: %d %s, %s", c, resp.StatusCode, b, gws[c].StreamState(ctx, id))
		}
	}
	start("alice", "sa")
	start("bob", "sb")
	// Each stream's hold at the orchestrator draws from its customer's pool.
	for c, id := range map[string]string{"alice": "sa", "bob": "sb"} {
		hold, err := o.Ledger.Account(ctx, ledger.JobKey{Sender: s.Address(), JobID: id}.Ref())
		if err != nil {
			t.Fatal(err)
		}
		if pool := customerPool(t, o, s, "live", c); hold.PoolID != pool.ID {
			t.Errorf("%s's stream's hold is in pool %d, not the customer's (%d)", c, hold.PoolID, pool.ID)
		}
	}

	// 4 s in both hold 6 s: the top-up round pays alice's 70 s; bob's
	// budget cannot, so the signer refuses it.
	clock.Advance(4 * time.Second)
	if paid, failed := gws["alice"].PayStreams(ctx); paid != 1 || failed != 0 {
		t.Errorf("alice's top-up round: paid %d failed %d", paid, failed)
	}
	if paid, failed := gws["bob"].PayStreams(ctx); paid != 0 || failed != 1 {
		t.Errorf("bob's top-up round: paid %d failed %d", paid, failed)
	}
	// 10 s later bob's stream is dry and, after the grace, stopped;
	// alice's goes on.
	clock.Advance(10 * time.Second)
	o.SettleStreams(ctx)
	clock.Advance(2 * time.Second)
	if st := o.SettleStreams(ctx); st.Stopped != 1 {
		t.Errorf("settling: %+v, want bob's stream stopped", st)
	}
	if err := o.WaitStreamStops(ctx); err != nil { // the worker is told after the batch
		t.Fatal(err)
	}
	if sw.count("/stream/stop", "sb") != 1 || sw.count("/stream/stop", "sa") != 0 {
		t.Errorf("worker stops: bob's %d, alice's %d; want 1 and 0", sw.count("/stream/stop", "sb"), sw.count("/stream/stop", "sa"))
	}
	if st := gws["alice"].StreamState(ctx, "sa"); st != "running" {
		t.Errorf("alice's stream: %s", st)
	}
	r, _ := http.NewRequest(http.MethodPost, gws["alice"].URL+"/process/stream/sa/stop", nil)
	if resp, err := http.DefaultClient.Do(r); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stop alice's stream: %v %v", resp, err)
	}

	for _, c := range []string{"alice", "bob"} {
		pool := customerPool(t, o, s, "live", c)
		credited := pool.Credited
		jobs, err := o.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, PoolID: pool.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			credited = credited.Add(j.Credited)
		}
		v, err := s.Budgets.Read(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 || credited.Sign() == 0 || v.Spent.Cmp(credited) != 0 {
			t.Errorf("%s: %d streams; the signer charged %s, the orchestrator credited %s", c, len(jobs), v.Spent, credited)
		}
	}
	if bal, _ := o.Ledger.Balance(ctx, ledger.PoolKey{Sender: s.Address(), Capability: "live"}.Ref()); !bal.IsZero() {
		t.Errorf("customer-less pool holds %s", bal)
	}
}

// TestRemoteSignerSignFailsChargesNothing: when the signer cannot sign a
// job's request (here a proxy in front of it fails /sign-byoc-job), the
// gateway has asked for no tickets: the customer's budget is charged
// nothing. (It signed after paying, leaving the customer charged for
// tickets never sent.)
func TestRemoteSignerSignFailsChargesNothing(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	s := startSigner(t, keyA)
	ctx := context.Background()
	if _, err := s.Budgets.Grant(ctx, "alice", ledger.Wei(100_000), "g-alice"); err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var payments atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case wire.RouteSignBYOCJob:
			http.Error(w, `{"error":{"message":"signing is down"}}`, http.StatusInternalServerError)
			return
		case wire.RouteGenerateBYOCPayment:
			payments.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	remote, err := gateway.NewRemoteSigner(ctx, proxy.URL, map[string]string{signer.HeaderAuthID: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, "", []string{o.URL}, func(cfg *gateway.NodeConfig) { cfg.Gateway.Remote = remote })
	if r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"}); r.status != http.StatusInternalServerError {
		t.Errorf("job with signing down: %d %s", r.status, r.body)
	}
	idle(t, gw)
	v, err := s.Budgets.Read(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if n := payments.Load(); n != 0 || !v.Spent.IsZero() {
		t.Errorf("signing failed, yet %d payments were asked for and alice was charged %s", n, v.Spent)
	}
}
