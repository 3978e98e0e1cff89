package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"

	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

// An orchestrator whose tickets are worth ten jobs (EV 10,000 wei, a job
// charged 1000): one ticket funds several jobs. The gateway pays only
// what a job's hold is missing (5000 wei, the 5 s minimum), in whole
// tickets, so after a payment the credit it keeps ahead in its pool there
// is below one hold plus one ticket; the jobs after it run on that credit
// with no ticket at all. After every job both sides' books agree.
func TestOneTicketFundsSeveralJobs(t *testing.T) {
	const ev, charge, hold = 10_000, 1000, 5000
	o := startOrch(t, func(c *orchestrator.NodeConfig) { c.TicketEV = big.NewInt(ev) })
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	gw := startGateway(t, keyA, []string{o.URL}, nil)

	var pool, tickets int64 // the model
	for i := 1; i <= 20; i++ {
		r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
		mustOK(t, r)
		if pool < hold {
			n := (hold - pool + ev - 1) / ev
			pool, tickets = pool+n*ev, tickets+n
		}
		pool -= charge
		s := agree(t, gw, o, "reverse")
		if s.pool != pool || s.credited != tickets*ev || s.charged != int64(i)*charge {
			t.Fatalf("after job %d: %+v, want pool %d, %d tickets", i, s, pool, tickets)
		}
		if s.pool >= hold+ev {
			t.Errorf("after job %d: %d wei ahead, bound %d", i, s.pool, hold+ev)
		}
	}
	// Tickets at jobs 1, 7 and 17; with tickets of one job's worth it
	// would have been 5 + 19.
	if tickets != 3 {
		t.Errorf("%d tickets for 20 jobs", tickets)
	}
}

// Concurrent jobs that each find the pool short each pay a ticket, so the
// credit ahead grows with the jobs in flight, but stays within the bound
// docs/gateway.md gives: what the open jobs' holds need plus one ticket
// each; and the tickets sent are the charges plus at most that.
func TestCreditAheadBoundConcurrent(t *testing.T) {
	const ev, charge, hold, clients, each = 10_000, 1000, 5000, 6, 5
	o := startOrch(t, func(c *orchestrator.NodeConfig) { c.TicketEV = big.NewInt(ev) })
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 2*clients)
	gw := startGateway(t, keyA, []string{o.URL}, nil)

	b, _ := json.Marshal(map[string]any{"capability": "reverse", "request": "{}", "parameters": "{}", "timeout_seconds": 5})
	hdr := base64.StdEncoding.EncodeToString(b)
	errs := make(chan string, clients*each)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				req, _ := http.NewRequest(http.MethodPost, gw.URL+"/process/request/", strings.NewReader("abc"))
				req.Header.Set(wire.HeaderJobRequest, hdr)
				req.Header.Set("Content-Type", "text/plain")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(body) != "cba" {
					errs <- resp.Status + ": " + string(body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	idle(t, gw)
	s := agree(t, gw, o, "reverse")
	if s.charged != clients*each*charge || s.pool != s.credited-s.charged {
		t.Fatalf("books %+v", s)
	}
	if bound := int64(clients * (hold + ev)); s.pool > bound {
		t.Errorf("%d wei ahead, bound %d", s.pool, bound)
	}
	if s.credited%ev != 0 || s.credited/ev >= clients*each {
		t.Errorf("%d wei credited: not whole tickets, or not fewer tickets than jobs", s.credited)
	}
}
