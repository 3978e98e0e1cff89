package signer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/wire"
)

// TestReplicas: two signers with one key on one PostgreSQL ledger (two
// stores, two ledgers, as two processes would have), under concurrent
// load on one ticket session, each continuing states the other signed: no
// nonce is signed for two different tickets, every distinct ticket is
// charged exactly once (a call repeated on the other replica replays), and
// the customer's budget is never overspent.
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

	// tickets maps each signed nonce of the session to its signature: a
	// nonce signed for two different tickets would be a reuse. payments are
	// the distinct payments handed out.
	var (
		mu       sync.Mutex
		tickets  = map[uint32]string{}
		payments = map[string]bool{}
	)
	record := func(payment string) {
		p, err := wire.DecodePaymentHeader(payment)
		if err != nil {
			t.Fatal(err)
		}
		for _, tsp := range p.TicketSenderParams {
			sig := fmt.Sprintf("%x", tsp.Sig)
			if old, ok := tickets[tsp.SenderNonce]; ok && old != sig {
				t.Errorf("nonce %d signed for two different tickets", tsp.SenderNonce)
			}
			tickets[tsp.SenderNonce] = sig
		}
		payments[payment] = true
	}

	// Both replicas continue the same state, one after the other: the
	// second is the same call again and must hand out the same payment,
	// charged once (the shared counter replays its nonces and the spend).
	code, body, _ := post(t, signers[0].Handler(), "/generate-live-payment", rc.request(nil, "m", 12_000_000, ""), HeaderAuthID, "gina")
	start := decodeOK(t, code, body)
	record(start.Payment)
	for _, sg := range signers {
		code, body, _ := post(t, sg.Handler(), "/generate-live-payment", rc.request(&start.State, "m", 12_000_000, ""), HeaderAuthID, "gina")
		record(decodeOK(t, code, body).Payment)
	}

	// Then workers, each with a state of its own in the same ticket
	// session, alternate between the replicas carrying their states.
	const workers, each = 8, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st *StateSig
			for i := range each {
				h := signers[(w+i)%2].Handler()
				code, body, _ := post(t, h, "/generate-live-payment", rc.request(st, fmt.Sprintf("m%d", w), 12_000_000, ""), HeaderAuthID, "gina")
				mu.Lock()
				switch code {
				case http.StatusOK:
					var r RemotePaymentResponse
					json.Unmarshal([]byte(body), &r)
					record(r.Payment)
					st = &r.State
				case StatusInsufficientBalance:
				case StatusNoTickets:
					var e errorBody
					json.Unmarshal([]byte(body), &e)
					st = e.State
				default:
					t.Errorf("status %d: %s", code, body)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	v, err := budgets[1].Read(env.Ctx, "gina")
	if err != nil {
		t.Fatal(err)
	}
	// Every distinct ticket was charged exactly once; each payment is one
	// or two tickets, so the budget ends with less than two tickets' worth,
	// never below zero.
	if v.Spent.Cmp(costOf(t, int64(len(tickets)))) != 0 {
		t.Errorf("charged %s for %d distinct tickets (%s)", v.Spent, len(tickets), costOf(t, int64(len(tickets))))
	}
	if v.Balance.Sign() < 0 || v.Balance.Cmp(costOf(t, 2)) >= 0 {
		t.Errorf("budget %+v", v)
	}
	if pending, _ := env.Ledger.PendingOutbox(env.Ctx, 0, 1000); len(pending) != len(payments) {
		t.Errorf("%d usage events for %d payments", len(pending), len(payments))
	}
}
