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
	"byoc/wire"
	"byoc/worker"
)

// noTicks is a ticker that never ticks: the tests settle and pay streams
// themselves, on a manual clock, so every figure is known when read.
func noTicks(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

type streamNet struct {
	orch  *orchestrator.Node
	gw    *gateway.Node
	clock *ledger.ManualClock
}

// startStreams starts an orchestrator with the sample worker's reverse
// capability registered as "live" (1 gwei per second) and a gateway, on
// one manual clock.
func startStreams(t *testing.T) *streamNet {
	clock := ledger.NewManualClock(time.Now())
	orch := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		c.TicketEV, c.MaxFaceValue = big.NewInt(2_000_000_000), big.NewInt(4_000_000_000)
		c.Orchestrator.MinCompute = minCompute
		c.Orchestrator.Logger = quiet
		c.Orchestrator.StreamTicker = noTicks
	})
	wk, err := worker.Start("", worker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wk.Close() })
	testnet.Register(t, orch.URL, wk, worker.Reverse, "live", price, 4)
	key, err := ethsig.KeySignerFromHex(testnet.KeyA)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.StartNode(context.Background(), gateway.NodeConfig{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(), SweepInterval: 50 * time.Millisecond, Clock: clock,
		Discovery: gateway.DiscoveryConfig{Static: []string{orch.URL}},
		Gateway:   gateway.Config{Signer: key, MinCompute: minCompute, Logger: quiet, StreamTicker: noTicks},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		verify(t, "orchestrator", orch.Ledger, orch.Store)
		verify(t, "gateway", gw.Ledger, gw.Store)
		http.DefaultClient.CloseIdleConnections()
		gw.CloseIdleConnections()
		gw.Close()
	})
	return &streamNet{orch, gw, clock}
}

func verify(t *testing.T, name string, l *ledger.Ledger, s ledger.Store) {
	r, err := ledger.Verify(context.Background(), s, ledger.VerifyOptions{Now: l.Now(), StaleAfter: time.Hour})
	if err != nil || !r.OK() {
		t.Errorf("verify %s: %v %v", name, err, r.Problems)
	}
}

// start starts a stream through the gateway, as a client does, and waits
// until an orchestrator runs it.
func (n *streamNet) start(t *testing.T, id string, timeout int) {
	t.Helper()
	hdr, _ := json.Marshal(wire.JobRequest{Request: "{}", Parameters: "{}", Capability: "live", TimeoutSeconds: timeout})
	req, _ := http.NewRequest(http.MethodPost, n.gw.URL+"/process/stream/start", strings.NewReader(fmt.Sprintf(`{"stream_id":%q,"params":"{}"}`, id)))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("start %s: %d %s", id, resp.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st := n.gw.StreamState(ctx, id); st != "running" {
		t.Fatalf("stream %s: %s", id, st)
	}
}

func (n *streamNet) stop(t *testing.T, id string) {
	t.Helper()
	resp, err := http.Post(n.gw.URL+"/process/stream/"+id+"/stop", "text/plain", strings.NewReader("bye"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stop %s: %d", id, resp.StatusCode)
	}
}

// orchStream is the orchestrator's running stream id as /admin/streams
// reads it.
func (n *streamNet) orchStream(t *testing.T, id string) orchestrator.StreamInfo {
	t.Helper()
	ss, err := n.orch.Streams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("the orchestrator runs no stream %s: %+v", id, ss)
	return orchestrator.StreamInfo{}
}

func (n *streamNet) gwStream(t *testing.T, id string) gateway.StreamStatus {
	t.Helper()
	for _, s := range n.gw.Streams() {
		if s.ID == id {
			return s
		}
	}
	for _, s := range n.gw.StoppedStreams() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("the gateway has no stream %s", id)
	return gateway.StreamStatus{}
}

func account(t *testing.T, l *ledger.Ledger, ref ledger.Ref) ledger.Account {
	t.Helper()
	a, err := l.Account(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// rowWei is the JavaScript condition that the row key of table has wei
// in column col (1-based).
func rowWei(table, key string, col int, wei ledger.Amount) string {
	return fmt.Sprintf(`(() => { const c = document.querySelector('[data-table=%q] tr[data-key=%q] td:nth-child(%d)'); return c !== null && c.dataset.wei === %q })()`,
		table, key, col, wei.String())
}

// TestConsoleStreams runs two streams of one sender through a gateway
// and an orchestrator on a manual clock and reads both consoles' Streams
// pages: what each stream holds, owes now, paid and was charged are the
// ledgers' (and /admin/streams'); time passing shows up in the page by
// itself; a stopped stream moves to the ended table with why it ended,
// and its statement is its hold's; a stream that owes more than it holds
// shows as dry.
func TestConsoleStreams(t *testing.T) {
	ctx, problems := browser(t)
	n := startStreams(t)
	bg := context.Background()
	sender := n.gw.Address()
	n.start(t, "cam-a", 30) // pays 30 s at the start
	n.start(t, "cam-b", 10) // pays 10 s
	n.clock.Advance(4 * time.Second)

	orchConsole := n.orch.AdminURL + "/console/"
	t.Run("orchestrator streams", func(t *testing.T) {
		page(t, ctx, orchConsole+"#token="+n.orch.AdminToken, "overview")
		// A stream's hold among the open holds opens the stream's statement.
		if got := eval[string](t, ctx, `(document.querySelector('[data-table="holds"] tr[data-key="cam-a"] a') || {}).hash || "none"`); !strings.HasPrefix(got, "#/stream?") {
			t.Errorf("cam-a's hold links to %q, not its stream's statement", got)
		}
		page(t, ctx, orchConsole+"#/streams", "streams")
		if got := eval[string](t, ctx, `document.querySelector('[data-figure="open"] .value').textContent`); got != "2" {
			t.Errorf("open streams: %s shown, want 2", got)
		}
		for _, id := range []string{"cam-a", "cam-b"} {
			s := n.orchStream(t, id)
			a := account(t, n.orch.Ledger, s.Hold)
			if s.Owed.Cmp(ledger.Wei(4*price)) != 0 {
				t.Errorf("%s owes %s after 4 s at 1 gwei/s", id, s.Owed)
			}
			for col, want := range map[int]ledger.Amount{5: a.Balance, 6: s.Owed, 7: s.Balance, 8: a.Credited, 9: a.MovedIn, 10: s.Charged} {
				if got := cellWei(t, ctx, "streams", id, col); got != want.String() {
					t.Errorf("%s column %d: console %s wei, orchestrator %s", id, col, got, want)
				}
			}
		}
		// No reload: the page's own polling shows what cam-a owes 3 s later.
		n.clock.Advance(3 * time.Second)
		waitFor(t, ctx, rowWei("streams", "cam-a", 6, n.orchStream(t, "cam-a").Owed))

		// A settlement charges what both owe; 2 s later cam-b is stopped
		// by its client: it is charged its 9 s and leaves the open table.
		if st := n.orch.SettleStreams(bg); st.Stopped != 0 {
			t.Fatalf("settlement stopped a stream: %+v", st)
		}
		n.clock.Advance(2 * time.Second)
		n.stop(t, "cam-b")
		b := account(t, n.orch.Ledger, ledger.JobKey{Sender: sender, JobID: "cam-b"}.Ref())
		if b.State != ledger.StateClosed || b.Charged.Cmp(ledger.Wei(9*price)) != 0 {
			t.Errorf("cam-b's hold: %s, charged %s; want closed, 9 gwei", b.State, b.Charged)
		}
		a := n.orchStream(t, "cam-a")
		waitFor(t, ctx, rowWei("ended", "cam-b", 9, b.Charged)+" && "+rowWei("ended", "cam-b", 10, b.MovedOut)+" && "+
			rowWei("streams", "cam-a", 6, a.Owed)+" && "+rowWei("streams", "cam-a", 10, a.Charged)+
			` && document.querySelector('[data-table="streams"] tr[data-key="cam-b"]') === null`)
		if got := eval[string](t, ctx, `document.querySelector('[data-table="ended"] tr[data-key="cam-b"]').cells[3].textContent`); got != "stopped by the gateway" {
			t.Errorf("cam-b ended: %q shown", got)
		}
		shot(t, ctx, "orchestrator-streams")

		// cam-b's statement: its hold's.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-table="ended"] tr[data-key="cam-b"] a`))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `document.body.dataset.loaded === "stream" && document.querySelector("h1").textContent === "Stream cam-b"`)
		st, err := n.orch.Ledger.Statement(bg, ledger.JobKey{Sender: sender, JobID: "cam-b"}.Ref(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]ledger.Amount{"credited": st.Credited, "drawn": st.Drawn, "charged": st.Charged, "released": st.Released} {
			if got := figureWei(t, ctx, id); got != want.String() {
				t.Errorf("cam-b's statement %s: console %s wei, ledger %s", id, got, want)
			}
		}
		if rows := eval[int](t, ctx, `document.querySelectorAll('[data-table="entries"] tbody tr[data-key]').length`); rows != len(st.Entries) {
			t.Errorf("cam-b's statement: %d entries shown, the ledger has %d", rows, len(st.Entries))
		}
		if got := eval[string](t, ctx, `document.querySelector('[data-figure="why"] .value').textContent`); got != "stopped by the gateway" {
			t.Errorf("cam-b's statement says it ended: %q", got)
		}
		shot(t, ctx, "orchestrator-stream")
		// A running stream's statement says what it owes now.
		page(t, ctx, orchConsole+"#/stream?sender="+sender+"&job=cam-a", "stream")
		waitFor(t, ctx, `document.querySelector("h1").textContent === "Stream cam-a"`)
		if got := figureWei(t, ctx, "owed"); got != a.Owed.String() {
			t.Errorf("cam-a's statement: owed %s shown, %s at the orchestrator", got, a.Owed)
		}
		clean(t, "orchestrator streams", problems)
	})

	t.Run("gateway streams", func(t *testing.T) {
		page(t, ctx, n.gw.AdminURL+"/console/#/streams", "streams")
		a, b := n.gwStream(t, "cam-a"), n.gwStream(t, "cam-b")
		if a.State != "running" || a.Owed == nil || b.State != "stopped" || a.Hold.Name != "~stream-cam-a" {
			t.Fatalf("the gateway's streams: %+v %+v", a, b)
		}
		if a.Owed.Cmp(ledger.Wei(9*price)) != 0 {
			t.Errorf("the books say cam-a owes %s after 9 s at 1 gwei/s", a.Owed)
		}
		// /admin/streams says the same.
		var listed []gateway.StreamStatus
		if resp, err := http.Get(n.gw.AdminURL + "/admin/streams"); err != nil {
			t.Fatal(err)
		} else {
			err = json.NewDecoder(resp.Body).Decode(&listed)
			resp.Body.Close()
			if err != nil || len(listed) != 1 || listed[0].ID != "cam-a" || listed[0].Owed == nil || listed[0].Owed.Cmp(*a.Owed) != 0 || listed[0].Hold != a.Hold {
				t.Errorf("/admin/streams: %+v %v; want cam-a owing %s", listed, err, a.Owed)
			}
		}
		ha, hb := account(t, n.gw.Ledger, a.Hold), account(t, n.gw.Ledger, b.Hold)
		for col, want := range map[int]ledger.Amount{5: ha.Balance, 6: *a.Owed, 7: a.Paid, 8: ha.Charged} {
			if got := cellWei(t, ctx, "streams", "cam-a", col); got != want.String() {
				t.Errorf("cam-a column %d: console %s wei, gateway %s", col, got, want)
			}
		}
		for col, want := range map[int]ledger.Amount{5: hb.Balance, 7: b.Paid, 8: hb.Charged} {
			if got := cellWei(t, ctx, "ended", "cam-b", col); got != want.String() {
				t.Errorf("cam-b column %d: console %s wei, gateway %s", col, got, want)
			}
		}
		if hb.Charged.Cmp(ledger.Wei(9*price)) != 0 {
			t.Errorf("the books charged cam-b %s, want what the orchestrator charged, 9 gwei", hb.Charged)
		}
		if got := eval[string](t, ctx, `document.querySelector('[data-table="ended"] tr[data-key="cam-b"]').cells[10].textContent`); got != "stopped: stopped by the client" {
			t.Errorf("cam-b's last event: %q", got)
		}
		// Time passing shows up by itself here too.
		n.clock.Advance(time.Second)
		waitFor(t, ctx, rowWei("streams", "cam-a", 6, *n.gwStream(t, "cam-a").Owed))
		shot(t, ctx, "gateway-streams")
		clean(t, "gateway streams", problems)
	})

	t.Run("a dry stream", func(t *testing.T) {
		page(t, ctx, orchConsole+"#/streams", "streams")
		// 40 s more is more than cam-a holds: the settlement cannot charge
		// it, and the stream is dry (stopped only when the grace passes).
		n.clock.Advance(40 * time.Second)
		if st := n.orch.SettleStreams(bg); st.Stopped != 0 {
			t.Fatalf("settlement stopped a stream: %+v", st)
		}
		a := n.orchStream(t, "cam-a")
		if a.DrySince.IsZero() || a.Balance.Sign() >= 0 {
			t.Fatalf("cam-a after 40 s more: %+v, want dry, owing more than it holds", a)
		}
		waitFor(t, ctx, rowWei("streams", "cam-a", 7, a.Balance)+
			` && document.querySelector('[data-table="streams"] tr[data-key="cam-a"]').cells[3].textContent.startsWith("dry since")`+
			` && document.querySelector('[data-figure="dry"] .value').textContent === "1"`)
		clean(t, "a dry stream", problems)
	})
	n.stop(t, "cam-a")
}
