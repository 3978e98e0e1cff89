package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

// metric returns the value of a counter or gauge of the gateway whose
// labels include the given name=value pairs (0 if absent).
func metric(t *testing.T, gw *gateway.Node, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := gw.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// While one gateway is alone with an orchestrator, every comparison of
// its books with the orchestrator's reports agrees: its answers' and, when
// tokens are asked for per job, its tokens'.
func TestBooksCompareAgree(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reuse time.Duration
		want  float64
	}{
		// Job 1: after (token: unknown address yet). Jobs 2, 3: token and after.
		{"token per job", -1, 5},
		// Jobs 2, 3 reuse job 1's token: only their answers are compared.
		{"tokens reused", 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := startOrch(t, nil)
			w := startWorker(t)
			register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
			gw := startGateway(t, keyA, []string{o.URL}, func(c *gateway.NodeConfig) { c.Gateway.TokenReuse = tc.reuse })
			for range 3 {
				mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: "abc"}))
			}
			agree(t, gw, o, "reverse")
			if n := metric(t, gw, "byoc_gateway_books_comparisons_total", "result", "agree"); n != tc.want {
				t.Errorf("%v comparisons agreed, want %v", n, tc.want)
			}
			if n := metric(t, gw, "byoc_gateway_books_comparisons_total") - metric(t, gw, "byoc_gateway_books_comparisons_total", "result", "agree"); n != 0 {
				t.Errorf("%v comparisons disagreed", n)
			}
		})
	}
}

// Two gateways sharing a key share the orchestrator's pool: each sees the
// orchestrator report more than its own books, logs and counts it, and
// never books the other's money as its own.
func TestBooksNeverCreditMoreThanPaid(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw1 := startGateway(t, keyA, []string{o.URL}, nil)
	gw2 := startGateway(t, keyA, []string{o.URL}, nil)
	mustOK(t, submit(t, gw1, jobSpec{capability: "reverse", body: "abc"})) // pays 5000, charged 1000
	mustOK(t, submit(t, gw2, jobSpec{capability: "reverse", body: "abc"})) // its books are empty: pays 5000 too
	mustOK(t, submit(t, gw1, jobSpec{capability: "reverse", body: "abc"}))
	for i, gw := range []*gateway.Node{gw1, gw2} {
		if n := metric(t, gw, "byoc_gateway_books_comparisons_total", "result", "orchestrator_higher"); n < 1 {
			t.Errorf("gateway %d: no comparison found the orchestrator higher", i+1)
		}
		if n := metric(t, gw, "byoc_gateway_books_written_down_wei_total"); n != 0 {
			t.Errorf("gateway %d wrote down %v", i+1, n)
		}
	}
	// Each gateway's pool is what it paid minus what its own jobs were
	// charged; together they are the orchestrator's pool.
	g1 := books(t, gw1.Ledger, o.Address.Hex(), "reverse")
	g2 := books(t, gw2.Ledger, o.Address.Hex(), "reverse")
	ob := books(t, o.Ledger, gw1.Address(), "reverse")
	if g1.pool != 4000 || g2.pool != 4000 || g1.pool+g2.pool != ob.pool {
		t.Errorf("gateway 1 %+v, gateway 2 %+v, orchestrator %+v", g1, g2, ob)
	}
	if g1.credited+g2.credited != ob.credited || g1.charged+g2.charged != ob.charged {
		t.Errorf("totals: gateway 1 %+v + gateway 2 %+v != orchestrator %+v", g1, g2, ob)
	}
}

// An orchestrator that lost its ledger (a restart on an empty one) holds
// less than the books say: the gateway still pays in full (it trusts the
// lower figure at once), sees the same shortfall twice, and writes its
// books down to the orchestrator's figure.
func TestBooksWriteDownConfirmedShortfall(t *testing.T) {
	w := startWorker(t)
	o1 := startOrch(t, nil)
	register(t, o1.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{o1.URL}, nil)
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: "abc"}))
	if s := agree(t, gw, o1, "reverse"); s.pool != 4000 {
		t.Fatalf("%+v", s)
	}
	closeOrch(t, o1, gw)
	o2 := startOrch(t, func(c *orchestrator.NodeConfig) { c.Listen, c.Address = o1.URL, o1.Address }) // same place, same address, empty ledger
	register(t, o2.URL, w, worker.Reverse, "reverse", 1000, 4)

	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: "abc"}))
	if n := metric(t, gw, "byoc_gateway_books_written_down_wei_total"); n != 4000 {
		t.Fatalf("written down %v, want 4000", n)
	}
	g := books(t, gw.Ledger, o2.Address.Hex(), "reverse")
	ob := books(t, o2.Ledger, gw.Address(), "reverse")
	if g.pool != ob.pool || g.pool != 4000 {
		t.Errorf("pool: books %d, orchestrator %d", g.pool, ob.pool)
	}
	// From here on both sides move together again.
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: "abc"}))
	g = books(t, gw.Ledger, o2.Address.Hex(), "reverse")
	ob = books(t, o2.Ledger, gw.Address(), "reverse")
	if g.pool != ob.pool {
		t.Errorf("after: books %d, orchestrator %d", g.pool, ob.pool)
	}
	pools, err := gw.Pools(context.Background())
	if err != nil || len(pools) != 1 || amount(t, pools[0].WrittenDown) != 4000 || pools[0].Last == nil {
		t.Errorf("pools view: %+v %v", pools, err)
	}
}

// An orchestrator that refuses a paid job for insufficient balance (here:
// it demands 5 s of compute, the gateway was told 2 s) keeps the payment
// in the sender's pool; the refusal is relayed as final and the books hold
// the same payment in the same pool.
func TestRefusedPaymentStaysBooked(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, func(c *gateway.NodeConfig) { c.Gateway.MinCompute = 2 * time.Second })
	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc", timeout: 2})
	if r.status != http.StatusPaymentRequired || !strings.Contains(r.body, "Insufficient balance") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if s := agree(t, gw, o, "reverse"); s.pool != 2000 || s.credited != 2000 || s.charged != 0 {
		t.Errorf("%+v", s)
	}
	if w.Handler().Stats().Served != 0 {
		t.Error("the worker ran a refused job")
	}
}

// An orchestrator that raised its price since the token the gateway
// reuses refuses the job's payment before running it (the tickets quote
// the old price); the gateway writes the refused ticket off, asks for a
// fresh token, pays at the new price, and its pool still agrees with the
// orchestrator's.
func TestReusedTokenAfterPriceRise(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, nil)
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: "abc"}))
	register(t, o.URL, w, worker.Reverse, "reverse", 3000, 4) // the token the gateway keeps says 1000
	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	mustOK(t, r)
	if got := r.header.Get(wire.HeaderJobCharged); got != "3000" {
		t.Errorf("charged %q, want 3000 (one second at the new price)", got)
	}
	if n := metric(t, gw, "byoc_gateway_orchestrator_attempts_total", "stage", "job", "outcome", "stale_token"); n != 1 {
		t.Errorf("%v stale-token attempts, want 1", n)
	}
	// The orchestrator refused the stale payment (its price is in the
	// tickets): the books hold that ticket as credit and as its write-off
	// ("uncredited:…"), the orchestrator not at all; the pools agree.
	g := books(t, gw.Ledger, o.Address.Hex(), "reverse")
	ob := books(t, o.Ledger, gw.Address(), "reverse")
	if g.pool != ob.pool || g.credited-ob.credited != 1000 || g.charged-ob.charged != 1000 || g.openJobs+ob.openJobs != 0 {
		t.Errorf("books %+v, orchestrator %+v: want the same pool and one written-off ticket of 1000", g, ob)
	}
	if w.Handler().Stats().Served != 2 {
		t.Errorf("the worker ran %d jobs, want 2: the refused attempt must not run", w.Handler().Stats().Served)
	}
}

// A job that sends no tickets (the pool covers it) is in the gateway's
// books only once it has ended, in one step that opens its hold, charges
// and closes it, with the same entries as a hold opened before the job:
// while it runs, the orchestrator holds it open and the books have no
// hold for it, and afterwards both sides agree.
func TestBooksTicketlessJobBookedAtItsEnd(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Sleep, "sleep", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, nil)
	// A long timeout pays for 20 s of compute; 1 s is charged.
	mustOK(t, submit(t, gw, jobSpec{capability: "sleep", body: sleepBody(0), timeout: 20}))
	before := agree(t, gw, o, "sleep")
	ctx := context.Background()
	done := make(chan jobResult, 1)
	go func() { done <- submit(t, gw, jobSpec{capability: "sleep", body: sleepBody(1500 * time.Millisecond)}) }()
	var id string
	testnet.Eventually(t, "the orchestrator to hold the second job", func() bool {
		jobs, err := o.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, Sender: gw.Address(), State: ledger.StateOpen})
		if err != nil || len(jobs) != 1 {
			return false
		}
		id = jobs[0].Ref.Name
		return true
	})
	if g := books(t, gw.Ledger, o.Address.Hex(), "sleep"); g.openJobs != 0 {
		t.Errorf("the gateway's books hold %d jobs open while a ticketless job runs", g.openJobs)
	}
	if _, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: o.Address.Hex(), JobID: id}.Ref(), 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("the running ticketless job is in the books (%v)", err)
	}
	mustOK(t, <-done)
	after := agree(t, gw, o, "sleep")
	if after.credited != before.credited || after.charged != before.charged+2000 {
		t.Errorf("the ticketless job paid or was charged otherwise: before %+v, after %+v", before, after)
	}
	st, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: o.Address.Hex(), JobID: id}.Ref(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range st.Entries {
		kinds = append(kinds, string(e.Kind)+" "+e.Amount.String())
	}
	if got := strings.Join(kinds, ", "); st.Account.State != ledger.StateClosed || got != "reserve 5000, charge 2000, release 3000" {
		t.Errorf("the ticketless job's hold: %s, entries %s", st.Account.State, got)
	}
}
