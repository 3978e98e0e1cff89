package e2e

// One test per question of go-livepeer draft PR #3914 ("byoc: per-job
// balance keying — design discussion"): the five reasons the capability key
// may have been chosen on purpose, the four deferred items, and the PR's
// motive. docs/pr-3914.md gives the question, byoc's answer and what each
// test measured. Every test runs real byoc orchestrator, gateway and worker
// servers on loopback (in-process, and as processes where a crash is the
// point), with a price above 0 and real signed tickets, and ends with both
// ledgers verified.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/sqlstore"
	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

// Prices of the suite: 1000 wei per second, tickets of EV 1000 wei, and a
// 5 s admission minimum (so a job's hold must cover 5000 wei).
const (
	price      = 1000
	minCompute = 5 * time.Second
)

// stack is an orchestrator, a worker and a gateway paying as KeyA.
type stack struct {
	t      *testing.T
	orch   *orchestrator.Node
	worker *worker.Server
	gw     *gateway.Node
	sender string // the gateway's address: its account at the orchestrator
}

func newStack(t *testing.T, tweak func(*orchestrator.NodeConfig)) *stack {
	t.Helper()
	s := &stack{t: t}
	s.orch = testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Orchestrator.MinCompute = minCompute
		c.Orchestrator.MaxOpenJobsPerSender = 256
		if tweak != nil {
			tweak(c)
		}
	})
	s.worker = startWorker(t)
	for _, c := range []string{worker.Reverse, worker.Sleep, worker.SSE} {
		testnet.Register(t, s.orch.URL, s.worker, c, c, price, 256)
	}
	s.gw = s.startGateway(t.TempDir())
	s.sender = s.gw.Address()
	t.Cleanup(func() { s.verify() })
	return s
}

func (s *stack) startGateway(dir string) *gateway.Node {
	s.t.Helper()
	signer, err := ethsig.KeySignerFromHex(testnet.KeyA)
	if err != nil {
		s.t.Fatal(err)
	}
	gw, err := gateway.StartNode(context.Background(), gateway.NodeConfig{
		Listen: "127.0.0.1:0", DataDir: dir, SweepInterval: 50 * time.Millisecond,
		Discovery: gateway.DiscoveryConfig{Static: []string{s.orch.URL}},
		Gateway:   gateway.Config{Signer: signer, MinCompute: minCompute, HoldTTLMargin: time.Second},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { gw.Close() })
	return gw
}

// submit sends a job to the gateway as a client does: an unsigned Livepeer
// header; id may be "" (the gateway then makes one up).
func (s *stack) submit(capability, id, body string, timeout int) testnet.JobResult {
	return submitTo(s.t, s.gw.URL, capability, id, body, timeout)
}

func submitTo(t *testing.T, gwURL, capability, id, body string, timeout int) testnet.JobResult {
	return submitWith(t, gwURL, capability, id, body, timeout, nil)
}

// submitWith is submitTo with extra request headers.
func submitWith(t *testing.T, gwURL, capability, id, body string, timeout int, extra http.Header) testnet.JobResult {
	hdr, _ := json.Marshal(wire.JobRequest{ID: id, Request: "{}", Parameters: "{}", Capability: capability, TimeoutSeconds: timeout})
	req, _ := http.NewRequest(http.MethodPost, gwURL+"/process/request/", strings.NewReader(body))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range extra {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return testnet.JobResult{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return testnet.JobResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Err: err}
}

// settle waits until the gateway has posted its books and the
// orchestrator has closed every hold.
func (s *stack) settle() {
	s.t.Helper()
	if err := s.gw.WaitIdle(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	testnet.Eventually(s.t, "every hold to close", func() bool { return s.openJobs() == 0 })
}

func (s *stack) openJobs() int {
	as, err := s.orch.Ledger.List(context.Background(), ledger.AccountFilter{Kind: ledger.KindJob, State: ledger.StateOpen})
	if err != nil {
		s.t.Fatal(err)
	}
	return len(as)
}

func (s *stack) pool(capability string) int64 {
	return testnet.Balance(s.t, s.orch, testnet.Pool(s.sender, capability))
}

func (s *stack) statement(id string) ledger.Statement {
	return testnet.Statement(s.t, s.orch, s.sender, id)
}

// verify checks both ledgers (after a sweep) and that the gateway's books
// hold what the orchestrator holds for it.
func (s *stack) verify() {
	s.t.Helper()
	testnet.Verify(s.t, s.orch)
	ctx := context.Background()
	if _, err := s.gw.Ledger.ExpireJobs(ctx); err != nil {
		s.t.Fatal(err)
	}
	r, err := ledger.Verify(ctx, s.gw.Store, ledger.VerifyOptions{Now: s.gw.Ledger.Now()})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, p := range r.Problems {
		s.t.Errorf("gateway ledger invariant violated: %s", p)
	}
}

// booksAgree checks that the gateway's credit at the orchestrator, per
// capability, is what the orchestrator's pool holds.
func (s *stack) booksAgree() {
	s.t.Helper()
	pools, err := s.gw.Pools(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	for _, p := range pools {
		if got := s.pool(p.Capability); testnet.Amount(p.Balance) != got {
			s.t.Errorf("%s: gateway books %s, orchestrator %d", p.Capability, p.Balance, got)
		}
	}
}

// 1. PM session alignment: one ticket session funds several jobs; which
// account a ticket credits is decided by the request it arrives with; no
// ticket credits twice; winning tickets are queued whatever they credited.
func TestPR3914_1_PMSessionAlignment(t *testing.T) {
	s := newStack(t, func(c *orchestrator.NodeConfig) { c.MaxFaceValue = big.NewInt(2 * testnet.TestEV.Int64()) }) // tickets win half the time
	// Through the gateway: one payment, with the first job, funds three.
	for i, id := range []string{"first", "second", "third"} {
		timeout := 10 // the later jobs need 10 s of credit: the pool has it
		if i == 0 {
			timeout = 20
		}
		r := s.submit(worker.Reverse, id, `{"text":"abc"}`, timeout)
		if r.Status != http.StatusOK {
			t.Fatalf("job %d: %d %s", i, r.Status, r.Body)
		}
		s.settle()
	}
	first, second, third := s.statement("first"), s.statement("second"), s.statement("third")
	if testnet.Amount(first.Credited) != 20000 || !second.Credited.IsZero() || !third.Credited.IsZero() ||
		testnet.Amount(second.Drawn) == 0 || testnet.Amount(third.Drawn) == 0 {
		t.Errorf("credited %s / %s / %s, drawn %s / %s", first.Credited, second.Credited, third.Credited, second.Drawn, third.Drawn)
	}

	// One session's tickets, split over two requests by a gateway: each
	// batch credits the job it came with; a batch sent again credits nothing.
	c := testnet.NewClient(t, s.orch.URL, testnet.KeyB)
	tok := c.Token(worker.Reverse, "")
	payA, keysA := c.PayTickets(tok, 8)
	payB, keysB := c.PayTickets(tok, 8) // same session: nonces 9..16
	for _, j := range []struct{ id, pay string }{{"a", payA}, {"b", payB}} {
		if r := c.Job(testnet.JobSpec{Capability: worker.Reverse, ID: j.id, Body: "x", Payment: j.pay}); r.Status != http.StatusOK {
			t.Fatalf("job %s: %d %s", j.id, r.Status, r.Body)
		}
	}
	if r := c.Job(testnet.JobSpec{Capability: worker.Reverse, ID: "again", Body: "x", Payment: payA}); r.Status != http.StatusBadRequest {
		t.Errorf("a batch sent twice: %d %s", r.Status, r.Body)
	}
	a, b := testnet.Statement(t, s.orch, c.Addr(), "a"), testnet.Statement(t, s.orch, c.Addr(), "b")
	if testnet.Amount(a.Credited) != 8000 || testnet.Amount(b.Credited) != 8000 {
		t.Errorf("job a credited %s, job b %s; want 8000 each", a.Credited, b.Credited)
	}
	entriesOf := func(st ledger.Statement) map[string]bool {
		m := map[string]bool{}
		for _, e := range st.Entries {
			m[e.Key] = e.Kind == ledger.EntryCredit
		}
		return m
	}
	ea, eb := entriesOf(a), entriesOf(b)
	for _, k := range keysA {
		if !ea[k] || eb[k] {
			t.Errorf("ticket %s of batch A not credited to job a alone", k)
		}
	}
	for _, k := range keysB {
		if !eb[k] {
			t.Errorf("ticket %s of batch B not credited to job b", k)
		}
	}
	ws, err := s.orch.Ledger.Winners(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[string]int{}
	for _, w := range ws {
		accounts[w.Account.Name]++
	}
	if accounts["a"] == 0 || accounts["b"] == 0 || accounts["first"] == 0 {
		t.Errorf("winners queued by account: %v; want some for first, a and b", accounts)
	}
	t.Logf("one payment funded 3 jobs; batches of one session credited jobs a and b, 8 tickets each; %d winners queued: %v", len(ws), accounts)
}

// 2. Prepaid credit: a pool funded once pays for N later jobs, and each
// job's statement shows what it drew from the pool and what it gave back.
func TestPR3914_2_PrepaidCredit(t *testing.T) {
	s := newStack(t, nil)
	if r := s.submit(worker.Reverse, "fund", `{"text":"x"}`, 120); r.Status != http.StatusOK {
		t.Fatalf("funding job: %d %s", r.Status, r.Body)
	}
	s.settle()
	before := s.pool(worker.Reverse)
	const n = 10
	for i := range n {
		id := fmt.Sprint("prepaid-", i)
		if r := s.submit(worker.Reverse, id, `{"text":"x"}`, 10); r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", id, r.Status, r.Body)
		}
		s.settle()
		st := s.statement(id)
		if !st.Credited.IsZero() || testnet.Amount(st.Drawn) != 10000 || testnet.Amount(st.Charged) != 1000 || testnet.Amount(st.Released) != 9000 {
			t.Errorf("%s: credited %s drawn %s charged %s released %s", id, st.Credited, st.Drawn, st.Charged, st.Released)
		}
	}
	if after := s.pool(worker.Reverse); after != before-n*1000 {
		t.Errorf("pool %d → %d, want %d less", before, after, n*1000)
	}
	s.booksAgree()
	t.Logf("one payment of 120000 wei paid for %d later jobs: each drew 10000 from the pool and gave 9000 back", n)
}

// 3. First-token signal: a token without a job ID reports the pool; with
// Livepeer-Job-Id of an open job, that job's balance as well.
func TestPR3914_3_FirstTokenSignal(t *testing.T) {
	s := newStack(t, nil)
	s.submit(worker.Reverse, "fund", `{"text":"x"}`, 60)
	s.settle()
	pool := s.pool(worker.Reverse)
	c := testnet.NewClient(t, s.orch.URL, testnet.KeyA) // the gateway's own key: its tokens
	if tok := c.Token(worker.Sleep, ""); tok.Balance != 0 || tok.PoolBalance != "0" {
		t.Errorf("token for an unfunded capability: %+v", tok)
	}
	tok := c.Token(worker.Reverse, "")
	if tok.Balance != pool || tok.PoolBalance != fmt.Sprint(pool) || tok.JobBalance != "" {
		t.Errorf("first token: balance %d pool %q job %q; want the pool %d", tok.Balance, tok.PoolBalance, tok.JobBalance, pool)
	}
	done := make(chan testnet.JobResult)
	go func() { done <- s.submit(worker.Sleep, "running", testnet.SleepBody(time.Second), 20) }()
	testnet.Eventually(t, "the job's hold to open", func() bool { return c.Token(worker.Sleep, "running").JobBalance != "" })
	tok = c.Token(worker.Sleep, "running")
	if tok.JobBalance != "20000" || tok.Balance != 20000 || tok.PoolBalance != "0" {
		t.Errorf("token for the running job: balance %d job %q pool %q", tok.Balance, tok.JobBalance, tok.PoolBalance)
	}
	if r := <-done; r.Status != http.StatusOK {
		t.Fatalf("job: %d %s", r.Status, r.Body)
	}
	t.Logf("token without job ID: balance %d (the pool); with the running job's ID: job_balance 20000", pool)
}

// 4. Bounded state: after 1,000 completed jobs no job account is open and
// the balances are one pool; what grows per job is history (a closed
// account and its entries), which is kept for statements.
func TestPR3914_4_BoundedState(t *testing.T) {
	s := newStack(t, nil)
	const n, workers = 1000, 8
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= n; i = next.Add(1) {
				if r := s.submit(worker.Reverse, "", `{"text":"x"}`, 10); r.Status != http.StatusOK {
					t.Errorf("job %d: %d %s", i, r.Status, r.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.settle()
	ctx := context.Background()
	jobs, _ := s.orch.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob})
	pools, _ := s.orch.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool})
	withBalance := 0
	for _, a := range append(jobs, pools...) {
		if !a.Balance.IsZero() {
			withBalance++
		}
	}
	rep := testnet.Verify(t, s.orch)
	if len(jobs) != n || rep.OpenJobs != 0 || len(pools) != 1 || withBalance != 1 {
		t.Errorf("%d job accounts (%d open), %d pools, %d accounts holding money; want %d closed, 1 pool holding it all",
			len(jobs), rep.OpenJobs, len(pools), withBalance, n)
	}
	s.booksAgree()
	t.Logf("after %d jobs: open holds 0, accounts holding money 1 (the pool); history: %d closed job accounts, %d entries (%.1f per job)",
		n, len(jobs), rep.Entries, float64(rep.Entries)/n)
}

// 5. Residual carry-over: a gateway process killed with SIGKILL mid-job;
// the job's hold comes back into the pool (at the orchestrator at once, in
// the gateway's books after its TTL), and the sender's next job spends it.
func TestPR3914_5_ResidualCarryOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s := newStack(t, nil)
	gwDir, gwAddr := t.TempDir(), testnet.FreePort(t)
	args := []string{"gateway", "--orch-addr", s.orch.URL, "--data-dir", gwDir, "--listen", gwAddr, "--admin-listen", "",
		"--dev-key", testnet.KeyB, "--min-compute", minCompute.String(), "--hold-ttl-margin", "1s"}
	gw := testnet.StartProcess(t, "gateway serving", args...)
	gwURL := "http://" + gwAddr
	sender := addressOf(t, testnet.KeyB)
	go submitTo(t, gwURL, worker.Sleep, "cut-off", testnet.SleepBody(time.Minute), 3)
	testnet.Eventually(t, "the job's hold to open", func() bool {
		a, err := s.orch.Ledger.Account(context.Background(), ledger.JobKey{Sender: sender, JobID: "cut-off"}.Ref())
		return err == nil && a.State == ledger.StateOpen
	})
	gw.Kill9()
	killed := time.Now()
	testnet.Eventually(t, "the orchestrator to release the hold", func() bool {
		a, err := s.orch.Ledger.Account(context.Background(), ledger.JobKey{Sender: sender, JobID: "cut-off"}.Ref())
		return err == nil && a.State.IsFinal()
	})
	orchBack := time.Since(killed)
	st := testnet.Statement(t, s.orch, sender, "cut-off")
	pool := testnet.Balance(t, s.orch, testnet.Pool(sender, worker.Sleep))
	if pool != testnet.Amount(st.Released) || pool == 0 {
		t.Fatalf("pool %d after the cut-off job released %s", pool, st.Released)
	}

	// The restarted gateway finds the job's hold open in its books and
	// releases it after the TTL (3 s timeout + 1 s).
	testnet.StartProcess(t, "gateway serving", args...)
	testnet.Eventually(t, "the gateway's books to release the hold", func() bool {
		out, err := exec.Command(testnet.ByocBinary(t), "ledger", "jobs", "--data-dir", gwDir, "--json").Output()
		return err == nil && strings.TrimSpace(string(out)) == "[]" // no open jobs
	})
	booksBack := time.Since(killed)
	r := submitTo(t, gwURL, worker.Sleep, "next", testnet.SleepBody(0), 3)
	if r.Status != http.StatusOK {
		t.Fatalf("next job: %d %s", r.Status, r.Body)
	}
	testnet.Eventually(t, "the next job's hold to close", func() bool {
		a, err := s.orch.Ledger.Account(context.Background(), ledger.JobKey{Sender: sender, JobID: "next"}.Ref())
		return err == nil && a.State.IsFinal()
	})
	// The next job needs 5000 (5 s): it draws all 4000 carried over and
	// pays only the rest in tickets.
	next := testnet.Statement(t, s.orch, sender, "next")
	if next.Drawn.Cmp(st.Released) != 0 || testnet.Amount(next.Credited) != 5000-testnet.Amount(st.Released) {
		t.Errorf("next job: drew %s, paid %s; want it to spend the %s carried over and pay the rest", next.Drawn, next.Credited, st.Released)
	}
	t.Logf("gateway killed mid-job: the orchestrator released %s wei to the pool in %s; the gateway's books released their hold %s after the kill (its TTL); the next job drew the %s carried over and paid %s in tickets",
		st.Released, orchBack.Round(time.Millisecond), booksBack.Round(100*time.Millisecond), next.Drawn, next.Credited)
}

func addressOf(t *testing.T, key string) string {
	s, err := ethsig.KeySignerFromHex(key)
	if err != nil {
		t.Fatal(err)
	}
	return s.Address().Hex()
}

// 6. Per-job PM sessions: concurrent jobs of one sender get distinct ticket
// sessions; 100 concurrent paid jobs: no nonce collision, no rejected ticket.
// The jobs are held by their worker until all of them have begun, so they
// overlap whatever the machine's speed; they wait as long as the gateway
// allows for their tokens (not its 500 ms default), which a busy machine
// may need for 100 at once.
func TestPR3914_6_PerJobPMSessions(t *testing.T) {
	s := newStack(t, nil)
	const n = 100
	began := make(chan struct{}, n)
	all := make(chan struct{})
	held := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		began <- struct{}{}
		select {
		case <-all:
			io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(held.Close)
	testnet.Register(t, s.orch.URL, heldWorker(held.URL), "held", "held", price, 256)
	patient := http.Header{}
	patient.Set(wire.HeaderOrchSearchTimeout, gateway.MaxSearchTimeout.String())
	patient.Set(wire.HeaderOrchSearchRespTimeout, gateway.MaxSearchTimeout.String())
	go func() {
		for range n {
			<-began
		}
		close(all)
	}()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := submitWith(t, s.gw.URL, "held", fmt.Sprint("c", i), "{}", 60, patient); r.Status != http.StatusOK {
				failed.Add(1)
				t.Errorf("job %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	s.settle()
	var sessions, nonces, maxPerSession int
	db := s.orch.Store.(*sqlstore.Store).DB()
	if err := db.QueryRow(`SELECT count(*), COALESCE(sum(nonces), 0), COALESCE(max(nonces), 0) FROM ticket_sessions`).Scan(&sessions, &nonces, &maxPerSession); err != nil {
		t.Fatal(err)
	}
	metrics := scrape(t, s.orch.AdminURL+"/metrics")
	if rejected := grep(metrics, `tickets_total{result="rejected"}`); sessions != n || (rejected != "" && !strings.HasSuffix(rejected, " 0")) {
		t.Errorf("%d ticket sessions for %d jobs; rejected tickets: %q", sessions, n, rejected)
	}
	if credited := grep(metrics, `tickets_total{result="credited"}`); !strings.HasSuffix(credited, fmt.Sprint(" ", nonces)) {
		t.Errorf("credited tickets %q, nonces recorded %d", credited, nonces)
	}
	t.Logf("%d concurrent paid jobs: %d ticket sessions (one per job), %d nonces recorded (at most %d per session), 0 rejected", n, sessions, nonces, maxPerSession)
}

// heldWorker is a worker of the test's own at a URL, for testnet.Register.
type heldWorker string

func (u heldWorker) Capability(name string) wire.ExternalCapability {
	return wire.ExternalCapability{Name: name, URL: string(u), Capacity: 4, PriceScaling: 1, Currency: "wei"}
}

func scrape(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(text, pat string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, pat) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// 7. Backward compatibility: a request without a job ID is charged to its
// pool as a capability-keyed node would (through a hold of its own, closed
// back into the pool); the requests of a real go-livepeer gateway are
// accepted and answered in a shape it accepts.
func TestPR3914_7_BackwardCompatibility(t *testing.T) {
	s := newStack(t, nil)
	c := testnet.NewClient(t, s.orch.URL, testnet.KeyB)
	r := c.Job(testnet.JobSpec{Capability: worker.Reverse, Body: "abc", Payment: c.Pay(c.Token(worker.Reverse, ""), 6)})
	if r.Status != http.StatusOK || r.Header.Get(wire.HeaderBalance) != "5000" {
		t.Fatalf("legacy request: %d balance %q", r.Status, r.Header.Get(wire.HeaderBalance))
	}
	jobs, _ := s.orch.Ledger.List(context.Background(), ledger.AccountFilter{Kind: ledger.KindJob, Sender: c.Addr(), State: ledger.StateOpen})
	if len(jobs) != 0 || testnet.Balance(t, s.orch, testnet.Pool(c.Addr(), worker.Reverse)) != 5000 {
		t.Errorf("legacy request left %d holds open", len(jobs))
	}
	t.Run("go-livepeer offchain recording", testnet.ReplayOffchain)
	t.Run("go-livepeer paid recording", testnet.ReplayPaid)
}

// 8. Dust GC: closed and expired jobs leave no balance in job accounts.
func TestPR3914_8_DustGC(t *testing.T) {
	s := newStack(t, func(c *orchestrator.NodeConfig) { c.Orchestrator.HoldTTLMargin = 200 * time.Millisecond })
	s.submit(worker.Reverse, "done", `{"text":"x"}`, 10)                     // completed
	s.submit(worker.Sleep, "timed-out", testnet.SleepBody(5*time.Second), 1) // cut at its timeout
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		hdr, _ := json.Marshal(wire.JobRequest{ID: "abandoned", Request: "{}", Parameters: "{}", Capability: worker.Sleep, TimeoutSeconds: 10})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.gw.URL+"/process/request/", bytes.NewReader([]byte(testnet.SleepBody(time.Minute))))
		req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testnet.Eventually(t, "the abandoned job to start", func() bool { return s.worker.Handler().Stats().InFlight == 1 })
	cancel() // the client goes away
	// A hold whose request never reached the worker (a node dying between
	// opening a hold and forwarding the job): only its TTL ends it.
	orphan := ledger.JobKey{Sender: s.sender, JobID: "orphan"}
	if _, err := s.orch.Ledger.OpenJob(context.Background(), ledger.OpenJobRequest{Job: orphan, Capability: worker.Reverse,
		Reserve: ledger.Wei(5000), TTL: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	s.settle()
	jobs, _ := s.orch.Ledger.List(context.Background(), ledger.AccountFilter{Kind: ledger.KindJob})
	states := map[ledger.State]int{}
	for _, a := range jobs {
		states[a.State]++
		if !a.Balance.IsZero() {
			t.Errorf("%s (%s) holds %s", a.Ref, a.State, a.Balance)
		}
	}
	if states[ledger.StateClosed] != 3 || states[ledger.StateExpired] != 1 {
		t.Errorf("job states %v; want 3 closed, 1 expired", states)
	}
	t.Logf("job accounts after completed, timed-out, abandoned and orphaned jobs: %v, all at balance 0", states)
}

// 9. Isolation and admission: a job that runs dry is stopped alone; 100
// jobs admitted at once against a pool that covers 10 never overdraw it.
func TestPR3914_9_IsolationAndAdmission(t *testing.T) {
	s := newStack(t, func(c *orchestrator.NodeConfig) { c.Orchestrator.MinCompute = 2 * time.Second })
	// Our gateway pays for a job's whole timeout, so it never runs a job
	// dry; the test pays like a stingy gateway: three seconds for a stream
	// that wants ten, next to a job of the same sender.
	c := testnet.NewClient(t, s.orch.URL, testnet.KeyB)
	other := make(chan testnet.JobResult)
	go func() {
		other <- c.Job(testnet.JobSpec{Capability: worker.Sleep, ID: "other", Body: testnet.SleepBody(3500 * time.Millisecond), Payment: c.Pay(c.Token(worker.Sleep, ""), 6)})
	}()
	testnet.Eventually(t, "the other job to start", func() bool { return s.worker.Handler().Stats().InFlight == 1 })
	r := c.Job(testnet.JobSpec{Capability: worker.SSE, ID: "dry", Body: `{"events":100,"interval_ms":100}`, Payment: c.Pay(c.Token(worker.SSE, ""), 3)})
	if !strings.Contains(r.Body, "event: insufficient balance") {
		t.Fatalf("the stream did not run dry: %d %s", r.Status, r.Body)
	}
	if o := <-other; o.Status != http.StatusOK {
		t.Errorf("the other job: %d %s", o.Status, o.Body)
	}
	dry := testnet.Statement(t, s.orch, c.Addr(), "dry")

	// Fund a pool with exactly 10 minimums, then open 100 jobs at once.
	const covered, n = 10, 100
	funder := testnet.NewClient(t, s.orch.URL, testnet.KeyA)
	fund := funder.Job(testnet.JobSpec{Capability: worker.Sleep, Body: testnet.SleepBody(0), Payment: funder.Pay(funder.Token(worker.Sleep, ""), covered*2+1)})
	if fund.Status != http.StatusOK || testnet.Balance(t, s.orch, testnet.Pool(funder.Addr(), worker.Sleep)) != covered*2000 {
		t.Fatalf("funding: %d %s", fund.Status, fund.Body)
	}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := funder.Job(testnet.JobSpec{Capability: worker.Sleep, ID: fmt.Sprint("rush-", i), Timeout: 2, Body: testnet.SleepBody(1500 * time.Millisecond)})
			switch r.Status {
			case http.StatusOK:
				admitted.Add(1)
			case http.StatusPaymentRequired:
				refused.Add(1)
			default:
				t.Errorf("rush %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	after := testnet.Balance(t, s.orch, testnet.Pool(funder.Addr(), worker.Sleep))
	if admitted.Load() != covered || refused.Load() != n-covered || after != covered*2000-admitted.Load()*2000 {
		t.Errorf("admitted %d, refused %d, pool after %d", admitted.Load(), refused.Load(), after)
	}
	t.Logf("a stream paid for 3 s was stopped after charging %s (its hold), the sender's other job finished; of %d jobs opened at once against a pool covering %d, %d were admitted, the pool went from %d to %d, never below 0",
		dry.Charged, n, covered, admitted.Load(), covered*2000, after)
}

// startWorker starts the sample worker itself: these tests run every role.
func startWorker(t *testing.T) *worker.Server {
	t.Helper()
	w, err := worker.Start("", worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}
