package orchestrator_test

import (
	"byoc/internal/testnet"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"byoc/internal/workerstub"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/wire"
)

// onBothStores runs test on an orchestrator with an embedded ledger and on
// one with a PostgreSQL ledger (skipped without BYOC_POSTGRES_DSN).
func onBothStores(t *testing.T, tweak func(*orchestrator.NodeConfig), test func(t *testing.T, n *orchestrator.Node)) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var dsn string
			if store == "postgres" {
				dsn = ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
			}
			test(t, testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
				c.LedgerDSN = dsn
				if tweak != nil {
					tweak(c)
				}
			}))
		})
	}
}

// gateWorker is a worker whose jobs wait until the test lets them go.
type gateWorker struct {
	srv     *httptest.Server
	entered chan struct{} // one send per job that reached the worker
	release chan struct{} // closed to let them answer
}

func startGateWorker(t *testing.T) *gateWorker {
	g := &gateWorker{entered: make(chan struct{}, 64), release: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.entered <- struct{}{}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("done"))
	}))
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
		g.srv.Close()
	})
	return g
}

func registerURL(t *testing.T, n *orchestrator.Node, name, url string, price int64, capacity int) {
	t.Helper()
	c := wire.ExternalCapability{Name: name, URL: url, Capacity: capacity, PricePerUnit: price, PriceScaling: 1, Currency: "wei"}
	if err := workerstub.Register(context.Background(), n.URL, testnet.Secret, c); err != nil {
		t.Fatal(err)
	}
}

// Legacy requests (no job ID) are held like jobs with one: N of them at
// once against a pool that covers k holds admit exactly k, and the pool
// never goes below zero. The worker holds every admitted job until each
// request is either in the worker or answered, so they all overlap.
func TestConcurrentLegacyRequestsHeld(t *testing.T) {
	const k, N = 2, 16
	// 1000 wei per second, a 1 s minimum and a 6 s timeout: each hold
	// reserves 6000 wei and a job that answers at once is charged 1000, so
	// N such jobs would cost more than the pool holds.
	onBothStores(t, func(c *orchestrator.NodeConfig) { c.Orchestrator.MinCompute = time.Second }, func(t *testing.T, n *orchestrator.Node) {
		g := startGateWorker(t)
		registerURL(t, n, "gate", g.srv.URL, 1000, N)
		c := testnet.NewClient(t, n.URL, testnet.KeyA)
		pool := testnet.Pool(c.Addr(), "gate")
		if _, err := n.Ledger.Credit(context.Background(), pool, ledger.Wei(k*6000), "fund"); err != nil {
			t.Fatal(err)
		}
		results := make(chan testnet.JobResult, N)
		var wg sync.WaitGroup
		for range N {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- c.Job(testnet.JobSpec{Capability: "gate", Body: "x", Timeout: 6})
			}()
		}
		// Every request is either in the worker or answered: then the
		// admitted ones may finish.
		var answered []testnet.JobResult
		for inWorker := 0; inWorker+len(answered) < N; {
			select {
			case <-g.entered:
				inWorker++
			case r := <-results:
				answered = append(answered, r)
			}
		}
		if bal := testnet.Balance(t, n, pool); bal < 0 {
			t.Errorf("pool %d while the jobs run", bal)
		}
		close(g.release)
		wg.Wait()
		close(results)
		for r := range results {
			answered = append(answered, r)
		}
		admitted, refused := 0, 0
		for _, r := range answered {
			switch r.Status {
			case http.StatusOK:
				admitted++
			case http.StatusPaymentRequired:
				refused++
			default:
				t.Errorf("legacy request: %d %q %v", r.Status, r.Body, r.Err)
			}
		}
		bal := testnet.Balance(t, n, pool)
		t.Logf("%d legacy requests against a pool covering %d: %d admitted, %d refused, pool %d", N, k, admitted, refused, bal)
		if admitted != k || refused != N-k || bal < 0 {
			t.Errorf("admitted %d, refused %d, pool %d; want %d admitted, %d refused, pool ≥ 0", admitted, refused, bal, k, N-k)
		}
		testnet.Verify(t, n)
	})
}

// A legacy request is held like a job: its payment goes into its own hold
// (an internal job ID a client cannot send), Livepeer-Balance and the
// token report the pool, and the hold is closed back into it. Refused, its
// payment stays the sender's, in the pool.
func TestLegacyRequestHold(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	r := c.Job(testnet.JobSpec{Capability: "reverse", Body: "abc", Payment: c.Pay(c.Token("reverse", ""), 6)})
	if r.Status != http.StatusOK || r.Body != "cba" || r.Header.Get(wire.HeaderBalance) != "5000" ||
		r.Header.Get(wire.HeaderPaymentCredited) != "6000" || r.Header.Get(wire.HeaderJobCharged) != "1000" {
		t.Fatalf("legacy job: %d %q headers %v", r.Status, r.Body, r.Header)
	}
	if tok := c.Token("reverse", ""); tok.Balance != 5000 || tok.PoolBalance != "5000" {
		t.Errorf("token after the legacy job: balance %d pool %s", tok.Balance, tok.PoolBalance)
	}
	jobs, _ := n.Ledger.List(context.Background(), ledger.AccountFilter{Kind: ledger.KindJob})
	if len(jobs) != 1 || !strings.HasPrefix(jobs[0].Ref.Name, orchestrator.LegacyJobPrefix) || jobs[0].State != ledger.StateClosed {
		t.Fatalf("the legacy request's hold: %+v", jobs)
	}
	s := testnet.Statement(t, n, c.Addr(), jobs[0].Ref.Name)
	if testnet.Amount(s.Credited) != 6000 || testnet.Amount(s.Charged) != 1000 || testnet.Amount(s.Drawn) != 0 || testnet.Amount(s.Released) != 5000 {
		t.Errorf("legacy hold statement: credited %s charged %s drawn %s released %s", s.Credited, s.Charged, s.Drawn, s.Released)
	}
	// A client may not name a job in that namespace.
	r = c.Job(testnet.JobSpec{Capability: "reverse", ID: orchestrator.LegacyJobPrefix + "x", Body: "abc"})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "Invalid job id") {
		t.Errorf("a client job ID in the internal namespace: %d %s", r.Status, r.Body)
	}
	// Refused with a payment: the payment stays the sender's, in its pool.
	b := testnet.NewClient(t, n.URL, testnet.KeyB)
	r = b.Job(testnet.JobSpec{Capability: "reverse", Body: "abc", Payment: b.Pay(b.Token("reverse", ""), 2)})
	if r.Status != http.StatusPaymentRequired || r.Header.Get(wire.HeaderPaymentCredited) != "2000" {
		t.Fatalf("underpaid legacy job: %d %s (credited %q)", r.Status, r.Body, r.Header.Get(wire.HeaderPaymentCredited))
	}
	if got := testnet.Balance(t, n, testnet.Pool(b.Addr(), "reverse")); got != 2000 {
		t.Errorf("pool after the refused legacy job = %d, want the 2000 paid", got)
	}
	testnet.Verify(t, n)
}

// rowCounts counts the rows of every ledger table.
func rowCounts(t *testing.T, n *orchestrator.Node) map[string]int {
	t.Helper()
	db := n.Store.(interface{ DB() *sql.DB }).DB()
	counts := map[string]int{}
	for _, table := range []string{"accounts", "entries", "ticket_sessions", "ticket_nonces", "winners"} {
		var c int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&c); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		counts[table] = c
	}
	return counts
}

func freshKey(t *testing.T) string {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return "0x" + hex.EncodeToString(crypto.FromECDSA(k))
}

// forgeAll breaks the signature of every ticket of a payment.
func forgeAll(t *testing.T, header string) string {
	p, err := wire.DecodePaymentHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Clone()
	for _, tk := range q.TicketSenderParams {
		tk.Sig[3] ^= 0x10
	}
	return wire.EncodePaymentHeader(q)
}

// A flood of refused requests that move no money — from fresh, unfunded
// keys, with and without job IDs, with no payment or only forged tickets,
// and replays of a spent payment — leaves the ledger's tables as they were.
func TestRefusedFloodWritesNothing(t *testing.T) {
	const flood = 500
	onBothStores(t, nil, func(t *testing.T, n *orchestrator.Node) {
		w := testnet.StartWorker(t)
		testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
		// A sender with a spent payment, short of the minimum.
		spender := testnet.NewClient(t, n.URL, testnet.KeyA)
		spent := spender.Pay(spender.Token("reverse", ""), 3)
		if r := spender.Job(testnet.JobSpec{Capability: "reverse", ID: "underpaid", Body: "x", Payment: spent}); r.Status != http.StatusPaymentRequired {
			t.Fatalf("setup: %d %s", r.Status, r.Body)
		}
		before := rowCounts(t, n)
		statuses := map[string]int{}
		for i := range flood {
			var r testnet.JobResult
			kind := []string{"bound", "unbound", "legacy", "forged tickets", "legacy forged tickets", "replayed payment", "legacy replayed payment"}[i%7]
			c := testnet.NewClient(t, n.URL, freshKey(t))
			spec := testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("j", i), Body: "x"}
			switch kind {
			case "unbound":
				spec.Unbound = true
			case "legacy":
				spec.ID = ""
			case "forged tickets":
				spec.Payment = forgeAll(t, c.Pay(c.Token("reverse", ""), 2))
			case "legacy forged tickets":
				spec.ID, spec.Payment = "", forgeAll(t, c.Pay(c.Token("reverse", ""), 2))
			case "replayed payment":
				c = spender
				spec.Payment = spent
			case "legacy replayed payment":
				c, spec.ID, spec.Payment = spender, "", spent
			}
			r = c.Job(spec)
			if r.Status != http.StatusPaymentRequired && r.Status != http.StatusBadRequest {
				t.Fatalf("%s: %d %s", kind, r.Status, r.Body)
			}
			statuses[fmt.Sprint(kind, " ", r.Status)]++
		}
		after := rowCounts(t, n)
		t.Logf("%d refused requests %v: rows %v -> %v", flood, statuses, before, after)
		for table, c := range before {
			if after[table] != c {
				t.Errorf("%s: %d rows before the flood, %d after", table, c, after[table])
			}
		}
		// A refused job ID that moved no money was never used: it may be
		// tried again once the sender can pay.
		c := testnet.NewClient(t, n.URL, testnet.KeyB)
		if r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "retry", Body: "x"}); r.Status != http.StatusPaymentRequired {
			t.Fatalf("unfunded job: %d %s", r.Status, r.Body)
		}
		if r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "retry", Body: "abc", Payment: c.Pay(c.Token("reverse", ""), 6)}); r.Status != http.StatusOK || r.Body != "cba" {
			t.Fatalf("the refused job ID again, paid: %d %s", r.Status, r.Body)
		}
		testnet.Verify(t, n)
	})
}
