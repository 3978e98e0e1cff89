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
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/wire"
)

// A job's worker may start while its admission is being committed, but
// nothing of its answer goes out unless that commit holds: when it fails,
// the job is answered 500, the worker's output is dropped, and the ledger
// is as before. Once commits work again, the same payment admits a job.
func TestAnswerWaitsForTheAdmissionCommit(t *testing.T) {
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	store := &ledgertest.FailingCommits{Store: env.Store}
	l := ledger.New(store, ledger.Options{Clock: ledger.SystemClock{}})
	t.Cleanup(func() { l.Close() })
	blocks, err := pm.NewOffchainBlocks(time.Now, 0, common.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	rc := pm.RecipientConfig{Address: common.HexToAddress("0x00000000000000000000000000000000000000b1"), Blocks: blocks, TicketEV: testnet.TestEV}
	copy(rc.Secret[:], "speculative-admission-test-secret")
	recipient, err := pm.NewRecipient(rc)
	if err != nil {
		t.Fatal(err)
	}
	srv := testnet.ServeOrchestrator(t, orchestrator.Config{Secret: testnet.Secret, Ledger: l, Recipient: recipient, MinCompute: 5 * time.Second})
	w := testnet.StartWorker(t)
	testnet.Register(t, srv.URL, w, workerstub.Reverse, "reverse", 1000, 4)
	c := testnet.NewClient(t, srv.URL, testnet.KeyA)
	payment := c.Pay(c.Token("reverse", ""), 6)
	before, err := ledger.Verify(context.Background(), env.Store, ledger.VerifyOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}

	store.Fail.Store(true)
	r := c.Job(testnet.JobSpec{Capability: "reverse", ID: "lost", Body: "abc", Payment: payment})
	if r.Status != http.StatusInternalServerError || strings.Contains(r.Body, "cba") || r.Header.Get(wire.HeaderPaymentCredited) != "" {
		t.Fatalf("job whose admission was not committed: %d %q (Livepeer-Payment-Credited %q)", r.Status, r.Body, r.Header.Get(wire.HeaderPaymentCredited))
	}
	// The worker did run it (while the commit was in flight): that is the
	// path under test.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Handler().WaitFor(ctx, func(s workerstub.Stats) bool { return s.Served == 1 && s.InFlight == 0 }); err != nil {
		t.Fatalf("the worker did not run the job while its admission was committed: %v", err)
	}
	after, err := ledger.Verify(context.Background(), env.Store, ledger.VerifyOptions{Now: time.Now()})
	if err != nil || len(after.Problems) > 0 || after.Entries != before.Entries || after.Accounts != before.Accounts {
		t.Fatalf("the ledger changed: %+v -> %+v (%v)", before, after, err)
	}

	store.Fail.Store(false)
	r = c.Job(testnet.JobSpec{Capability: "reverse", ID: "kept", Body: "abc", Payment: payment})
	if r.Status != http.StatusOK || r.Body != "cba" || r.Header.Get(wire.HeaderPaymentCredited) != "6000" {
		t.Fatalf("the same payment once commits work: %d %q (credited %q)", r.Status, r.Body, r.Header.Get(wire.HeaderPaymentCredited))
	}
}
