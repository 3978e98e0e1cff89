package gateway_test

import (
	"strings"
	"testing"

	"byoc/gateway"
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
