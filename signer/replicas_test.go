package signer

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
)

// TestReplicas: two signers with one key on one PostgreSQL ledger (two
// stores, two ledgers, as two processes would have), under concurrent
// load on the same ticket session, each continuing from states the other
// signed: no nonce is signed twice, and the customer's budget is spent
// exactly, never overspent.
func TestReplicas(t *testing.T) {
	rc := loadRecorded(t)
	env := ledgertest.NewEnv(t, ledgertest.Postgres)
	store2 := env.Open()
	l2 := ledger.New(store2, ledger.Options{Clock: env.Clock})
	t.Cleanup(func() { l2.Close(); store2.Close() })

	var signers []*Signer
	var budgets []*Budgets
	for _, l := range []*ledger.Ledger{env.Ledger, l2} {
		b := &Budgets{Ledger: l, Owner: rc.key.Address().Hex(), Events: true}
		s, _ := newTestSigner(t, rc, func(c *Config) {
			c.Budget = b
			c.Nonces = &LedgerNonces{Ledger: l, Owner: rc.key.Address().Hex()}
		})
		signers, budgets = append(signers, s), append(budgets, b)
	}
	const k = 40 // tickets the budget covers; the load asks for more
	if _, err := budgets[0].Grant(env.Ctx, "gina", costOf(t, k), "g"); err != nil {
		t.Fatal(err)
	}

	// Every worker continues from one state, so both replicas are asked
	// for the session's next nonces from the same point.
	code, body, _ := post(t, signers[0].Handler(), "/generate-live-payment", rc.request(nil, "m", 12_000_000, ""), HeaderAuthID, "gina")
	start := decodeOK(t, code, body)
	used := map[uint32]int{}
	for _, n := range nonces(t, start.Payment) {
		used[n]++
	}
	// First both replicas continue the same state, one after the other:
	// each must take nonces the other did not.
	for _, sg := range signers {
		code, body, _ := post(t, sg.Handler(), "/generate-live-payment", rc.request(&start.State, "m", 12_000_000, ""), HeaderAuthID, "gina")
		for _, n := range nonces(t, decodeOK(t, code, body).Payment) {
			used[n]++
		}
	}
	const workers, each = 8, 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		paid   = 3
		others int
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &start.State
			for i := range each {
				h := signers[(w+i)%2].Handler() // alternate replicas, carrying the state across
				code, body, _ := post(t, h, "/generate-live-payment", rc.request(st, "m", 12_000_000, ""), HeaderAuthID, "gina")
				mu.Lock()
				switch code {
				case http.StatusOK:
					var r RemotePaymentResponse
					json.Unmarshal([]byte(body), &r)
					for _, n := range nonces(t, r.Payment) {
						used[n]++
					}
					paid++
					st = &r.State
				case StatusInsufficientBalance, StatusNoTickets:
					others++
					if code == StatusNoTickets {
						var e errorBody
						json.Unmarshal([]byte(body), &e)
						st = e.State
					}
				default:
					t.Errorf("status %d: %s", code, body)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for n, c := range used {
		if c > 1 {
			t.Errorf("nonce %d signed %d times", n, c)
		}
	}
	v, err := budgets[1].Read(env.Ctx, "gina")
	if err != nil {
		t.Fatal(err)
	}
	// Each payment is one or two tickets (the fee is about one ticket's EV):
	// the budget ends with less than two tickets' worth, never below zero.
	if v.Balance.Sign() < 0 || v.Balance.Cmp(costOf(t, 2)) >= 0 || v.Spent.Cmp(costOf(t, int64(len(used)))) != 0 {
		t.Errorf("budget %+v after %d payments with %d nonces", v, paid, len(used))
	}
	if pending, _ := env.Ledger.PendingOutbox(env.Ctx, 0, 1000); len(pending) != paid {
		t.Errorf("%d usage events for %d payments", len(pending), paid)
	}
}
