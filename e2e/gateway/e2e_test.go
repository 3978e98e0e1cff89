package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"byoc/gateway"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

// Paid jobs through the gateway: the first pays for the hold's minimum,
// the next run on the credit it left; after every job both sides' books
// agree exactly.
func TestPaidJobsBooksAgree(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, nil)

	r := submit(t, gw, jobSpec{capability: "reverse", body: `{"text":"hello"}`})
	mustOK(t, r)
	if !strings.Contains(r.body, `"reversed":"olleh"`) {
		t.Fatalf("body %q", r.body)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want the worker's application/json", got)
	}
	if r.header.Get(wire.HeaderOrchestratorURL) != o.URL || r.header.Get(gateway.HeaderJobIDResponse) == "" {
		t.Errorf("headers %v", r.header)
	}
	// 5 tickets of 1000 wei for a 5 s hold; 1 s charged; 4000 left.
	if r.header.Get(wire.HeaderBalance) != "4000" || r.header.Get(wire.HeaderJobCharged) != "1000" {
		t.Errorf("Livepeer-Balance %q, Livepeer-Job-Charged %q", r.header.Get(wire.HeaderBalance), r.header.Get(wire.HeaderJobCharged))
	}
	s := agree(t, gw, o, "reverse")
	if s.pool != 4000 || s.credited != 5000 || s.charged != 1000 || s.openJobs != 0 {
		t.Errorf("after job 1: %+v", s)
	}
	for i := 2; i <= 4; i++ {
		r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
		mustOK(t, r)
		if r.body != "cba" {
			t.Fatalf("job %d: %q", i, r.body)
		}
		s := agree(t, gw, o, "reverse")
		// Each job tops the 4000 left up to 5000 with one ticket and is
		// charged 1000.
		if s.pool != 4000 || s.credited != int64(5000+1000*(i-1)) || s.charged != int64(1000*i) {
			t.Errorf("after job %d: %+v", i, s)
		}
	}
}

// An orchestrator whose worker is gone answers 5xx before any output: the
// gateway tries the next one, with a new attempt ID, and the failed
// attempt costs nothing but stays in the books as what it was: a paid,
// uncharged hold released to that orchestrator's pool.
func TestFailingWorkerSkipped(t *testing.T) {
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	wa, wb := startWorker(t), startWorker(t)
	register(t, a.URL, wa, worker.Reverse, "reverse", 900, 4) // cheaper: tried first
	register(t, b.URL, wb, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{a.URL, b.URL}, nil)
	wa.Crash()

	r := submit(t, gw, jobSpec{capability: "reverse", id: "job-x", body: "abc"})
	mustOK(t, r)
	if r.body != "cba" || r.header.Get(wire.HeaderOrchestratorURL) != b.URL {
		t.Fatalf("served by %s: %q", r.header.Get(wire.HeaderOrchestratorURL), r.body)
	}
	if r.header.Get(gateway.HeaderJobIDResponse) != "job-x" {
		t.Errorf("job id %q", r.header.Get(gateway.HeaderJobIDResponse))
	}
	// At a: the attempt "job-x" paid 5 tickets (4500 wei at 900 wei/s),
	// was not charged (the worker was never reached) and went to the pool.
	sa := statement(t, a, gw.Address(), "job-x")
	if sa.Account.State != ledger.StateClosed || amount(t, sa.Credited) != 5000 || !sa.Charged.IsZero() {
		t.Errorf("attempt at a: state %s credited %s charged %s", sa.Account.State, sa.Credited, sa.Charged)
	}
	// At b: the retry ran as "job-x~2".
	sb := statement(t, b, gw.Address(), "job-x~2")
	if sb.Account.State != ledger.StateClosed || amount(t, sb.Charged) != 1000 {
		t.Errorf("retry at b: state %s charged %s", sb.Account.State, sb.Charged)
	}
	if s := agree(t, gw, a, "reverse"); s.pool != 5000 || s.charged != 0 {
		t.Errorf("a: %+v", s)
	}
	if s := agree(t, gw, b, "reverse"); s.pool != 4000 || s.charged != 1000 {
		t.Errorf("b: %+v", s)
	}

	// a removed the capability: the next job goes to b without a try at a.
	r = submit(t, gw, jobSpec{capability: "reverse", body: "xy"})
	mustOK(t, r)
	if r.header.Get(wire.HeaderOrchestratorURL) != b.URL {
		t.Errorf("second job served by %s", r.header.Get(wire.HeaderOrchestratorURL))
	}
	agree(t, gw, a, "reverse")
	agree(t, gw, b, "reverse")
}

// A closed orchestrator is skipped; when every orchestrator fails the
// client gets a 502/503 that lists each one and why — never an empty 200.
func TestClosedOrchestratorSkipped(t *testing.T) {
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	w := startWorker(t)
	register(t, a.URL, w, worker.Reverse, "reverse", 900, 4)
	register(t, b.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{a.URL, b.URL}, nil)
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: "abc"})) // at a, the cheaper
	agree(t, gw, a, "reverse")
	closeOrch(t, a, gw)

	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	mustOK(t, r)
	if r.header.Get(wire.HeaderOrchestratorURL) != b.URL {
		t.Fatalf("served by %s", r.header.Get(wire.HeaderOrchestratorURL))
	}
	agree(t, gw, b, "reverse")

	// b's token is reused: the job itself finds b gone. a's refusal is
	// remembered as long as a token would be.
	closeOrch(t, b, gw)
	r = submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	if r.status != http.StatusBadGateway {
		t.Fatalf("all closed: %d %q", r.status, r.body)
	}
	for _, want := range []string{a.URL + ": token: transport error", b.URL + ": job: transport error"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("error body lacks %q:\n%s", want, r.body)
		}
	}
	// The failed job dropped b's token: the next job asks both again.
	r = submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("all closed, asked again: %d %q", r.status, r.body)
	}
	for _, want := range []string{"no usable token from the 2 orchestrators asked", a.URL + ": token: transport error", b.URL + ": token: transport error"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("error body lacks %q:\n%s", want, r.body)
		}
	}
}

// A job that reached an orchestrator and failed there with a 5xx is
// retried; when the last one fails too, the client gets 502 with the list.
func TestAllOrchestratorsFail(t *testing.T) {
	a := startOrch(t, nil)
	w := startWorker(t)
	register(t, a.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{a.URL}, nil)
	w.Crash()
	r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, a.URL+": job: 502 orchestrator failed: job not able to be processed") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	agree(t, gw, a, "reverse")
}

// A worker's own error answer is the job's answer: relayed, not retried.
func TestWorkerErrorRelayed(t *testing.T) {
	a := startOrch(t, nil)
	b := startOrch(t, nil)
	w := startWorker(t)
	register(t, a.URL, w, worker.Fail, "fail", 900, 4)
	register(t, b.URL, w, worker.Fail, "fail", 1000, 4)
	gw := startGateway(t, keyA, []string{a.URL, b.URL}, nil)
	for _, status := range []int{404, 503} {
		r := submit(t, gw, jobSpec{capability: "fail", body: fmt.Sprintf(`{"status":%d,"message":"nope"}`, status)})
		if r.status != status || !strings.Contains(r.body, "nope") || r.header.Get(wire.HeaderOrchestratorURL) != a.URL {
			t.Errorf("worker %d: got %d from %s: %q", status, r.status, r.header.Get(wire.HeaderOrchestratorURL), r.body)
		}
	}
	if got := w.Handler().Stats().Served; got != 2 {
		t.Errorf("the worker ran %d jobs, want 2 (no retries)", got)
	}
	if s := agree(t, gw, a, "fail"); s.charged != 1800 {
		t.Errorf("a: %+v (worker errors are charged)", s)
	}
	agree(t, gw, b, "fail")
}

// The gateway binds each signed request to its job (wire.Bind, D8): an
// orchestrator that accepts only bound requests runs its jobs, retries
// included (each attempt is bound to its own ID).
func TestBoundRequests(t *testing.T) {
	a := startOrch(t, func(c *orchestrator.NodeConfig) { c.Orchestrator.RequireBoundJobs = true })
	b := startOrch(t, func(c *orchestrator.NodeConfig) { c.Orchestrator.RequireBoundJobs = true })
	wa, wb := startWorker(t), startWorker(t)
	register(t, a.URL, wa, worker.Reverse, "reverse", 900, 4)
	register(t, b.URL, wb, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{a.URL, b.URL}, nil)
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: "abc"}))
	wa.Crash()
	r := submit(t, gw, jobSpec{capability: "reverse", id: "bound", body: "abc"})
	mustOK(t, r)
	if r.header.Get(wire.HeaderOrchestratorURL) != b.URL {
		t.Fatalf("retry ran at %s", r.header.Get(wire.HeaderOrchestratorURL))
	}
	statement(t, b, gw.Address(), "bound~2")
	agree(t, gw, a, "reverse")
	agree(t, gw, b, "reverse")
}
