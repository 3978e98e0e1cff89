// Package demo runs the whole byoc system in one process on loopback — an
// orchestrator with an embedded ledger, the sample worker, a gateway with
// its own books — registers priced capabilities, sends jobs through the
// gateway with real PM tickets, and prints, per job, what was paid,
// reserved, charged and released, and the pool before and after, each
// with where it comes from (all in gwei); then two streams of one sender,
// one of which runs dry and is stopped alone. It ends by checking every
// ledger invariant on both sides. `byoc demo` runs it; RunSigner (`byoc demo
// --signer`) runs two customers through a remote signer instead.
package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"byoc/gateway"
	"byoc/internal/nodefiles"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

// Options configure a demo run.
type Options struct {
	// DataDir keeps the nodes' data (orchestrator/, gateway/); "" uses a
	// temporary directory removed at the end.
	DataDir string
	// KeepRunning leaves the servers up after the jobs, until ctx ends, and
	// prints their addresses and curl examples.
	KeepRunning bool
	// Out receives the report; Log the nodes' logs (default: discarded).
	Out io.Writer
	Log io.Writer
	// Logger, if set, gets the nodes' logs instead of Log.
	Logger *slog.Logger
	// Command is how the reader runs byoc, for the follow-up commands it
	// prints ("byoc", "./byoc", "go run ./cmd/byoc"); default "byoc".
	Command string
	// Chain runs the orchestrator on a local chain (chain.go): tickets
	// carry its rounds, the gateway is a funded sender, and the winning
	// tickets are redeemed on its TicketBroker.
	Chain bool
}

// Prices of the demo: 0.2 gwei per second of compute, holds of at least
// a minute of it, tickets of 8 gwei expected value that win one time in
// four (face value 32 gwei).
var (
	pricePerSecond = int64(200_000_000)
	ticketEV       = big.NewInt(8_000_000_000)
	maxFaceValue   = big.NewInt(32_000_000_000)
)

// minCompute is the compute a job's hold must cover (both sides agree on
// it); jobTimeout the jobs' timeout_seconds.
const (
	minCompute = 60 * time.Second
	jobTimeout = 30
)

const secret = "demo-secret"

// Result is what a run measured, for tests.
type Result struct {
	Jobs     []JobReport
	Streams  []StreamReport
	Verified bool
	// Winners are the orchestrator's winning tickets at the end, all
	// redeemed or dead (Options.Chain only).
	Winners []ledger.Winner
}

// JobReport is one job as both ledgers saw it.
type JobReport struct {
	Name, ID, Capability string
	Status               int
	Paid, Reserved       ledger.Amount // credited from tickets, drawn from the pool
	Charged, Released    ledger.Amount
	PoolBefore, PoolAft  ledger.Amount
	Tickets              int           // the tickets that paid Paid
	Hold                 ledger.Amount // what the hold had to cover: max(timeout, minimum compute) × price
	Output               string
	Events               []string // an SSE job's events, as they arrived
}

// Run runs the demo.
func Run(ctx context.Context, opts Options) (*Result, error) {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(logw, nil))
	}
	dir := opts.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "byoc-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	fmt.Fprintf(out, "byoc demo — data in %s\n\n", dir)

	ocfg := orchestrator.NodeConfig{
		Listen: "https://127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: filepath.Join(dir, "orchestrator"),
		TicketEV: ticketEV, MaxFaceValue: maxFaceValue, SweepInterval: time.Second,
		Orchestrator: orchestrator.Config{Secret: secret, Logger: logger, MinCompute: minCompute},
	}
	gcfg := gateway.Config{Logger: logger, MinCompute: minCompute}
	var lc *localChain
	if opts.Chain {
		var err error
		if lc, ocfg.Chain, err = startChain(ctx, dir, out); err != nil {
			return nil, err
		}
		defer lc.close()
		// A face value one wei above the EV: a ticket loses once in 10^16.
		ocfg.TicketEV, ocfg.MaxFaceValue = chainTicketEV, new(big.Int).Add(chainTicketEV, big.NewInt(1))
		gcfg.MaxTicketEV, gcfg.MaxTotalEV = new(big.Int).Mul(chainTicketEV, big.NewInt(2)), new(big.Int).Mul(chainTicketEV, big.NewInt(8))
	}
	orch, err := orchestrator.StartNode(ctx, ocfg)
	if err != nil {
		return nil, err // "orchestrator: …"
	}
	defer orch.Close()
	wk, err := worker.Start("", worker.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	defer wk.Close()
	for _, name := range []string{worker.Reverse, worker.SSE, worker.Sleep} {
		c := wk.Capability(name)
		c.PricePerUnit, c.PriceScaling, c.Currency, c.Capacity = pricePerSecond, 1, "wei", 8
		if err := worker.Register(ctx, orch.URL, secret, c, worker.InsecureSkipVerify()); err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
	}
	key, err := nodefiles.Key(filepath.Join(dir, "gateway"))
	if err != nil {
		return nil, fmt.Errorf("gateway key: %w", err)
	}
	gcfg.Signer = key
	gw, err := gateway.StartNode(ctx, gateway.NodeConfig{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"),
		Discovery: gateway.DiscoveryConfig{Static: []string{orch.URL}}, SweepInterval: time.Second,
		Gateway: gcfg,
	})
	if err != nil {
		return nil, err // "gateway: …"
	}
	defer gw.Close()
	sender := gw.Address()
	price := ledger.Wei(pricePerSecond)
	fmt.Fprintf(out, "orchestrator %s  (recipient %s)\nworker       %s  (reverse, sse, sleep at %s gwei/s)\ngateway      %s  (pays as %s)\n\n",
		orch.URL, orch.Address.Hex(), wk.URL(), gwei(price), gw.URL, sender)
	fmt.Fprintf(out, "Amounts are in gwei (1 gwei = 10^9 wei), exact. A ticket is worth its expected value, %s gwei:\n"+
		"its face value %s gwei × its win probability 1/%s. A job's hold must cover max(timeout, minimum compute)\n"+
		"= max(%d s, %d s) × %s gwei/s = %s gwei before the job starts; compute is billed per started second.\n\n",
		gwei(ledger.AmountFromBig(ticketEV)), gwei(ledger.AmountFromBig(maxFaceValue)), new(big.Int).Quo(maxFaceValue, ticketEV),
		jobTimeout, int(minCompute.Seconds()), gwei(price), gwei(holdFor(jobTimeout)))

	d := &run{ctx: ctx, orch: orch, gw: gw, sender: sender, out: out}
	res := &Result{}
	add := func(r JobReport, err error) error {
		if err != nil {
			return err
		}
		res.Jobs = append(res.Jobs, r)
		d.print(r)
		return nil
	}
	fmt.Fprintln(out, "1. A job pays for itself: its tickets open its own hold; what it does not use goes to the pool.")
	if err := add(d.job("reverse, first job", "demo-reverse-1", worker.Reverse, `{"text":"Hello, byoc!"}`, jobTimeout)); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "\n2. The next job runs on that prepaid credit: it draws its hold from the pool and pays no tickets.")
	if err := add(d.job("reverse, prepaid", "demo-reverse-2", worker.Reverse, `{"text":"prepaid credit"}`, jobTimeout)); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "\n3. Two concurrent jobs of one sender have separate holds, drawn from one pool.")
	pairBefore, err := orch.Ledger.Balance(ctx, ledger.PoolKey{Sender: sender, Capability: worker.Sleep}.Ref())
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	pair := make([]JobReport, 2)
	errs := make([]error, 2)
	for i, spec := range []struct{ id, body string }{{"demo-sleep-a", `{"duration_ms":1200}`}, {"demo-sleep-b", `{"duration_ms":300}`}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pair[i], errs[i] = d.job("sleep, concurrent", spec.id, worker.Sleep, spec.body, jobTimeout)
		}()
	}
	wg.Wait()
	for i := range pair {
		if err := add(pair[i], errs[i]); err != nil {
			return nil, err
		}
	}
	d.explainPair(pairBefore, pair[0], pair[1])
	fmt.Fprintln(out, "\n4. A server-sent-events job is relayed as it streams and charged while it runs; its events as they arrive:")
	if err := add(d.job("sse", "demo-sse", worker.SSE, `{"text":"streamed by the sample worker","events":5,"interval_ms":200}`, jobTimeout)); err != nil {
		return nil, err
	}

	fmt.Fprintln(out, "\n5. Two streams of one sender, each on its own hold: the one that runs dry is stopped alone.")
	if res.Streams, err = d.streams(ctx, dir, logger, wk); err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}

	fmt.Fprintln(out, "\nBooks")
	if err := d.books(res.Jobs); err != nil {
		return nil, err
	}
	if lc != nil {
		if res.Winners, err = d.redeemed(lc); err != nil {
			return nil, err
		}
	}
	ok, err := d.verify()
	if err != nil {
		return nil, err
	}
	res.Verified = ok
	if !ok {
		return res, errors.New("a ledger invariant does not hold")
	}
	if opts.KeepRunning {
		cmd := opts.Command
		if cmd == "" {
			cmd = "byoc"
		}
		fmt.Fprintf(out, "\nThe servers keep running until Ctrl-C. Open the consoles (live pools, holds, jobs, winners):\n\n")
		fmt.Fprintf(out, "  orchestrator  %s/console/#token=%s\n", orch.AdminURL, orch.AdminToken)
		fmt.Fprintf(out, "  gateway       %s/console/   (no admin token: loopback only)\n", gw.AdminURL)
		fmt.Fprintf(out, "\nor try, in another terminal:\n\n")
		h := base64.StdEncoding.EncodeToString([]byte(`{"request":"{}","parameters":"{}","capability":"reverse","timeout_seconds":30}`))
		fmt.Fprintf(out, "  curl -s -H 'Livepeer: %s' -H 'Content-Type: application/json' \\\n    -d '{\"text\":\"hi\"}' %s/process/request/\n", h, gw.URL)
		fmt.Fprintf(out, "  curl -s %s/metrics | grep byoc_     # gateway metrics (orchestrator: %s/metrics)\n", gw.AdminURL, orch.AdminURL)
		fmt.Fprintf(out, "  curl -s -H 'Authorization: Bearer %s' %s/admin/pools\n", orch.AdminToken, orch.AdminURL)
		fmt.Fprintf(out, "  %s ledger pools --unit gwei --data-dir %s     # works while the demo runs\n", cmd, filepath.Join(dir, "orchestrator"))
		<-ctx.Done()
	} else {
		fmt.Fprintf(out, "\nRun with --keep-running to leave the servers up and look at both ledgers in their web consoles.\n")
	}
	return res, nil
}

// holdFor is what a job's hold must cover: max(timeout, minimum compute)
// of compute at the demo's price, by the ledger's rounding rule.
func holdFor(timeoutSeconds int) ledger.Amount {
	d := max(time.Duration(timeoutSeconds)*time.Second, minCompute)
	a, err := ledger.CostOf(new(big.Rat).SetInt64(pricePerSecond), ledger.UnitsFor(d, time.Second))
	if err != nil {
		panic(err) // constant inputs
	}
	return a
}

type run struct {
	ctx    context.Context
	orch   *orchestrator.Node
	gw     *gateway.Node
	sender string
	out    io.Writer
	mu     sync.Mutex
}

// job sends one job through the gateway and reads its statement from the
// orchestrator's ledger. An SSE job's events are printed as they arrive.
func (d *run) job(name, id, capability, body string, timeout int) (JobReport, error) {
	r := JobReport{Name: name, ID: id, Capability: capability, Hold: holdFor(timeout)}
	pool := ledger.PoolKey{Sender: d.sender, Capability: capability}.Ref()
	var err error
	if r.PoolBefore, err = d.orch.Ledger.Balance(d.ctx, pool); err != nil {
		return r, err
	}
	hdr, _ := json.Marshal(wire.JobRequest{ID: id, Request: "{}", Parameters: "{}", Capability: capability, TimeoutSeconds: timeout})
	req, _ := http.NewRequestWithContext(d.ctx, http.MethodPost, d.gw.URL+"/process/request/", bytes.NewReader([]byte(body)))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("job %s: %w", id, err)
	}
	var b []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") && resp.StatusCode == http.StatusOK {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); line != "" {
				r.Events = append(r.Events, line)
				d.mu.Lock()
				note := ""
				if strings.Contains(line, `"balance"`) {
					note = "   ← the orchestrator's balance event: the sender's credit there, in wei"
				}
				fmt.Fprintf(d.out, "   %6d ms  %s%s\n", time.Since(start).Milliseconds(), line, note)
				d.mu.Unlock()
			}
		}
		b = []byte(strings.Join(r.Events, "\n\n"))
	} else {
		b, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	r.Status, r.Output = resp.StatusCode, strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("job %s: %d %s", id, resp.StatusCode, r.Output)
	}
	// The gateway posts its books, and the orchestrator closes the hold,
	// right after answering; wait for both.
	if err := d.gw.WaitIdle(d.ctx); err != nil {
		return r, err
	}
	key := ledger.JobKey{Sender: d.sender, JobID: id}
	deadline := time.Now().Add(5 * time.Second)
	var st ledger.Statement
	for {
		st, err = d.orch.Ledger.Statement(d.ctx, key.Ref(), 0)
		if err == nil && st.Account.State.IsFinal() {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("job %s: its hold did not close: %v", id, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Paid, r.Reserved, r.Charged, r.Released = st.Credited, st.Drawn, st.Charged, st.Released
	for _, e := range st.Entries {
		if e.Kind == ledger.EntryCredit {
			r.Tickets++ // one credit per winning or losing ticket: its expected value
		}
	}
	r.PoolAft, err = d.orch.Ledger.Balance(d.ctx, pool)
	return r, err
}

func (d *run) print(r JobReport) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := r.Output
	if len(r.Events) > 0 {
		out = fmt.Sprintf("%d events (above)", len(r.Events))
	}
	if len(out) > 120 {
		out = out[:117] + "..."
	}
	fmt.Fprintf(d.out, "   job %-15s %-8s → %d %s\n", r.ID, r.Capability, r.Status, out)
	tw := tabwriter.NewWriter(d.out, 0, 4, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tpaid (tickets)\treserved from pool\tcharged\treleased to pool\tpool before\tpool after\t\n")
	fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\t%s\t (gwei)\n", gwei(r.Paid), gwei(r.Reserved), gwei(r.Charged), gwei(r.Released), gwei(r.PoolBefore), gwei(r.PoolAft))
	tw.Flush()
	ev := ledger.AmountFromBig(ticketEV)
	switch {
	case r.Tickets > 0 && r.Reserved.IsZero():
		fmt.Fprintf(d.out, "   paid      %d tickets × %s gwei expected value = %s gwei, straight into the job's hold: the pool could not cover the %s gwei hold\n",
			r.Tickets, gwei(ev), gwei(r.Paid), gwei(r.Hold))
	case r.Tickets > 0:
		fmt.Fprintf(d.out, "   paid      %d tickets × %s gwei = %s gwei, and reserved %s gwei from the pool: together the %s gwei hold\n",
			r.Tickets, gwei(ev), gwei(r.Paid), gwei(r.Reserved), gwei(r.Hold))
	default:
		fmt.Fprintf(d.out, "   reserved  the %s gwei hold, max(%d s, %d s) × %s gwei/s, drawn from the pool's prepaid credit: no tickets\n",
			gwei(r.Reserved), jobTimeout, int(minCompute.Seconds()), gwei(ledger.Wei(pricePerSecond)))
	}
	fmt.Fprintf(d.out, "   charged   %s s × %s gwei/s = %s gwei: the seconds the job ran, rounded up, at least one\n",
		seconds(r.Charged), gwei(ledger.Wei(pricePerSecond)), gwei(r.Charged))
	fmt.Fprintf(d.out, "   released  %s + %s − %s = %s gwei: what the hold did not use goes back to the pool\n",
		gwei(r.Paid), gwei(r.Reserved), gwei(r.Charged), gwei(r.Released))
}

// seconds is how many seconds of compute a charge paid for at the demo's
// price (a whole number: compute is billed per started second).
func seconds(charged ledger.Amount) string {
	return new(big.Rat).SetFrac(charged.Big(), big.NewInt(pricePerSecond)).RatString()
}

// explainPair says why the concurrent jobs' "pool after" includes the
// other job's release.
func (d *run) explainPair(before ledger.Amount, a, b JobReport) {
	both := before.Sub(a.Reserved).Sub(b.Reserved).Add(a.Released).Add(b.Released)
	if a.PoolAft.Cmp(both) != 0 || b.PoolAft.Cmp(both) != 0 {
		fmt.Fprintf(d.out, "   The two jobs share one pool, so each one's \"pool after\" includes what the other had drawn or released by then.\n")
		return
	}
	fmt.Fprintf(d.out, "   Both share one pool, and each one's \"pool after\" was read once both had ended (the gateway settles its\n"+
		"   books first), so each includes the other's release as well as its own:\n"+
		"   %s = %s before − %s − %s drawn by the two holds + %s + %s released by the two.\n",
		gwei(both), gwei(before), gwei(a.Reserved), gwei(b.Reserved), gwei(a.Released), gwei(b.Released))
}

// gwei prints wei as gwei with up to 9 decimals: exact.
func gwei(a ledger.Amount) string {
	r := new(big.Rat).SetFrac(a.Big(), big.NewInt(1_000_000_000))
	return strings.TrimRight(strings.TrimRight(r.FloatString(9), "0"), ".")
}

func (d *run) books(jobs []JobReport) error {
	pools, err := d.orch.Ledger.List(d.ctx, ledger.AccountFilter{Kind: ledger.KindPool})
	if err != nil {
		return err
	}
	for _, p := range pools {
		fmt.Fprintf(d.out, "   orchestrator: pool of %s for %-8s %s gwei\n", short(p.Ref.Sender), p.Ref.Name, gwei(p.Balance))
	}
	gp, err := d.gw.Pools(d.ctx)
	if err != nil {
		return err
	}
	for _, p := range gp {
		fmt.Fprintf(d.out, "   gateway:      credit at %s for %-8s %s gwei\n", short(p.Orchestrator), p.Capability, gwei(p.Balance))
	}
	ws, err := d.orch.Ledger.Winners(d.ctx, ledger.WinnerQueued, 0)
	if err != nil {
		return err
	}
	face := ledger.Amount{}
	for _, w := range ws {
		face = face.Add(w.FaceValue)
	}
	tickets := 0
	for _, j := range jobs {
		tickets += j.Tickets
	}
	fmt.Fprintf(d.out, "   tickets: %d paid, each credited at its expected value; %d won (each wins with probability 1/%s),\n"+
		"   face value %s gwei in all. Winners are queued, not redeemed: with no chain configured (offchain) nothing\n"+
		"   cashes them, so they only record what the orchestrator could claim on chain.\n",
		tickets, len(ws), new(big.Int).Quo(maxFaceValue, ticketEV), gwei(face))
	return nil
}

func short(addr string) string {
	if len(addr) > 10 {
		return addr[:6] + "…" + addr[len(addr)-4:]
	}
	return addr
}

func (d *run) verify() (bool, error) {
	ok := true
	for _, side := range []struct {
		name  string
		l     *ledger.Ledger
		store ledger.Store
	}{{"orchestrator", d.orch.Ledger, d.orch.Store}, {"gateway", d.gw.Ledger, d.gw.Store}} {
		rep, err := ledger.Verify(d.ctx, side.store, ledger.VerifyOptions{Now: side.l.Now(), StaleAfter: time.Minute})
		if err != nil {
			return false, err
		}
		verdict := "all invariants hold"
		if !rep.OK() {
			ok, verdict = false, fmt.Sprintf("VIOLATED: %s", strings.Join(rep.Problems, "; "))
		}
		fmt.Fprintf(d.out, "\nledger verify (%s): %d accounts, %d entries; credited %s = pools %s + open jobs %s + charged %s gwei: %s\n",
			side.name, rep.Accounts, rep.Entries, gwei(rep.Credited), gwei(rep.PoolTotal), gwei(rep.OpenJobHeld), gwei(rep.Charged), verdict)
	}
	return ok, nil
}
