package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/signer"
	"byoc/wire"
	"byoc/worker"
)

// sendJob sends a job through gw as a client does; it returns the status
// and the answer.
func sendJob(t *testing.T, gw *gateway.Node, id, capability, body string) (int, string) {
	t.Helper()
	hdr, _ := json.Marshal(wire.JobRequest{ID: id, Request: "{}", Parameters: "{}", Capability: capability, TimeoutSeconds: 10})
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/process/request/", strings.NewReader(body))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := gw.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestConsoleSigner runs two customers' jobs through one orchestrator,
// paid through a byoc signer with budgets and alert thresholds (50 %,
// 100 %) by two gateways without keys, and reads the signer's console:
// each customer's budget is the ledger's, the thresholds crossed and the
// alerts fired are shown, the charts are drawn from the customer's
// statement (a point per movement, the spend per period adding up to what
// was spent), and a new spend shows up by itself.
func TestConsoleSigner(t *testing.T) {
	ctx, problems := browser(t)
	bg := context.Background()
	// One manual clock for every node, so that the charts span minutes.
	clock := ledger.NewManualClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	orch := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		c.TicketEV, c.MaxFaceValue = big.NewInt(2_000_000_000), big.NewInt(4_000_000_000)
		c.Orchestrator.MinCompute = minCompute
		c.Orchestrator.Logger = quiet
	})
	w := testnet.StartWorker(t)
	testnet.Register(t, orch.URL, w, worker.Reverse, worker.Reverse, price, 4)
	testnet.Register(t, orch.URL, w, worker.Sleep, worker.Sleep, price, 4)
	testnet.Register(t, orch.URL, w, worker.Echo, worker.Echo, price, 4)
	key, err := ethsig.KeySignerFromHex(testnet.KeyB)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := signer.StartNode(bg, signer.NodeConfig{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(), Clock: clock,
		Budgets: true, Thresholds: []int{50, 100}, Signer: signer.Config{Key: key, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	gws := map[string]*gateway.Node{}
	t.Cleanup(func() {
		verify(t, "orchestrator", orch.Ledger, orch.Store)
		verify(t, "signer", sg.Ledger, sg.Ledger.Store())
		http.DefaultClient.CloseIdleConnections()
		for who, gw := range gws {
			verify(t, "gateway "+who, gw.Ledger, gw.Store)
			gw.CloseIdleConnections()
			gw.Close()
		}
		sg.Close()
	})
	// A job's hold is 10 s at 1 gwei/s: 10 gwei of tickets, signed and
	// charged to the customer's budget; each capability is a pool of its
	// own at the orchestrator, so a customer's first job of each is paid.
	// Bob's 6 gwei do not cover one.
	for who, wei := range map[string]int64{"alice": 30 * price, "bob": 6 * price} {
		if _, err := sg.Budgets.Grant(bg, who, ledger.Wei(wei), "grant-"+who); err != nil {
			t.Fatal(err)
		}
		remote, err := gateway.NewRemoteSigner(bg, sg.URL, map[string]string{signer.HeaderAuthID: who}, nil)
		if err != nil {
			t.Fatal(err)
		}
		gw, err := gateway.StartNode(bg, gateway.NodeConfig{
			Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(), SweepInterval: 50 * time.Millisecond, Clock: clock,
			Discovery: gateway.DiscoveryConfig{Static: []string{orch.URL}},
			Gateway:   gateway.Config{Remote: remote, MinCompute: minCompute, Logger: quiet},
		})
		if err != nil {
			t.Fatal(err)
		}
		gws[who] = gw
	}
	if status, body := sendJob(t, gws["alice"], "alice-1", worker.Reverse, `{"text":"alice"}`); status != http.StatusOK {
		t.Fatalf("alice's job: %d %s", status, body)
	}
	clock.Advance(2 * time.Minute)
	if status, body := sendJob(t, gws["bob"], "bob-1", worker.Reverse, `{"text":"bob"}`); status != 483 {
		t.Fatalf("bob's job over budget: %d %s, want 483", status, body)
	}
	clock.Advance(3 * time.Minute)
	if _, err := sg.Budgets.Grant(bg, "bob", ledger.Wei(6*price), "grant-bob-2"); err != nil {
		t.Fatal(err)
	}
	if status, body := sendJob(t, gws["bob"], "bob-2", worker.Reverse, `{"text":"bob"}`); status != http.StatusOK {
		t.Fatalf("bob's job after a top-up: %d %s", status, body)
	}
	clock.Advance(4 * time.Minute)
	if status, body := sendJob(t, gws["alice"], "alice-2", worker.Sleep, `{"duration_ms":10}`); status != http.StatusOK {
		t.Fatalf("alice's second job: %d %s", status, body)
	}
	clock.Advance(time.Minute)

	read := func(who string) signer.BudgetView {
		v, err := sg.Budgets.Read(bg, who)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	home := sg.AdminURL + "/console/"
	t.Run("customers", func(t *testing.T) {
		page(t, ctx, home, "customers")
		for _, who := range []string{"alice", "bob"} {
			v := read(who)
			if want := map[string]int64{"alice": 20 * price, "bob": 10 * price}[who]; v.Spent.Cmp(ledger.Wei(want)) != 0 {
				t.Errorf("%s spent %s, want %d wei: a hold's 10 gwei per capability", who, v.Spent, want)
			}
			for col, want := range map[int]ledger.Amount{2: v.Granted, 3: v.Spent, 4: v.Balance} {
				if got := cellWei(t, ctx, "customers", who, col); got != want.String() {
					t.Errorf("%s column %d: console %s wei, signer %s", who, col, got, want)
				}
			}
			if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('[data-table="customers"] tr[data-key=%q]').cells[5].textContent`, who)); got != "50 % crossed" {
				t.Errorf("%s's alerts: %q shown, want 50 %% crossed", who, got)
			}
			// The chart's line of what the customer spent ends at what the
			// ledger says was spent.
			if got := eval[string](t, ctx, fmt.Sprintf(`(() => { const p = document.querySelectorAll('[data-chart="spent"] g[data-series=%q] circle'); return p.length ? p[p.length-1].dataset.wei : "none" })()`, who)); got != v.Spent.String() {
				t.Errorf("%s's spent line ends at %s, the ledger says %s", who, got, v.Spent)
			}
		}
		if rows := eval[int](t, ctx, `document.querySelectorAll('[data-table="alerts"] tbody tr[data-key]').length`); rows != 2 {
			t.Errorf("%d alerts shown, want 2 (alice and bob past 50 %%)", rows)
		}
		shot(t, ctx, "signer-customers")
		clean(t, "customers", problems)
	})

	t.Run("a customer", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-table="customers"] tr[data-key="bob"] a`))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `document.body.dataset.loaded === "customer" && document.querySelector("h1").textContent === "Customer bob"`)
		st, err := sg.Budgets.Statement(bg, "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]ledger.Amount{"granted": st.Granted, "spent": st.Spent, "balance": st.Balance} {
			if got := figureWei(t, ctx, id); got != want.String() {
				t.Errorf("bob's %s: console %s wei, signer %s", id, got, want)
			}
		}
		// A point of the budget's line per statement line, at its balance.
		var want []string
		spends := 0
		for _, l := range st.Lines {
			want = append(want, l.Balance.String())
			if l.Kind == "spend" {
				spends++
			}
		}
		if got := eval[[]string](t, ctx, `[...document.querySelectorAll('[data-chart="balance"] circle')].map(c => c.dataset.wei)`); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("bob's budget line: %v, the statement's balances %v", got, want)
		}
		// The bars add up to what was spent and to the payments signed.
		bars := eval[[]string](t, ctx, `[...document.querySelectorAll('[data-chart="spend"] rect')].map(r => r.dataset.wei)`)
		sum := ledger.Amount{}
		for _, b := range bars {
			a, err := ledger.ParseAmount(b)
			if err != nil {
				t.Fatalf("a bar's wei %q: %v", b, err)
			}
			sum = sum.Add(a)
		}
		if sum.Cmp(st.Spent) != 0 {
			t.Errorf("bob's spend bars add up to %s, he spent %s", sum, st.Spent)
		}
		if got := eval[int](t, ctx, `[...document.querySelectorAll('[data-chart="usage"] rect')].reduce((n, r) => n + Number(r.dataset.value), 0)`); got != spends {
			t.Errorf("bob's usage bars count %d payments, the statement %d", got, spends)
		}
		if rows := eval[int](t, ctx, `document.querySelectorAll('[data-table="lines"] tbody tr[data-key]').length`); rows != len(st.Lines) {
			t.Errorf("bob's statement: %d lines shown, %d in the ledger", rows, len(st.Lines))
		}
		// Tall enough for the three charts and the statement.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 1000)); err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "signer-customer")
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 600)); err != nil {
			t.Fatal(err)
		}
		clean(t, "a customer", problems)
	})

	t.Run("a new spend appears by itself", func(t *testing.T) {
		page(t, ctx, home+"#/customer?customer=alice", "customer")
		waitFor(t, ctx, `document.querySelector("h1").textContent === "Customer alice"`)
		// A third capability, a third hold paid through the signer, which
		// takes alice to 100 %.
		clock.Advance(2 * time.Minute)
		if status, body := sendJob(t, gws["alice"], "alice-3", worker.Echo, `{"text":"echo"}`); status != http.StatusOK {
			t.Fatalf("alice's third job: %d %s", status, body)
		}
		v := read("alice")
		if v.Balance.Sign() != 0 {
			t.Errorf("alice's budget after three holds: %s left, want 0", v.Balance)
		}
		waitFor(t, ctx, fmt.Sprintf(`document.querySelector('[data-figure="spent"] .value').dataset.wei === %q && document.querySelector('[data-figure="alerts"] .value').textContent === "100 %% crossed"`, v.Spent))
		clean(t, "live", problems)
	})
}
