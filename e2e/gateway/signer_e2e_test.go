package gateway_test

import (
	"context"
	"strings"
	"testing"

	"byoc/ethsig"
	"byoc/gateway"
	"byoc/ledger"
	"byoc/orchestrator"
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

// customerPool is the orchestrator's pool of the signer's customer.
func customerPool(t *testing.T, o *orchestrator.Node, s *signer.Node, capability, customer string) ledger.Account {
	t.Helper()
	a, err := o.Ledger.Account(context.Background(), ledger.PoolKey{Sender: s.Address(), Capability: capability, Customer: customer}.Ref())
	if err != nil {
		t.Fatalf("%s's pool at the orchestrator: %v", customer, err)
	}
	return a
}

// TestRemoteSignerTwoCustomers: two gateways without keys, one per
// customer, pay through one byoc signer at one orchestrator. The
// orchestrator sees the signer as the sender and keys each job's pool by
// the customer bound into the signed request; what the signer charged each
// customer's budget is, to the wei, what the orchestrator credited that
// customer's pool. When bob's budget runs out his jobs stop (483, nothing
// more signed or credited) while alice's go on.
func TestRemoteSignerTwoCustomers(t *testing.T) {
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 1000, 4)
	s := startSigner(t, keyA)
	ctx := context.Background()
	if _, err := s.Budgets.Grant(ctx, "alice", ledger.Wei(100_000), "g-alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Budgets.Grant(ctx, "bob", ledger.Wei(6_000), "g-bob"); err != nil { // a first hold (5000) and one top-up
		t.Fatal(err)
	}
	gwA := startRemoteGateway(t, s, "alice", []string{o.URL})
	gwB := startRemoteGateway(t, s, "bob", []string{o.URL})
	if gwA.Address() != s.Address() {
		t.Fatalf("gateway pays as %s, signer is %s", gwA.Address(), s.Address())
	}
	run := func(gw *gateway.Node) jobResult {
		return submit(t, gw, jobSpec{capability: "reverse", body: "abc"})
	}
	mustOK(t, run(gwA))
	mustOK(t, run(gwB))
	mustOK(t, run(gwA))
	mustOK(t, run(gwB))
	// Bob's third job needs a ticket his budget can no longer pay.
	if r := run(gwB); r.status != 483 || !strings.Contains(r.body, "cannot cover") {
		t.Errorf("bob's third job: %d %s", r.status, r.body)
	}
	mustOK(t, run(gwA))
	idle(t, gwA)
	idle(t, gwB)

	for _, c := range []struct {
		name string
		jobs int
	}{{"alice", 3}, {"bob", 2}} {
		pool := customerPool(t, o, s, "reverse", c.name)
		// Tickets are credited to a job's hold, which draws from and releases
		// to its pool: the customer's totals are the pool's and its jobs'.
		credited, charged := pool.Credited, pool.Charged
		jobs, err := o.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, PoolID: pool.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			credited, charged = credited.Add(j.Credited), charged.Add(j.Charged)
		}
		v, err := s.Budgets.Read(ctx, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != c.jobs || credited.Sign() == 0 || v.Spent.Cmp(credited) != 0 {
			t.Errorf("%s: %d jobs; the signer charged %s, the orchestrator credited %s", c.name, len(jobs), v.Spent, credited)
		}
		if charged.Cmp(ledger.Wei(int64(1000*c.jobs))) != 0 || pool.Balance.Cmp(credited.Sub(charged)) != 0 {
			t.Errorf("%s: charged %s for %d jobs, pool %s", c.name, charged, c.jobs, pool.Balance)
		}
	}
	// Nothing landed in the signer's customer-less pool.
	if bal, _ := o.Ledger.Balance(ctx, ledger.PoolKey{Sender: s.Address(), Capability: "reverse"}.Ref()); !bal.IsZero() {
		t.Errorf("customer-less pool holds %s", bal)
	}
}
