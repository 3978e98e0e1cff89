package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
)

// fixedSeeds reads the same byte forever: an orchestrator drawing its
// ticket seeds from it sends the same params (same recipientRandHash) for
// the same sender, price and block.
type fixedSeeds struct{}

func (fixedSeeds) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0x5a
	}
	return len(p), nil
}

// An orchestrator that sends the same ticket params again (here every
// token of the stream: the start's and each top-up's) has their nonces
// recorded: the gateway's tickets continue after the nonces it already
// sent under those params, so every top-up is credited in full — none is
// refused as seen and silently credited 0 — and both books agree. On
// every store: the embedded journal, plain SQLite and PostgreSQL, each
// for both roles.
func TestStreamTopUpsOnRepeatedParams(t *testing.T) {
	for _, store := range []string{"journal", "sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { testStreamTopUpsOnRepeatedParams(t, store) })
	}
}

func testStreamTopUpsOnRepeatedParams(t *testing.T, store string) {
	// The clock stands still: one offchain block, so the params repeat.
	clock, o, gw := streamNodes(t, store, func(c *orchestrator.NodeConfig) { c.TicketSeeds = fixedSeeds{} },
		func(o *orchestrator.Node) { liveWorker(t, o, 4) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := gwClient(t, ctx, gw)
	status, out := client(http.MethodPost, "/process/stream/start", `{"stream_id":"same","params":"{}"}`,
		&wire.JobRequest{Request: `{}`, Parameters: "{}", Capability: "live", TimeoutSeconds: 10})
	if status != http.StatusOK || gw.StreamState(ctx, "same") != "running" {
		t.Fatalf("start: %d %s", status, out)
	}
	// Held 10 s, below 120 s: each round pays 70 s, from the same params
	// as the start's.
	for round := range 2 {
		if paid, failed := gw.PayStreams(ctx); paid != 1 || failed != 0 {
			t.Fatalf("top-up round %d: paid %d failed %d", round+1, paid, failed)
		}
	}
	if n := metric(t, gw, "byoc_gateway_stream_topups_uncredited_total"); n != 0 {
		t.Errorf("%v top-ups credited nothing by the orchestrator (their nonces repeated the start's)", n)
	}
	orchSt := statement(t, o, gw.Address(), "same")
	if got := amount(t, orchSt.Credited); got != 10000+2*70000 {
		t.Errorf("the orchestrator credited the stream %d, want 150000 (10 s started, 2 × 70 s topped up)", got)
	}
	gwSt, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: o.Address.Hex(), JobID: gateway.StreamHoldJobID("same")}.Ref(), 0)
	if err != nil || amount(t, gwSt.Credited)-amount(t, gwSt.Charged) != amount(t, orchSt.Credited) {
		t.Errorf("the gateway's books of the stream: credited %s, written off %s (%v); the orchestrator credited %s",
			gwSt.Credited, gwSt.Charged, err, orchSt.Credited)
	}
	clock.Advance(3 * time.Second)
	if status, out = client(http.MethodPost, "/process/stream/same/stop", "bye", nil); status != http.StatusOK {
		t.Fatalf("stop: %d %s", status, out)
	}
	agree(t, gw, o, "live")
}
