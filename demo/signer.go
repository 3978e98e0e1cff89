package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"byoc/gateway"
	"byoc/internal/nodefiles"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/signer"
	"byoc/wire"
	"byoc/worker"
)

// SignerResult is what the signer scenario measured, per customer.
type SignerResult struct {
	Customers []CustomerReport
	Verified  bool
}

// CustomerReport is one customer as the signer and the orchestrator saw it.
type CustomerReport struct {
	Name          string
	Jobs, Refused int
	// Spent is what the signer charged the customer's budget; Credited what
	// the orchestrator credited that customer's pool and its jobs.
	Spent, Credited, Charged, Left ledger.Amount
}

// RunSigner runs the remote-signer scenario: an orchestrator, the sample
// worker, a byoc signer holding the only key with budgets for two
// customers, and two gateways without keys, one per customer, paying
// through the signer. Alice's budget covers her jobs; bob's cannot cover his
// first job's hold, which is refused (483) while alice's go on, until a
// top-up lets his jobs run. It prints, per customer,
// what the signer charged and what the orchestrator credited that
// customer's pool — the same, to the wei — and verifies the three ledgers.
func RunSigner(ctx context.Context, opts Options) (*SignerResult, error) {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	logger := opts.Logger
	if logger == nil {
		logw := opts.Log
		if logw == nil {
			logw = io.Discard
		}
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
	fmt.Fprintf(out, "byoc demo --signer — data in %s\n\n", dir)
	orch, err := orchestrator.StartNode(ctx, orchestrator.NodeConfig{
		Listen: "https://127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: filepath.Join(dir, "orchestrator"),
		TicketEV: ticketEV, MaxFaceValue: maxFaceValue, SweepInterval: time.Second,
		Orchestrator: orchestrator.Config{Secret: secret, Logger: logger},
	})
	if err != nil {
		return nil, err
	}
	defer orch.Close()
	wk, err := worker.Start("", worker.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	defer wk.Close()
	c := wk.Capability(worker.Reverse)
	c.PricePerUnit, c.PriceScaling, c.Currency, c.Capacity = pricePerSecond, 1, "wei", 8
	if err := worker.Register(ctx, orch.URL, secret, c, worker.InsecureSkipVerify()); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	key, err := nodefiles.Key(filepath.Join(dir, "signer"))
	if err != nil {
		return nil, fmt.Errorf("signer key: %w", err)
	}
	sg, err := signer.StartNode(ctx, signer.NodeConfig{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		DataDir: filepath.Join(dir, "signer"), Budgets: true, Thresholds: []int{80, 100},
		Alert: func(a signer.Alert) {
			fmt.Fprintf(out, "   alert: %s has spent %d %% of %s\n", a.Customer, a.Threshold, gweiU(a.Granted))
		},
		Signer: signer.Config{Key: key, Logger: logger}})
	if err != nil {
		return nil, err
	}
	defer sg.Close()
	// A job's hold covers 60 s of compute (12 gwei: two 8 gwei tickets);
	// later jobs run on that prepaid credit. Bob's 10 gwei do not cover it.
	budgets := map[string]int64{"alice": 100_000_000_000, "bob": 10_000_000_000}
	gws := map[string]*gateway.Node{}
	for _, who := range []string{"alice", "bob"} {
		if _, err := sg.Budgets.Grant(ctx, who, ledger.Wei(budgets[who]), "demo-"+who); err != nil {
			return nil, err
		}
		remote, err := gateway.NewRemoteSigner(ctx, sg.URL, map[string]string{signer.HeaderAuthID: who}, nil)
		if err != nil {
			return nil, err
		}
		gw, err := gateway.StartNode(ctx, gateway.NodeConfig{
			Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway-"+who),
			Discovery: gateway.DiscoveryConfig{Static: []string{orch.URL}}, SweepInterval: time.Second,
			Gateway: gateway.Config{Remote: remote, Logger: logger},
		})
		if err != nil {
			return nil, err
		}
		defer gw.Close()
		gws[who] = gw
	}
	fmt.Fprintf(out, "orchestrator %s\nsigner       %s  (the only key: %s)\ngateways     alice %s, bob %s  (no key)\n\n",
		orch.URL, sg.URL, sg.Address(), gws["alice"].URL, gws["bob"].URL)

	res := &SignerResult{}
	reports := map[string]*CustomerReport{"alice": {Name: "alice"}, "bob": {Name: "bob"}}
	for i, who := range []string{"alice", "bob", "alice", "top-up", "bob", "bob", "alice"} {
		if who == "top-up" {
			if _, err := sg.Budgets.Grant(ctx, "bob", ledger.Wei(10_000_000_000), "demo-bob-topup"); err != nil {
				return nil, err
			}
			fmt.Fprintln(out, "   bob's budget topped up by 10 gwei")
			continue
		}
		status, body, err := demoJob(ctx, gws[who], fmt.Sprintf("%s-%d", who, i+1))
		if err != nil {
			return nil, err
		}
		if status == http.StatusOK {
			reports[who].Jobs++
		} else {
			reports[who].Refused++
		}
		fmt.Fprintf(out, "   %-5s job %d → %d %s\n", who, i+1, status, oneLine(body))
		if err := gws[who].WaitIdle(ctx); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(out, "\nPer customer: what the signer charged, what the orchestrator credited that customer's pool")
	for _, who := range []string{"alice", "bob"} {
		r := reports[who]
		v, err := sg.Budgets.Read(ctx, who)
		if err != nil {
			return nil, err
		}
		r.Spent, r.Left = v.Spent, v.Balance
		credited, charged, err := customerTotals(ctx, orch.Ledger, sg.Address(), worker.Reverse, who)
		if err != nil {
			return nil, err
		}
		r.Credited, r.Charged = credited, charged
		same := "equal"
		if r.Spent.Cmp(r.Credited) != 0 {
			same = "DIFFERENT"
		}
		fmt.Fprintf(out, "   %-5s %d jobs, %d refused: signer charged %s, orchestrator credited %s (%s), compute charged %s, budget left %s\n",
			who, r.Jobs, r.Refused, gweiU(r.Spent), gweiU(r.Credited), same, gweiU(r.Charged), gweiU(r.Left))
		res.Customers = append(res.Customers, *r)
	}
	res.Verified = true
	for _, side := range []struct {
		name  string
		store ledger.Store
		now   time.Time
	}{{"orchestrator", orch.Store, orch.Ledger.Now()}, {"signer", sg.Ledger.Store(), sg.Ledger.Now()},
		{"gateway alice", gws["alice"].Store, gws["alice"].Ledger.Now()}, {"gateway bob", gws["bob"].Store, gws["bob"].Ledger.Now()}} {
		rep, err := ledger.Verify(ctx, side.store, ledger.VerifyOptions{Now: side.now, StaleAfter: time.Minute})
		if err != nil {
			return nil, err
		}
		verdict := "all invariants hold"
		if !rep.OK() {
			res.Verified, verdict = false, "VIOLATED: "+strings.Join(rep.Problems, "; ")
		}
		fmt.Fprintf(out, "ledger verify (%s): %s\n", side.name, verdict)
	}
	if !res.Verified {
		return res, errors.New("a ledger invariant does not hold")
	}
	return res, nil
}

// demoJob sends one reverse job through gw.
func demoJob(ctx context.Context, gw *gateway.Node, id string) (int, string, error) {
	hdr, _ := json.Marshal(wire.JobRequest{ID: id, Request: "{}", Parameters: "{}", Capability: worker.Reverse, TimeoutSeconds: 30})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/process/request/", bytes.NewReader([]byte(`{"text":"`+id+`"}`)))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("job %s: %w", id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// customerTotals adds up what the orchestrator credited and charged the
// customer's pool (sender, capability, customer) and its jobs.
func customerTotals(ctx context.Context, l *ledger.Ledger, sender, capability, customer string) (credited, charged ledger.Amount, err error) {
	pool, err := l.Account(ctx, ledger.PoolKey{Sender: sender, Capability: capability, Customer: customer}.Ref())
	if errors.Is(err, ledger.ErrNotFound) {
		return ledger.Amount{}, ledger.Amount{}, nil
	}
	if err != nil {
		return credited, charged, err
	}
	credited, charged = pool.Credited, pool.Charged
	jobs, err := l.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, PoolID: pool.ID, Limit: 100000})
	for _, j := range jobs {
		credited, charged = credited.Add(j.Credited), charged.Add(j.Charged)
	}
	return credited, charged, err
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// gweiU is gwei with its unit.
func gweiU(a ledger.Amount) string { return gwei(a) + " gwei" }
