package orchestrator_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/wire"
)

// A stream whose start is bound to a remote signer's customer draws its
// hold from that customer's pool (sender, capability, customer), as a job
// does; an update, stop or payment bound to another customer of the same
// sender, or to none, finds no stream (404), and the customer's own stops it.
func TestStreamCustomerPool(t *testing.T) {
	sn := startStreamNet(t, nil)
	c := sn.c
	bound := func(customer, request, params string) wire.JobRequest {
		jr := wire.JobRequest{ID: "cs", Request: request, Parameters: params, Capability: "live", TimeoutSeconds: 10}
		if err := wire.BindFor(&jr, time.Now().Add(time.Minute), customer); err != nil {
			t.Fatal(err)
		}
		return jr
	}
	start := bound("alice", `{"run":"live"}`, "{}")
	if a := sn.call(t, c, "start", start, c.Pay(c.Token("live", ""), 10), `{"params":{}}`); a.Status != http.StatusOK {
		t.Fatalf("start: %d %q", a.Status, a.Body)
	}
	ctx := context.Background()
	hold, err := sn.n.Ledger.Account(ctx, ledger.JobKey{Sender: c.Addr(), JobID: "cs"}.Ref())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := sn.n.Ledger.Account(ctx, ledger.PoolKey{Sender: c.Addr(), Capability: "live", Customer: "alice"}.Ref())
	if err != nil || hold.PoolID != pool.ID {
		t.Fatalf("the stream's hold is in pool %d, not alice's (%+v, %v)", hold.PoolID, pool, err)
	}
	for _, who := range []string{"bob", ""} {
		for _, route := range []string{"update", "payment", "stop"} {
			if a := sn.call(t, c, route, bound(who, details("cs"), "{}"), "", "{}"); a.Status != http.StatusNotFound {
				t.Errorf("%s bound to %q: %d %q, want 404", route, who, a.Status, a.Body)
			}
		}
	}
	if a := sn.call(t, c, "stop", bound("alice", details("cs"), "{}"), "", "{}"); a.Status != http.StatusOK {
		t.Errorf("alice's stop: %d %q", a.Status, a.Body)
	}
	testnet.Verify(t, sn.n)
}
