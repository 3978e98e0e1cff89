package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/ledger"
	"byoc/signer"
	"byoc/worker"
)

// startSigner starts a byoc signer with budgets enforced on loopback,
// signing with key.
func startSigner(t *testing.T, key string) *signer.Node {
	t.Helper()
	k, err := ethsig.KeySignerFromHex(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := signer.StartNode(context.Background(), signer.NodeConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Budgets: true,
		Signer: signer.Config{Key: k, Logger: testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		verifyLedger(t, "signer", n.Ledger, n.Budgets.Ledger.Store())
		n.Close()
	})
	return n
}

// startRemoteGateway starts a gateway that holds no key and pays through
// the signer as customer.
func startRemoteGateway(t *testing.T, s *signer.Node, customer string, orchs []string) *gateway.Node {
	t.Helper()
	remote, err := gateway.NewRemoteSigner(context.Background(), s.URL, map[string]string{signer.HeaderAuthID: customer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startGateway(t, "", orchs, func(cfg *gateway.NodeConfig) { cfg.Gateway.Remote = remote })
}

// TestRemoteSignerPays: a gateway without a key runs paid jobs through a
// byoc signer. The orchestrator sees the signer as the sender and the
// customer in the signed binding; what the signer charged the customer's
// budget is, to the wei, what the orchestrator credited the signer's pool;
// the gateway's books agree with the orchestrator. A second customer
// without a budget gets no job run and costs nothing.
func TestRemoteSignerPays(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	s := startSigner(t, keyA)
	ctx := context.Background()
	if _, err := s.Budgets.Grant(ctx, "alice", ledger.Wei(20_000), "g1"); err != nil {
		t.Fatal(err)
	}
	gw := startRemoteGateway(t, s, "alice", []string{o.URL})
	if gw.Address() != s.Address() {
		t.Fatalf("gateway pays as %s, signer is %s", gw.Address(), s.Address())
	}
	for i := range 3 {
		r := submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
		mustOK(t, r)
		if r.body != "cba" {
			t.Fatalf("job %d: %q", i, r.body)
		}
	}
	side := agree(t, gw, o, "reverse")
	v, err := s.Budgets.Read(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if side.credited == 0 || v.Spent.Cmp(ledger.Wei(side.credited)) != 0 {
		t.Errorf("signer charged alice %s, the orchestrator credited %d", v.Spent, side.credited)
	}

	// Bob has no budget: refused before anything is signed; nothing more
	// reaches the orchestrator.
	gwBob := startRemoteGateway(t, s, "bob", []string{o.URL})
	r := submit(t, gwBob, jobSpec{capability: "reverse", body: "abc"})
	if r.status == http.StatusOK || !strings.Contains(r.body, "483") {
		t.Errorf("bob's job: %d %s", r.status, r.body)
	}
	if again := books(t, o.Ledger, s.Address(), "reverse"); again.credited != side.credited {
		t.Errorf("bob's refused job credited the orchestrator: %+v, was %+v", again, side)
	}
	if v, _ := s.Budgets.Read(ctx, "bob"); !v.Spent.IsZero() {
		t.Errorf("bob spent %s", v.Spent)
	}
}
