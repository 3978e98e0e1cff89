package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
)

// An orchestrator that goes away mid-stream: the gateway moves the stream
// to the other orchestrator offering the capability, under the same
// stream ID and client URLs; each orchestrator's hold is its own, the dead
// one's closes into its pool (here: the orchestrator shut down; its hold
// expires), and the gateway's books close the first session's hold and
// open one for the second.
func TestStreamMovesWhenItsOrchestratorGoes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var orchs []*orchestrator.Node
	for range 2 {
		o := startOrch(t, func(c *orchestrator.NodeConfig) {
			c.Orchestrator.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
		})
		liveWorker(t, o, 4)
		orchs = append(orchs, o)
	}
	gw := startGateway(t, testnet.KeyA, []string{orchs[0].URL, orchs[1].URL}, func(c *gateway.NodeConfig) {
		c.Gateway.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	})
	startLive(t, ctx, gw, "mover")
	first := gw.Streams()[0].Orchestrator
	dead, alive := orchs[0], orchs[1]
	if first == orchs[1].URL {
		dead, alive = orchs[1], orchs[0]
	}
	if first != dead.URL {
		t.Fatalf("the stream runs at %q, not at one of ours", first)
	}
	deadAddr := dead.Address.Hex()
	closeOrch(t, dead, gw)

	// The next top-up round finds it unreachable (or its events channel
	// closed already) and moves the stream.
	gw.PayStreams(ctx)
	var got gateway.StreamStatus
	for _, s := range gw.Streams() {
		if s.ID == "mover" {
			got = s
		}
	}
	if got.State != "running" || got.Orchestrator != alive.URL {
		t.Fatalf("after its orchestrator went: %+v, want running at %s", got, alive.URL)
	}
	// The move pays the start (10 s); when the closed events channel
	// moved the stream before the round, the round also topped it up
	// (70 s): which came first is the gateway's race, not the books'.
	orchSt := statement(t, alive, gw.Address(), "mover")
	if c := amount(t, orchSt.Credited); orchSt.Account.State != ledger.StateOpen || (c != 10000 && c != 80000) {
		t.Errorf("the new orchestrator's hold: %s credited %s; want open, 10000 (or 80000 with a top-up)", orchSt.Account.State, orchSt.Credited)
	}
	books := func(orchAddr string) ledger.Statement {
		st, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: orchAddr, JobID: "~stream-mover"}.Ref(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := books(deadAddr); st.Account.State != ledger.StateClosed {
		t.Errorf("the gateway's hold at the gone orchestrator: %s, want closed", st.Account.State)
	}
	if st := books(alive.Address.Hex()); st.Account.State != ledger.StateOpen || st.Credited.Cmp(orchSt.Credited) != 0 {
		t.Errorf("the gateway's hold at the new orchestrator: %s credited %s, want the orchestrator's %s", st.Account.State, st.Credited, orchSt.Credited)
	}
	stop, _ := http.NewRequest(http.MethodPost, gw.URL+"/process/stream/mover/stop", nil)
	resp, err := http.DefaultClient.Do(stop)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stop: %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"stopped":true}` {
		t.Errorf("stop answered %q", b)
	}
	if st := statement(t, alive, gw.Address(), "mover"); st.Account.State != ledger.StateClosed {
		t.Errorf("the new orchestrator's hold after stop: %s", st.Account.State)
	}
	// Each session's hold in the books closes under its own key: the
	// second must not collide with the first's (one stream ID, two
	// orchestrators).
	if st := books(alive.Address.Hex()); st.Account.State != ledger.StateClosed {
		t.Errorf("the gateway's hold at the new orchestrator after stop: %s, want closed", st.Account.State)
	}
}

// A stream moved A → B never moves back to A (the gateway allows two moves
// a minute): A's ledger keeps the stream ID as a job ID used (the stream is
// the job), and the books' hold for it at A is closed under the same key,
// so a second session there could open no hold on either side while its
// start payment went into A's pool. Here A's stream runs dry (A stops it),
// it moves to B, B's runs dry too: the stream is lost, A is not asked
// again, and both orchestrators' ledgers agree with the books. On both
// stores: every role's ledger on each.
func TestStreamNeverMovesBackToAnOrchestratorItLeft(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { testStreamNeverMovesBack(t, store) })
	}
}

func testStreamNeverMovesBack(t *testing.T, store string) {
	dsn := func() string { return "" }
	if store == "postgres" {
		pg := ledgertest.PostgresDSN(t)
		dsn = func() string { return ledgertest.PostgresSchema(t, pg) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clock := ledger.NewManualClock(time.Now())
	var orchs []*orchestrator.Node
	workers := map[string]*e2eStreamWorker{}
	for range 2 {
		orchDSN := dsn()
		o := startOrch(t, func(c *orchestrator.NodeConfig) {
			c.Clock = clock
			c.LedgerDSN = orchDSN
			c.Orchestrator.StreamGrace = time.Second
			c.Orchestrator.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
		})
		w := liveWorker(t, o, 4)
		orchs = append(orchs, o)
		workers[o.URL] = w
	}
	gwDSN := dsn()
	gw := startGateway(t, testnet.KeyA, []string{orchs[0].URL, orchs[1].URL}, func(c *gateway.NodeConfig) {
		c.Clock = clock
		c.LedgerDSN = gwDSN
		c.Gateway.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	})
	startLive(t, ctx, gw, "back")
	status := func() gateway.StreamStatus { return streamStatus(gw, "back") }
	a, b := orchs[0], orchs[1]
	if status().Orchestrator == b.URL {
		a, b = b, a
	}
	// runDry lets the stream's hold at o run out: o stops it, which the
	// gateway reads on the stream's events channel (and moves it).
	runDry := func(o *orchestrator.Node) {
		t.Helper()
		clock.Advance(100 * time.Second)
		o.SettleStreams(ctx)
		clock.Advance(2 * time.Second)
		if st := o.SettleStreams(ctx); st.Stopped != 1 {
			t.Fatalf("%s stopped %d streams, want 1", o.URL, st.Stopped)
		}
	}
	runDry(a)
	testnet.Eventually(t, "the stream to move to the other orchestrator", func() bool {
		s := status()
		return s.State == "running" && s.Orchestrator == b.URL
	})
	aAfter := books(t, a.Ledger, gw.Address(), "live")
	runDry(b)
	testnet.Eventually(t, "the stream to be lost", func() bool { return status().State == "lost" })

	if n := workers[a.URL].count("/stream/start", "back"); n != 1 {
		t.Errorf("A's worker got %d starts of the stream, want 1", n)
	}
	if got := books(t, a.Ledger, gw.Address(), "live"); got != aAfter {
		t.Errorf("A's ledger for the gateway moved after the stream left it: %+v, then %+v", aAfter, got)
	}
	sr, err := http.Get(gw.URL + "/process/stream/back/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Events []gateway.StreamEvent }
	json.NewDecoder(sr.Body).Decode(&st)
	sr.Body.Close()
	if len(st.Events) == 0 {
		t.Fatalf("status: no events")
	}
	for _, e := range st.Events {
		if e.Type == "start_error" && strings.Contains(e.Message, a.URL) {
			t.Errorf("the gateway asked A again: %+v", e)
		}
	}
	for _, o := range orchs {
		if st := statement(t, o, gw.Address(), "back"); st.Account.State != ledger.StateClosed {
			t.Errorf("%s's hold: %s, want closed", o.URL, st.Account.State)
		}
		agree(t, gw, o, "live")
	}
	verifyLedger(t, "gateway", gw.Ledger, gw.Store)
}
