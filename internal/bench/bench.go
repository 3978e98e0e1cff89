// Package bench measures what the BYOC stack adds to a job: it runs
// an orchestrator, a trivial worker and a gateway in one process on
// loopback, both ledgers on disk (the gateway's books with a weaker sync,
// docs/gateway.md), drives N concurrent clients straight at
// the worker, at the orchestrator and through the gateway, each for a free
// and a paid capability, and reports per phase the throughput, latency
// percentiles and the process's CPU time per job, the ratios between the
// phases of the same run, and the books of both sides (which must agree)
// at the end. `byoc bench` runs it.
package bench

import (
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
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/internal/cpu"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/wire"
	"byoc/worker"
)

// Config is what to measure. Zero values take the defaults.
type Config struct {
	// Concurrency is the number of clients sending jobs back to back (16).
	Concurrency int
	// Duration is how long each phase measures (5 s), after Warmup (1 s).
	Duration, Warmup time.Duration
	// PriceWei is the capability's price in wei per second (1000).
	PriceWei int64
	// Free runs only the free phases (a capability with price 0: no
	// tickets, no ledger writes — what the protocol's hops and signatures
	// cost on their own); by default both the free and the paid ones run.
	Free bool
	// TicketEV is a ticket's expected value in wei, the orchestrator's
	// choice (default 10 × PriceWei: a ticket pays ten seconds, about ten
	// jobs of the echo worker; real orchestrators' tickets are worth far
	// more than a job — go-livepeer's default EV is 8e9 wei). PriceWei
	// makes every job pay a ticket.
	TicketEV int64
	// BodyBytes is the size of each job's body (64).
	BodyBytes int
	// TimeoutSeconds is each job's timeout_seconds (10).
	TimeoutSeconds int
	// DataDir holds both ledgers (default: a temporary directory, removed).
	DataDir string
	// PlainHTTP serves the orchestrator over http:// instead of TLS.
	PlainHTTP bool
	// CPUProfile, if set, is written for the paid stack phase (the free
	// one with Free), its samples labelled node=orchestrator|gateway|
	// worker|client.
	CPUProfile string
	// MemProfile, if set, is written with the allocations of the same
	// phase: the allocs profile at its end, and at its start to
	// MemProfile+".base" (go tool pprof -base).
	MemProfile string
	// Logger gets the nodes' logs (default: warnings and errors to stderr).
	Logger *slog.Logger
}

// Phase is one measured run.
type Phase struct {
	Name          string  `json:"name"`
	Jobs          int     `json:"jobs"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	Seconds       float64 `json:"seconds"`
	JobsPerSecond float64 `json:"jobs_per_second"`
	// The latencies are p50_seconds … mean_seconds in JSON (MarshalJSON).
	P50  time.Duration `json:"-"`
	P90  time.Duration `json:"-"`
	P99  time.Duration `json:"-"`
	Mean time.Duration `json:"-"`
	// CPU is the whole process's CPU time (user + system, getrusage)
	// while the phase was measured: every node's, the clients' and the
	// ledgers' work, whatever else the machine runs. cpu_seconds and
	// cpu_us_per_job in JSON.
	CPU time.Duration `json:"-"`
}

// CPUPerJob is the process's CPU time per successful job of the phase.
func (p Phase) CPUPerJob() time.Duration {
	if p.Jobs == 0 {
		return 0
	}
	return p.CPU / time.Duration(p.Jobs)
}

// MarshalJSON writes the latencies as seconds, not Go's nanoseconds.
func (p Phase) MarshalJSON() ([]byte, error) {
	type phase Phase // without this method
	return json.Marshal(struct {
		phase
		P50  float64 `json:"p50_seconds"`
		P90  float64 `json:"p90_seconds"`
		P99  float64 `json:"p99_seconds"`
		Mean float64 `json:"mean_seconds"`
		CPU  float64 `json:"cpu_seconds"`
		PerJ float64 `json:"cpu_us_per_job"`
	}{phase(p), p.P50.Seconds(), p.P90.Seconds(), p.P99.Seconds(), p.Mean.Seconds(), p.CPU.Seconds(), float64(p.CPUPerJob().Nanoseconds()) / 1e3})
}

// Report is the outcome of Run.
type Report struct {
	Config Config `json:"-"`
	// Direct calls the worker; Orchestrator pays and calls the orchestrator
	// straight (tickets from a reused token, signed job: what a gateway
	// sends, without books or a client hop); Stack goes client → gateway →
	// orchestrator → worker. The Free phases do the same for a free
	// capability (the orchestrator's: the client's unsigned request). A
	// phase that did not run has no name and no jobs (paid ones with
	// Config.Free).
	Direct           Phase  `json:"direct"`
	OrchestratorFree Phase  `json:"orchestrator_free"`
	StackFree        Phase  `json:"stack_free"`
	Orchestrator     Phase  `json:"orchestrator"`
	Stack            Phase  `json:"stack"`
	Ratios           Ratios `json:"ratios"`
	Tickets          int64  `json:"tickets"`
	PaidWei          string `json:"paid_wei"`
	ChargedWei       string `json:"charged_wei"`
	BooksAgree       bool   `json:"books_agree"`
	BooksDetail      string `json:"books_detail,omitempty"`

	Problems []string `json:"problems"` // [] when none
}

// Ratios compares the phases of one run (0 where a phase did not run).
type Ratios struct {
	// PaidOverFree is the paid stack's jobs/s over the free stack's.
	PaidOverFree float64 `json:"paid_over_free"`
	// StackOverDirect and FreeStackOverDirect: the stacks' jobs/s over
	// direct's; OrchestratorFreeOverDirect: the free orchestrator phase's.
	StackOverDirect            float64 `json:"stack_over_direct"`
	FreeStackOverDirect        float64 `json:"free_stack_over_direct"`
	OrchestratorFreeOverDirect float64 `json:"orchestrator_free_over_direct"`
	// CPUPaidOverFree is a paid stack job's CPU over a free one's.
	CPUPaidOverFree float64 `json:"cpu_paid_over_free"`
	// PaymentAddedP50 is the paid stack's p50 minus the free stack's:
	// what paying adds to a job's latency. StackAddedP50: the paid
	// stack's p50 minus direct's (the free stack's with Free). Seconds in
	// JSON.
	PaymentAddedP50 time.Duration `json:"-"`
	StackAddedP50   time.Duration `json:"-"`
}

// MarshalJSON writes the latencies as seconds.
func (r Ratios) MarshalJSON() ([]byte, error) {
	type ratios Ratios
	return json.Marshal(struct {
		ratios
		PaymentAddedP50 float64 `json:"payment_added_p50_seconds"`
		StackAddedP50   float64 `json:"stack_added_p50_seconds"`
	}{ratios(r), r.PaymentAddedP50.Seconds(), r.StackAddedP50.Seconds()})
}

// ratios computes the report's Ratios from its phases.
func (r Report) ratios() Ratios {
	div := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return a / b
	}
	x := Ratios{
		PaidOverFree:               div(r.Stack.JobsPerSecond, r.StackFree.JobsPerSecond),
		StackOverDirect:            div(r.Stack.JobsPerSecond, r.Direct.JobsPerSecond),
		FreeStackOverDirect:        div(r.StackFree.JobsPerSecond, r.Direct.JobsPerSecond),
		OrchestratorFreeOverDirect: div(r.OrchestratorFree.JobsPerSecond, r.Direct.JobsPerSecond),
		CPUPaidOverFree:            div(float64(r.Stack.CPUPerJob()), float64(r.StackFree.CPUPerJob())),
	}
	if r.Stack.Jobs > 0 && r.StackFree.Jobs > 0 {
		x.PaymentAddedP50 = r.Stack.P50 - r.StackFree.P50
	}
	switch {
	case r.Stack.Jobs > 0 && r.Direct.Jobs > 0:
		x.StackAddedP50 = r.Stack.P50 - r.Direct.P50
	case r.StackFree.Jobs > 0 && r.Direct.Jobs > 0:
		x.StackAddedP50 = r.StackFree.P50 - r.Direct.P50
	}
	return x
}

// ThroughputRatio is the stack's jobs/s over direct's: the paid stack's,
// or the free one's when only free phases ran.
func (r Report) ThroughputRatio() float64 {
	if r.Stack.Jobs == 0 {
		return r.ratios().FreeStackOverDirect
	}
	return r.ratios().StackOverDirect
}

// Run sets up the stack, measures both phases and checks the books.
func Run(ctx context.Context, cfg Config) (rep Report, err error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	} else if cfg.Warmup == 0 {
		cfg.Warmup = time.Second
	}
	if cfg.PriceWei <= 0 {
		cfg.PriceWei = 1000
	}
	if cfg.TicketEV <= 0 {
		cfg.TicketEV = 10 * cfg.PriceWei
	}
	if cfg.BodyBytes <= 0 {
		cfg.BodyBytes = 64
	}
	if cfg.TimeoutSeconds <= 0 {
		cfg.TimeoutSeconds = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rep.Config = cfg
	rep.Problems = []string{}
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "byoc-bench-"); err != nil {
			return rep, err
		}
		defer os.RemoveAll(dir)
	}

	// Goroutines inherit profiler labels from the goroutine that starts
	// them, so each node's servers and committers are labelled in a CPU
	// profile (pprof -tagfocus node=gateway).
	labelled := func(node string, f func()) {
		pprof.Do(ctx, pprof.Labels("node", node), func(context.Context) { f() })
	}
	var w *worker.Server
	labelled("worker", func() { w, err = worker.Start("127.0.0.1:0", worker.Config{}) })
	if err != nil {
		return rep, err
	}
	defer w.Close()
	listen := "https://127.0.0.1:0"
	if cfg.PlainHTTP {
		listen = "http://127.0.0.1:0"
	}
	capacity := min(2*cfg.Concurrency, wire.MaxCapabilityCapacity)
	var orch *orchestrator.Node
	labelled("orchestrator", func() {
		orch, err = orchestrator.StartNode(ctx, orchestrator.NodeConfig{
			Listen: listen, DataDir: filepath.Join(dir, "orchestrator"), TicketEV: big.NewInt(cfg.TicketEV),
			Orchestrator: orchestrator.Config{Secret: "bench", Logger: cfg.Logger, MaxOpenJobsPerSender: capacity},
		})
	})
	if err != nil {
		return rep, err
	}
	defer orch.Close()
	// The same echo worker twice: "echo" at the price, "echo-free" free.
	for name, price := range map[string]int64{paidCap: cfg.PriceWei, freeCap: 0} {
		c := w.Capability(worker.Echo)
		c.Name, c.PricePerUnit, c.PriceScaling, c.Currency, c.Capacity = name, price, 1, "wei", capacity
		if err := worker.Register(ctx, orch.URL, "bench", c, worker.InsecureSkipVerify()); err != nil {
			return rep, err
		}
	}
	key, err := crypto.GenerateKey()
	if err != nil {
		return rep, err
	}
	signer, err := ethsig.NewKeySigner(key)
	if err != nil {
		return rep, err
	}
	var gw *gateway.Node
	labelled("gateway", func() {
		gw, err = gateway.StartNode(ctx, gateway.NodeConfig{
			Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"),
			Discovery: gateway.DiscoveryConfig{Static: []string{orch.URL}},
			Gateway:   gateway.Config{Signer: signer, Logger: cfg.Logger},
		})
	})
	if err != nil {
		return rep, err
	}
	defer gw.Close()

	body := strings.Repeat("x", cfg.BodyBytes)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * cfg.Concurrency, MaxIdleConnsPerHost: 2 * cfg.Concurrency,
		IdleConnTimeout: time.Minute, DisableCompression: true}}
	direct := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.CapabilityURL(worker.Echo), strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		return do(client, req, len(body))
	}
	orchClient := gateway.NewOrchestratorClient(nil)
	// to sends the client's own unsigned request for capability to url:
	// the gateway's API, or the orchestrator's (free only).
	to := func(c *http.Client, url, capability string) func(context.Context) error {
		hdr := jobHeader(capability, cfg.TimeoutSeconds)
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/process/request/", strings.NewReader(body))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set(wire.HeaderJobRequest, hdr)
			return do(c, req, len(body))
		}
	}
	var orchPaid func(context.Context) error
	if !cfg.Free {
		// The orchestrator phase pays from another account, so the gateway's
		// books can be compared with the orchestrator's ledger for its own.
		key2, err := crypto.GenerateKey()
		if err != nil {
			return rep, err
		}
		signer2, err := ethsig.NewKeySigner(key2)
		if err != nil {
			return rep, err
		}
		op, err := newOrchPayer(ctx, orch.URL, signer2, cfg)
		if err != nil {
			return rep, fmt.Errorf("orchestrator phase: %w", err)
		}
		orchPaid = op.job
	}
	profiled := "stack"
	if cfg.Free {
		profiled = "stack-free"
	}
	for _, ph := range []struct {
		name string
		paid bool
		into *Phase
		fn   func(context.Context) error
	}{
		{"direct", false, &rep.Direct, direct},
		{"orch-free", false, &rep.OrchestratorFree, to(orchClient, orch.URL, freeCap)},
		{"stack-free", false, &rep.StackFree, to(client, gw.URL, freeCap)},
		{"orch", true, &rep.Orchestrator, orchPaid},
		{"stack", true, &rep.Stack, to(client, gw.URL, paidCap)},
	} {
		if ph.paid && cfg.Free {
			continue
		}
		var stop func()
		if ph.name == profiled && cfg.CPUProfile != "" {
			f, err := os.Create(cfg.CPUProfile)
			if err != nil {
				return rep, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return rep, err
			}
			stop = pprof.StopCPUProfile
		}
		if ph.name == profiled && cfg.MemProfile != "" {
			if err := writeAllocs(cfg.MemProfile + ".base"); err != nil {
				return rep, err
			}
			stopCPU := stop
			stop = func() {
				if stopCPU != nil {
					stopCPU()
				}
				if err := writeAllocs(cfg.MemProfile); err != nil {
					cfg.Logger.Warn("bench: memory profile", "err", err)
				}
			}
		}
		labelled("client", func() { *ph.into, err = measure(ctx, ph.name, cfg, ph.fn) })
		if stop != nil {
			stop()
		}
		if err != nil {
			return rep, err
		}
	}
	rep.Ratios = rep.ratios()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := gw.WaitIdle(wctx); err != nil {
		return rep, err
	}
	rep.checkBooks(ctx, gw, orch, signer)
	return rep, nil
}

// writeAllocs writes the allocs profile (allocations since the start) to
// path.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// The capabilities the bench registers: the same echo worker, paid and free.
const (
	paidCap = "echo"
	freeCap = "echo-free"
)

// orchPayer plays a gateway without books for the orchestrator phase: it
// reuses a token as the gateway does (for gateway.DefaultTokenReuse, within
// the sender's nonce budget), pays what the jobs will be charged (one
// second each: the worker answers in well under one) from that token's
// session — whole tickets when the jobs so far have used up what earlier
// tickets paid, so a ticket worth ten jobs goes with every tenth job, as
// the gateway's do — and signs each job with its own ID. The holds'
// minimum comes from credit prepaid once.
type orchPayer struct {
	url     string
	client  *http.Client
	signer  *ethsig.KeySigner
	sender  *pm.Sender
	senderH string
	timeout int
	body    string
	price   int64 // what a job is charged
	ev      int64 // what a ticket pays

	mu      sync.Mutex
	session pm.SessionID
	fetched time.Time // zero: no token yet
	nonces  int
	ahead   int64 // paid by tickets beyond the jobs' charges so far
}

func newOrchPayer(ctx context.Context, orchURL string, signer *ethsig.KeySigner, cfg Config) (*orchPayer, error) {
	js, err := wire.NewJobSender(signer)
	if err != nil {
		return nil, err
	}
	h, err := wire.EncodeJobSenderHeader(js)
	if err != nil {
		return nil, err
	}
	p := &orchPayer{url: orchURL, client: gateway.NewOrchestratorClient(nil), signer: signer,
		sender: pm.NewSender(pm.SenderConfig{Signer: signer}), senderH: h, timeout: cfg.TimeoutSeconds,
		body: strings.Repeat("x", cfg.BodyBytes), price: cfg.PriceWei, ev: cfg.TicketEV}
	// Prepay the holds of all concurrent jobs (60 s each, the orchestrator's
	// minimum) with 20% to spare, 400 tickets a payment.
	need := int64(cfg.Concurrency) * 60 * cfg.PriceWei * 6 / 5
	tickets := int((need + cfg.TicketEV - 1) / cfg.TicketEV)
	for tickets > 0 {
		n := min(tickets, 400)
		if err := p.send(ctx, n); err != nil {
			return nil, fmt.Errorf("prepaying: %w", err)
		}
		tickets -= n
	}
	return p, nil
}

func (p *orchPayer) job(ctx context.Context) error {
	p.mu.Lock()
	p.ahead -= p.price
	n := 0
	if p.ahead < 0 {
		n = int((-p.ahead + p.ev - 1) / p.ev)
		p.ahead += int64(n) * p.ev
	}
	p.mu.Unlock()
	return p.send(ctx, n)
}

func (p *orchPayer) send(ctx context.Context, tickets int) error {
	var payment string
	if tickets > 0 {
		sid, err := p.sessionFor(ctx, tickets)
		if err != nil {
			return err
		}
		batch, err := p.sender.CreateTicketBatch(sid, tickets)
		if err != nil {
			return err
		}
		payment = wire.EncodePaymentHeader(batch.Payment(pm.LayoutBYOC))
	}
	jr := &wire.JobRequest{ID: gateway.NewJobID(), Request: "{}", Parameters: "{}", Capability: paidCap, TimeoutSeconds: p.timeout}
	if err := wire.SignJobRequest(p.signer, jr); err != nil {
		return err
	}
	h, err := wire.EncodeJobRequestHeader(jr)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/process/request/", strings.NewReader(p.body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set(wire.HeaderJobRequest, h)
	if payment != "" {
		req.Header.Set(wire.PaymentHeader, payment)
	}
	return do(p.client, req, len(p.body))
}

// sessionFor returns the session to take n tickets from: the current
// token's while it may be reused, else a fresh token's. Sessions replaced
// are left to the sender (a few per run).
func (p *orchPayer) sessionFor(ctx context.Context, n int) (pm.SessionID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fetched.IsZero() && time.Since(p.fetched) < gateway.DefaultTokenReuse && p.nonces+n <= pm.DefaultRefreshThreshold {
		p.nonces += n
		return p.session, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/process/token", nil)
	req.Header.Set(wire.HeaderJobSender, p.senderH)
	req.Header.Set(wire.HeaderCapability, paidCap)
	resp, err := p.client.Do(req)
	if err != nil {
		return pm.SessionID{}, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return pm.SessionID{}, fmt.Errorf("token: %d %s %v", resp.StatusCode, b, err)
	}
	tok, err := wire.DecodeJobToken(b)
	if err != nil {
		return pm.SessionID{}, err
	}
	if p.session, err = p.sender.StartSession(tok.TicketParams, tok.Price); err != nil {
		return pm.SessionID{}, err
	}
	p.fetched, p.nonces = time.Now(), n
	return p.session, nil
}

func jobHeader(capability string, timeout int) string {
	b, _ := json.Marshal(map[string]any{"capability": capability, "request": "{}", "parameters": "{}", "timeout_seconds": timeout})
	return base64.StdEncoding.EncodeToString(b)
}

func do(c *http.Client, req *http.Request, want int) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || int(n) != want {
		return fmt.Errorf("status %d, %d bytes", resp.StatusCode, n)
	}
	return nil
}

// measure runs fn from cfg.Concurrency goroutines back to back for the
// warmup, then records every call that starts within cfg.Duration. A
// goroutine whose warmup calls outlasted the whole window (a slow first
// connection on a busy machine) makes one measured call after it, so every
// phase measures something; the phase's length is then the true one.
func measure(ctx context.Context, name string, cfg Config, fn func(context.Context) error) (Phase, error) {
	p := Phase{Name: name}
	warmEnd := time.Now().Add(cfg.Warmup)
	end := warmEnd.Add(cfg.Duration)
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	var lastEnd time.Time // of a measured call
	var extended atomic.Bool
	// The process's CPU time from the end of the warmup to the end of the
	// last measured call.
	cpuStart := make(chan time.Duration, 1)
	warmed := time.AfterFunc(time.Until(warmEnd), func() { cpuStart <- cpu.Process() })
	defer warmed.Stop()
	for range cfg.Concurrency {
		wg.Go(func() {
			var mine []time.Duration
			var measured int
			var last time.Time
			for {
				start := time.Now()
				if (start.After(end) && measured > 0) || ctx.Err() != nil {
					break
				}
				err := fn(ctx)
				d := time.Since(start)
				if start.Before(warmEnd) {
					continue
				}
				measured++
				last = start.Add(d)
				if start.After(end) {
					extended.Store(true)
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			if last.After(lastEnd) {
				lastEnd = last
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	cpuEnd := cpu.Process()
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	select {
	case c := <-cpuStart:
		p.CPU = cpuEnd - c
	default: // the phase ended before its warmup did (a cancelled run)
	}
	p.Jobs, p.Errors = len(lat), int(errs.Load())
	if v, ok := firstErr.Load().(string); ok {
		p.FirstError = v
	}
	p.Seconds = cfg.Duration.Seconds()
	if extended.Load() {
		p.Seconds = lastEnd.Sub(warmEnd).Seconds()
	}
	p.JobsPerSecond = float64(p.Jobs) / p.Seconds
	if len(lat) == 0 {
		return p, errors.New(name + ": no successful job")
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	p.P50, p.P90, p.P99 = pct(0.50), pct(0.90), pct(0.99)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	p.Mean = sum / time.Duration(len(lat))
	return p, nil
}

// checkBooks compares the gateway's books for the orchestrator with the
// orchestrator's ledger for the gateway, and verifies both ledgers.
func (r *Report) checkBooks(ctx context.Context, gw *gateway.Node, orch *orchestrator.Node, signer *ethsig.KeySigner) {
	sum := func(l *ledger.Ledger, sender string) (credited, charged, pool ledger.Amount, err error) {
		accts, err := l.List(ctx, ledger.AccountFilter{Sender: sender, Limit: 10_000_000})
		if err != nil {
			return
		}
		for _, a := range accts {
			credited, charged = credited.Add(a.Credited), charged.Add(a.Charged)
			if a.Ref.Kind == ledger.KindPool {
				pool = pool.Add(a.Balance)
			}
		}
		return
	}
	gc, gch, gp, err1 := sum(gw.Ledger, orch.Address.Hex())
	oc, och, op, err2 := sum(orch.Ledger, signer.Address().Hex())
	if err := errors.Join(err1, err2); err != nil {
		r.Problems = append(r.Problems, err.Error())
		return
	}
	r.PaidWei, r.ChargedWei = gc.String(), gch.String()
	r.BooksAgree = gc.Cmp(oc) == 0 && gch.Cmp(och) == 0 && gp.Cmp(op) == 0
	r.BooksDetail = fmt.Sprintf("gateway: credited %s charged %s pool %s; orchestrator: credited %s charged %s pool %s", gc, gch, gp, oc, och, op)
	if ev := big.NewInt(r.Config.TicketEV); ev.Sign() > 0 {
		r.Tickets = new(big.Int).Quo(gc.Big(), ev).Int64()
	}
	for name, pair := range map[string]struct {
		s   ledger.Store
		now time.Time
	}{"gateway": {gw.Store, gw.Ledger.Now()}, "orchestrator": {orch.Store, orch.Ledger.Now()}} {
		rep, err := ledger.Verify(ctx, pair.s, ledger.VerifyOptions{Now: pair.now, StaleAfter: time.Hour})
		if err != nil {
			r.Problems = append(r.Problems, name+": "+err.Error())
			continue
		}
		for _, p := range rep.Problems {
			r.Problems = append(r.Problems, name+": "+p)
		}
	}
}

// Print writes the report for people.
func (r Report) Print(w io.Writer) {
	c := r.Config
	pricing := fmt.Sprintf("free and paid capabilities (price %d wei/s, ticket EV %d wei)", c.PriceWei, c.TicketEV)
	if c.Free {
		pricing = "free capability only"
	}
	fmt.Fprintf(w, "byoc bench: %d concurrent clients, %s per phase after %s warmup, %s, %d-byte bodies, orchestrator over %s\n\n",
		c.Concurrency, c.Duration, c.Warmup, pricing, c.BodyBytes, map[bool]string{true: "http", false: "https"}[c.PlainHTTP])
	fmt.Fprintf(w, "%-10s %9s %7s %9s %9s %9s %9s %9s %11s\n", "", "jobs", "errors", "jobs/s", "p50", "p90", "p99", "mean", "CPU µs/job")
	for _, p := range []Phase{r.Direct, r.OrchestratorFree, r.StackFree, r.Orchestrator, r.Stack} {
		if p.Name == "" {
			continue
		}
		fmt.Fprintf(w, "%-10s %9d %7d %9.0f %9s %9s %9s %9s %11.0f\n", p.Name, p.Jobs, p.Errors, p.JobsPerSecond,
			round(p.P50), round(p.P90), round(p.P99), round(p.Mean), float64(p.CPUPerJob().Nanoseconds())/1e3)
		if p.FirstError != "" {
			fmt.Fprintf(w, "           first error: %s\n", p.FirstError)
		}
	}
	x := r.Ratios
	fmt.Fprintln(w)
	if !c.Free {
		fmt.Fprintf(w, "paid ÷ free stack: %.1f%% of the jobs/s, %.2f× the CPU per job, +%s at p50\n", 100*x.PaidOverFree, x.CPUPaidOverFree, round(x.PaymentAddedP50))
		fmt.Fprintf(w, "stack ÷ direct:    paid %.1f%%, free %.1f%%\n", 100*x.StackOverDirect, 100*x.FreeStackOverDirect)
	} else {
		fmt.Fprintf(w, "stack ÷ direct:    free %.1f%%\n", 100*x.FreeStackOverDirect)
	}
	fmt.Fprintf(w, "orch-free ÷ direct: %.1f%%\n", 100*x.OrchestratorFreeOverDirect)
	fmt.Fprintf(w, "added latency:     p50 %s (stack − direct)\n", round(x.StackAddedP50))
	if !c.Free {
		fmt.Fprintf(w, "  of which the gateway (stack − orch): p50 %s, p99 %s\n", round(r.Stack.P50-r.Orchestrator.P50), round(r.Stack.P99-r.Orchestrator.P99))
		fmt.Fprintf(w, "payments:          ~%d tickets, %s wei credited, %s wei charged\n", r.Tickets, r.PaidWei, r.ChargedWei)
	} else {
		fmt.Fprintf(w, "payments:          none (a free capability: no tickets, no ledger writes)\n")
	}
	fmt.Fprintf(w, "books agree:       %v (%s)\n", r.BooksAgree, r.BooksDetail)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d.Abs() >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d.Abs() >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
