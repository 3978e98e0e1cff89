package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
)

// An orchestrator that dies mid-stream bills the stream exactly what its
// settlements committed before the crash: the time since the last one
// (here 3 s) is never charged, the hold's balance — the start payment and
// pool draw, plus any top-up credited, less the settled charges — expires
// into the pool after its TTL, and nothing is debited after that release:
// neither the restarted node (which resumes no stream) nor a payment made
// before the crash and delivered after it moves the hold again.
func TestStreamCrashBillsOnlySettledTime(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		dir := t.TempDir()
		clock := ledger.NewManualClock(time.Now())
		cfg := restartableStreams(tweak, clock)
		sw := &streamWorker{}
		srv := httptest.NewServer(http.HandlerFunc(sw.handle))
		t.Cleanup(srv.Close)
		start := func() *orchestrator.Node {
			n := testnet.StartNode(t, dir, cfg)
			body, _ := json.Marshal(wire.ExternalCapability{Name: "live", URL: srv.URL + "/live", Capacity: 2, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei"})
			req, _ := http.NewRequest(http.MethodPost, n.URL+"/capability/register", bytes.NewReader(body))
			req.Header.Set("Authorization", testnet.Secret)
			resp, err := testnet.Insecure.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("register: %v %v", resp, err)
			}
			resp.Body.Close()
			return n
		}
		n := start()
		sn := &streamNet{n: n, clock: clock, w: sw, c: testnet.NewClient(t, n.URL, testnet.KeyA)}
		c := sn.c
		if a := sn.start(t, c, "crash", 10, "{}"); a.Status != http.StatusOK {
			t.Fatalf("start: %d %q", a.Status, a.Body)
		}
		clock.Advance(5 * time.Second)
		if st := n.SettleStreams(context.Background()); st.Charged != 1 {
			t.Fatalf("settle at 5 s: %+v", st)
		}
		clock.Advance(3 * time.Second) // 3 s run, never settled
		late := c.Pay(c.Token("live", "crash"), 5)
		n.Close() // the crash: nothing runs at stop

		n2 := start()
		sn.n = n2
		c2 := testnet.NewClient(t, n2.URL, testnet.KeyA)
		hold := ledger.JobKey{Sender: c.Addr(), JobID: "crash"}.Ref()
		if got := testnet.Balance(t, n2, hold); got != 5000 {
			t.Errorf("hold after the restart: %d, want 10000 - the 5000 settled", got)
		}
		clock.Advance(20 * time.Second) // the hold's TTL since its last charge
		if _, err := n2.Ledger.ExpireJobs(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := testnet.Statement(t, n2, c.Addr(), "crash")
		if st.Account.State != ledger.StateExpired || testnet.Amount(st.Charged) != 5000 || testnet.Amount(st.Released) != 5000 {
			t.Errorf("the dead stream's hold: %s, charged %s, released %s; want expired, the 5 s settled charged, 5000 back in the pool",
				st.Account.State, st.Charged, st.Released)
		}
		// After the release: a settlement batch, the payment made before
		// the crash, a stop: none moves the hold.
		n2.SettleStreams(context.Background())
		if a := sn.call(t, c2, "payment", wire.JobRequest{Request: details("crash"), TimeoutSeconds: 70}, late, ""); a.Status != http.StatusNotFound {
			t.Errorf("payment after the release: %d %q, want 404", a.Status, a.Body)
		}
		if a := sn.call(t, c2, "stop", wire.JobRequest{Request: details("crash")}, "", "{}"); a.Status != http.StatusNotFound {
			t.Errorf("stop after the release: %d %q, want 404", a.Status, a.Body)
		}
		if st2 := testnet.Statement(t, n2, c.Addr(), "crash"); len(st2.Entries) != len(st.Entries) || st2.Charged.Cmp(st.Charged) != 0 {
			t.Errorf("the hold moved after its release: %d entries, then %d (charged %s)", len(st.Entries), len(st2.Entries), st2.Charged)
		}
		if got := testnet.Balance(t, n2, testnet.Pool(c.Addr(), "live")); got != 5000 {
			t.Errorf("pool %d, want 5000", got)
		}
		testnet.Verify(t, n2)
	})
}

// A stream whose hold expired under a live node (no settlement committed
// for its TTL: the ledger was unreachable, say) is stopped at the next
// batch, reason hold_expired, with no debit: the expiry released what the
// hold held, and the stop writes nothing to it.
func TestStreamNoDebitAfterExpiry(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		sn := startStreamNet(t, func(c *orchestrator.NodeConfig) {
			tweak(c)
			c.Orchestrator.HoldTTLMargin = 10 * time.Second
		})
		c := sn.c
		if a := sn.start(t, c, "gone", 10, "{}"); a.Status != http.StatusOK {
			t.Fatalf("start: %d %q", a.Status, a.Body)
		}
		sn.clock.Advance(5 * time.Second)
		if st := sn.n.SettleStreams(context.Background()); st.Charged != 1 {
			t.Fatalf("settle at 5 s: %+v", st)
		}
		// Its TTL (5 s settle + 10 s grace + 10 s margin) passes unsettled.
		sn.clock.Advance(30 * time.Second)
		if _, err := sn.n.Ledger.ExpireJobs(context.Background()); err != nil {
			t.Fatal(err)
		}
		before := testnet.Statement(t, sn.n, c.Addr(), "gone")
		if before.Account.State != ledger.StateExpired || testnet.Amount(before.Charged) != 5000 || testnet.Amount(before.Released) != 5000 {
			t.Fatalf("the expired hold: %s charged %s released %s", before.Account.State, before.Charged, before.Released)
		}
		if st := sn.n.SettleStreams(context.Background()); st.Stopped != 1 || st.Charged != 0 {
			t.Errorf("the batch after the expiry: %+v, want the stream stopped, nothing charged", st)
		}
		if err := sn.n.WaitStreamStops(context.Background()); err != nil {
			t.Fatal(err)
		}
		calls := sn.w.callsFor("gone")
		if len(calls) != 2 || calls[1].Path != "/live/stream/stop" || calls[1].Body != "hold expired" {
			t.Errorf("the worker's calls: %+v, want its start and a stop saying the hold expired", calls)
		}
		if a := sn.call(t, c, "payment", wire.JobRequest{Request: details("gone"), TimeoutSeconds: 70}, c.Pay(c.Token("live", ""), 5), ""); a.Status != http.StatusNotFound {
			t.Errorf("payment after the expiry: %d %q, want 404", a.Status, a.Body)
		}
		after := testnet.Statement(t, sn.n, c.Addr(), "gone")
		if len(after.Entries) != len(before.Entries) || after.Charged.Cmp(before.Charged) != 0 || after.Account.State != ledger.StateExpired {
			t.Errorf("the hold moved after its release: %d entries then %d, charged %s then %s", len(before.Entries), len(after.Entries), before.Charged, after.Charged)
		}
		testnet.Verify(t, sn.n)
	})
}
