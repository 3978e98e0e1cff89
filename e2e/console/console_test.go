// Package console_test drives the web console of a running orchestrator
// and gateway in headless Chromium (Debian's chromium, through chromedp):
// the pages load without console errors, their figures are the ledgers',
// a new job shows up by itself, and the screenshots in docs/console are
// taken from these pages (go test ./e2e/console -args -update).
package console_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

var quiet = slog.New(slog.DiscardHandler)

var update = flag.Bool("update", false, "write the screenshots to docs/console/*.png")

// Prices of these tests: 1 gwei per second, holds of at least 10 s, and
// tickets of 2 gwei expected value that win one time in two, so a first
// job pays 5 tickets and winners appear.
const (
	price      = 1_000_000_000
	minCompute = 10 * time.Second
)

// chromium returns the browser to drive, or skips the test.
func chromium(t *testing.T) string {
	if p := os.Getenv("BYOC_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("BYOC_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("no chromium (set BYOC_CHROMIUM, or run scripts/install-chromium): the console's browser tests skip")
	}
	return "/usr/bin/chromium"
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab, and the list of console errors, exceptions and failed loads the
// tab has logged so far.
func browser(t *testing.T) (context.Context, func() []string) {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.DisableGPU,
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		// Chromium puts its singleton socket in TMPDIR and leaves it there.
		chromedp.Env("TMPDIR=" + t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() }) // waits for the browser to exit, before TempDir's removal
	var mu sync.Mutex
	var problems []string
	add := func(s string) { mu.Lock(); problems = append(problems, s); mu.Unlock() }
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				add(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			add("exception: " + (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				add(fmt.Sprintf("log %s: %s %s", ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 600)); err != nil {
		t.Fatal(err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

type net struct {
	orch *orchestrator.Node
	gw   *gateway.Node
}

func start(t *testing.T) *net {
	orch := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.TicketEV, c.MaxFaceValue = big.NewInt(2_000_000_000), big.NewInt(4_000_000_000)
		c.Orchestrator.MinCompute = minCompute
		c.Orchestrator.Logger = quiet
	})
	w := testnet.StartWorker(t)
	testnet.Register(t, orch.URL, w, worker.Reverse, worker.Reverse, price, 4)
	testnet.Register(t, orch.URL, w, worker.Sleep, worker.Sleep, price, 4)
	key, err := ethsig.KeySignerFromHex(testnet.KeyA)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.StartNode(context.Background(), gateway.NodeConfig{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(), SweepInterval: 50 * time.Millisecond,
		Discovery: gateway.DiscoveryConfig{Static: []string{orch.URL}},
		Gateway:   gateway.Config{Signer: key, MinCompute: minCompute, Logger: quiet},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for name, side := range map[string]struct {
			l *ledger.Ledger
			s ledger.Store
		}{"orchestrator": {orch.Ledger, orch.Store}, "gateway": {gw.Ledger, gw.Store}} {
			r, err := ledger.Verify(context.Background(), side.s, ledger.VerifyOptions{Now: side.l.Now(), StaleAfter: time.Hour})
			if err != nil || !r.OK() {
				t.Errorf("verify %s: %v %v", name, err, r.Problems)
			}
		}
		http.DefaultClient.CloseIdleConnections()
		gw.CloseIdleConnections()
		gw.Close()
	})
	return &net{orch, gw}
}

// job sends a job through the gateway as a client does and waits until
// both ledgers have closed its hold.
func (n *net) job(t *testing.T, ctx context.Context, id, capability, body string, timeout int) {
	t.Helper()
	if err := n.send(ctx, id, capability, body, timeout); err != nil {
		t.Fatal(err)
	}
	if err := n.gw.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, "job "+id+" closed at the orchestrator", func() bool {
		s, err := n.orch.Ledger.Statement(context.Background(), ledger.JobKey{Sender: n.gw.Address(), JobID: id}.Ref(), 1)
		return err == nil && s.Account.State.IsFinal()
	})
}

// send sends a job and reads its answer.
func (n *net) send(ctx context.Context, id, capability, body string, timeout int) error {
	hdr, _ := json.Marshal(wire.JobRequest{ID: id, Request: "{}", Parameters: "{}", Capability: capability, TimeoutSeconds: timeout})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.gw.URL+"/process/request/", strings.NewReader(body))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("job %s: %d %s", id, resp.StatusCode, b)
	}
	return nil
}

// page opens a console route and waits until the page rendered it.
func page(t *testing.T, ctx context.Context, url, view string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, fmt.Sprintf(`document.body.dataset.loaded === %q`, view))
	if text := eval[string](t, ctx, `document.getElementById("main").innerText`); strings.Contains(text, "null") || strings.Contains(text, "undefined") {
		t.Errorf("%s: the page shows a JavaScript null or undefined:\n%s", view, text)
	}
}

// waitFor waits until a JavaScript condition on the page holds.
func waitFor(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("waiting for %s: %v", cond, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// cellWei is the exact wei of a table cell: table id, row key, column.
func cellWei(t *testing.T, ctx context.Context, table, key string, col int) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`(document.querySelector('[data-table=%q] tr[data-key=%q] td:nth-child(%d)') || {dataset: {wei: "missing"}}).dataset.wei || "none"`, table, key, col))
}

func figureWei(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`(document.querySelector('[data-figure=%q] .value') || {dataset: {}}).dataset.wei || "missing"`, id))
}

func clean(t *testing.T, what string, problems func() []string) {
	t.Helper()
	for _, p := range problems() {
		t.Errorf("%s: %s", what, p)
	}
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 5000 {
		t.Fatalf("screenshot %s: %d bytes, not a PNG of a page", name, len(png))
	}
	if *update {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConsole runs paid jobs through an orchestrator and a gateway and
// reads both consoles in Chromium.
func TestConsole(t *testing.T) {
	ctx, problems := browser(t)
	n := start(t)
	bg := context.Background()
	sender := n.gw.Address()
	n.job(t, bg, "reverse-1", worker.Reverse, `{"text":"Hello, byoc!"}`, 10)
	n.job(t, bg, "reverse-2", worker.Reverse, `{"text":"prepaid"}`, 10)
	n.job(t, bg, "sleep-1", worker.Sleep, `{"duration_ms":300}`, 10)
	jobs := []string{"reverse-1", "reverse-2", "sleep-1"}

	// A long job keeps a hold open while the overview is read.
	running, stop := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- n.send(running, "sleep-long", worker.Sleep, `{"duration_ms":60000}`, 70) }()

	orchConsole := n.orch.AdminURL + "/console/"
	t.Run("orchestrator overview", func(t *testing.T) {
		page(t, ctx, orchConsole+"#token="+n.orch.AdminToken, "overview")
		waitFor(t, ctx, `document.querySelector('[data-table="holds"] tr[data-key="sleep-long"]') !== null`)
		for _, c := range []string{worker.Reverse, worker.Sleep} {
			want, err := n.orch.Ledger.Balance(bg, ledger.PoolKey{Sender: sender, Capability: c}.Ref())
			if err != nil {
				t.Fatal(err)
			}
			if got := cellWei(t, ctx, "pools", sender+"/"+c+"/", 4); got != want.String() {
				t.Errorf("pool %s: console %s wei, ledger %s", c, got, want)
			}
		}
		queued, err := n.orch.Ledger.Winners(bg, ledger.WinnerQueued, 0)
		if err != nil {
			t.Fatal(err)
		}
		face := ledger.Amount{}
		for _, w := range queued {
			face = face.Add(w.FaceValue)
		}
		if got := figureWei(t, ctx, "queued-face"); got != face.String() {
			t.Errorf("queued winners' face value: console %s, ledger %s", got, face)
		}
		shot(t, ctx, "orchestrator-overview")
		// At 80 columns of a terminal's width the page still reads.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(660, 520)); err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "orchestrator-overview-narrow")
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 600)); err != nil {
			t.Fatal(err)
		}
		clean(t, "orchestrator overview", problems)
	})
	stop()
	if err := <-done; running.Err() == nil || err == nil {
		t.Fatalf("the long job ended by itself (%v), not when the test stopped it", err)
	}
	if err := n.gw.WaitIdle(bg); err != nil {
		t.Fatal(err)
	}

	t.Run("jobs and a statement", func(t *testing.T) {
		page(t, ctx, orchConsole+"#/jobs", "jobs")
		for _, id := range jobs {
			st, err := n.orch.Ledger.Statement(bg, ledger.JobKey{Sender: sender, JobID: id}.Ref(), 0)
			if err != nil {
				t.Fatal(err)
			}
			for col, want := range map[int]ledger.Amount{5: st.Credited, 6: st.Drawn, 7: st.Charged, 8: st.Released} {
				if got := cellWei(t, ctx, "recent", id, col); got != want.String() {
					t.Errorf("%s column %d: console %s wei, ledger %s", id, col, got, want)
				}
			}
		}
		shot(t, ctx, "orchestrator-jobs")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-table="recent"] tr[data-key="reverse-1"] a`))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `document.body.dataset.loaded === "job" && document.querySelector("h1").textContent === "Job reverse-1"`)
		st, err := n.orch.Ledger.Statement(bg, ledger.JobKey{Sender: sender, JobID: "reverse-1"}.Ref(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]ledger.Amount{"credited": st.Credited, "drawn": st.Drawn, "charged": st.Charged, "released": st.Released} {
			if got := figureWei(t, ctx, id); got != want.String() {
				t.Errorf("statement %s: console %s wei, ledger %s", id, got, want)
			}
		}
		if rows := eval[int](t, ctx, `document.querySelectorAll('[data-table="entries"] tbody tr[data-key]').length`); rows != len(st.Entries) {
			t.Errorf("statement: %d entries shown, the ledger has %d", rows, len(st.Entries))
		}
		shot(t, ctx, "orchestrator-statement")
		clean(t, "jobs", problems)
	})

	t.Run("a new job appears by itself", func(t *testing.T) {
		page(t, ctx, orchConsole+"#/jobs", "jobs")
		n.job(t, bg, "live-1", worker.Reverse, `{"text":"live"}`, 10)
		st, err := n.orch.Ledger.Statement(bg, ledger.JobKey{Sender: sender, JobID: "live-1"}.Ref(), 0)
		if err != nil {
			t.Fatal(err)
		}
		// No reload: the page's own polling brings the row.
		waitFor(t, ctx, fmt.Sprintf(`(() => { const r = document.querySelector('[data-table="recent"] tr[data-key="live-1"]');
			return r !== null && r.cells[3].textContent === "closed" && r.cells[6].dataset.wei === %q })()`, st.Charged.String()))
		clean(t, "live update", problems)
	})

	t.Run("winners and capabilities", func(t *testing.T) {
		all, err := n.orch.Ledger.Winners(bg, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		page(t, ctx, orchConsole+"#/winners", "winners")
		if rows := eval[int](t, ctx, `document.querySelectorAll('[data-table="winners"] tbody tr[data-key]').length`); rows != len(all) {
			t.Errorf("winners: %d shown, the ledger has %d", rows, len(all))
		}
		for _, w := range all {
			if got := cellWei(t, ctx, "winners", w.Key, 3); got != w.FaceValue.String() {
				t.Errorf("winner %s: face value %s shown, %s in the ledger", w.Key, got, w.FaceValue)
			}
		}
		shot(t, ctx, "orchestrator-winners")
		page(t, ctx, orchConsole+"#/capabilities", "capabilities")
		if got := eval[string](t, ctx, `document.querySelector('[data-table="capabilities"] tr[data-key="reverse"]').cells[1].textContent`); got != "1000000000" {
			t.Errorf("reverse's price: %q shown", got)
		}
		if rows := eval[int](t, ctx, `document.querySelectorAll('[data-table="workers"] tbody tr[data-key]').length`); rows != 2 {
			t.Errorf("%d workers shown, want 2 (one per capability)", rows)
		}
		shot(t, ctx, "orchestrator-capabilities")
		clean(t, "winners and capabilities", problems)
	})

	t.Run("gateway", func(t *testing.T) {
		gwConsole := n.gw.AdminURL + "/console/"
		page(t, ctx, gwConsole, "overview")
		pools, err := n.gw.Pools(bg)
		if err != nil || len(pools) != 2 {
			t.Fatalf("gateway pools %+v, %v", pools, err)
		}
		for _, p := range pools {
			if got := cellWei(t, ctx, "books", p.Orchestrator+"/"+p.Capability, 3); got != p.Balance.String() {
				t.Errorf("books %s: console %s wei, gateway %s", p.Capability, got, p.Balance)
			}
		}
		shot(t, ctx, "gateway-overview")
		page(t, ctx, gwConsole+"#/orchestrators", "orchestrators")
		os := n.gw.Orchestrators()
		if len(os) != 1 {
			t.Fatalf("orchestrators %+v", os)
		}
		if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('[data-table="orchestrators"] tr[data-key=%q]').cells[4].textContent`, os[0].URL)); got != fmt.Sprint(os[0].Jobs) {
			t.Errorf("jobs ok: %s shown, %d in the gateway", got, os[0].Jobs)
		}
		shot(t, ctx, "gateway-orchestrators")
		// The gateway's statement of a job: its side of the same money.
		page(t, ctx, gwConsole+"#/job?sender="+os[0].Address+"&job=reverse-1", "job")
		st, err := n.gw.Ledger.Statement(bg, ledger.JobKey{Sender: os[0].Address, JobID: "reverse-1"}.Ref(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]ledger.Amount{"credited": st.Credited, "drawn": st.Drawn, "charged": st.Charged, "released": st.Released} {
			if got := figureWei(t, ctx, id); got != want.String() {
				t.Errorf("gateway statement %s: console %s wei, books %s", id, got, want)
			}
		}
		clean(t, "gateway", problems)
	})

	t.Run("sign in with the admin token", func(t *testing.T) {
		before := len(problems())
		if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(orchConsole+"#/jobs")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `!document.getElementById("login").hidden && document.getElementById("main").hidden`)
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), "not-the-token\r")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `document.getElementById("loginerr").textContent === "wrong admin token"`)
		eval[bool](t, ctx, `(document.getElementById("token").value = "", true)`)
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), n.orch.AdminToken+"\r")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `document.body.dataset.loaded === "jobs" && document.getElementById("login").hidden`)
		// The browser logs each refused request; nothing else may appear.
		for _, p := range problems()[before:] {
			if !strings.Contains(p, "401") {
				t.Errorf("signing in: %s", p)
			}
		}
	})
}
