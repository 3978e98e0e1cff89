package orchestrator_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/internal/testnet"
	"byoc/internal/workerstub"
	"byoc/ledger"
	"byoc/orchestrator"
)

// The node forgets the seen nonces of ticket sessions once their params
// have been expired for 100 blocks, and a payment replayed after that is
// still refused: its params expired, so it earns nothing.
func TestNodeForgetsExpiredTicketSessions(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		c.ForgetSessionsEvery = 10 * time.Millisecond
	})
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, n.URL, testnet.KeyA)
	tok := c.Token("reverse", "")
	payment := c.Pay(tok, 6)
	if r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "first", Body: "a", Payment: payment}); r.Status != http.StatusOK {
		t.Fatalf("job: %d %s", r.Status, r.Body)
	}
	session := common.BytesToHash(tok.TicketParams.RecipientRandHash).Hex()
	sessions := func() int {
		var got map[string]ledger.SessionState
		err := n.Store.View(context.Background(), func(tx ledger.ReadTx) (err error) {
			got, err = tx.NonceState(context.Background(), []ledger.NonceQuery{{Session: session}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got[session].Count
	}
	if k := sessions(); k != 6 {
		t.Fatalf("the session holds %d nonces, want 6", k)
	}

	// 40 blocks of validity plus the 100-block margin, at 12 s a block,
	// is 28 minutes.
	clock.Advance(29 * time.Minute)
	testnet.Eventually(t, "the expired session forgotten", func() bool { return sessions() == 0 })

	before := testnet.Balance(t, n, testnet.Pool(c.Addr(), "reverse"))
	r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "replay", Body: "a", Payment: payment, Unbound: true})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "Invalid payment") {
		t.Fatalf("replay after forgetting: %d %s", r.Status, r.Body)
	}
	if after := testnet.Balance(t, n, testnet.Pool(c.Addr(), "reverse")); after != before {
		t.Fatalf("the replay changed the pool from %d to %d", before, after)
	}
	testnet.Verify(t, n)
}
