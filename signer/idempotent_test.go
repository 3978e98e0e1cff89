package signer

import (
	"testing"

	"byoc/ledger/ledgertest"
)

// TestRetryIsIdempotent: with the shared nonce counter, a continuing call
// sent again with the same state (its answer was lost) is charged once,
// writes one usage event and gets the very same payment; the same state
// for another amount is a payment of its own, with fresh nonces, charged.
// Without the counter a retry gets fresh nonces and so is charged again.
func TestRetryIsIdempotent(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex(), Events: true}
		s, _ := newTestSigner(t, rc, func(c *Config) {
			c.Budget = b
			c.Nonces = &LedgerNonces{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
		})
		h := s.Handler()
		b.Grant(env.Ctx, "ida", costOf(t, 20), "g")
		pay := func(st *StateSig, px int64) (int, string) {
			code, body, _ := post(t, h, "/generate-live-payment", rc.request(st, "m", px, ""), HeaderAuthID, "ida")
			return code, body
		}
		code, body := pay(nil, 27648000)
		r1 := decodeOK(t, code, body)
		code, body = pay(&r1.State, 27648000)
		r2 := decodeOK(t, code, body)
		code, body = pay(&r1.State, 27648000)
		r3 := decodeOK(t, code, body)
		if r2.Payment != r3.Payment {
			t.Errorf("the retry got another payment:\n%s\n%s", r2.Payment, r3.Payment)
		}
		v, _ := b.Read(env.Ctx, "ida")
		if v.Spent.Cmp(costOf(t, 5)) != 0 { // 3 tickets, then 2 (once)
			t.Errorf("spent %s, want %s", v.Spent, costOf(t, 5))
		}
		if evs, _ := env.Ledger.PendingOutbox(env.Ctx, 0, 10); len(evs) != 2 {
			t.Errorf("%d usage events, want 2", len(evs))
		}
		// The same state for another amount is a payment of its own: fresh
		// nonces, charged again.
		code, body = pay(&r1.State, 2*27648000)
		r4 := decodeOK(t, code, body)
		if got := nonces(t, r4.Payment); len(got) == 0 || got[0] <= nonces(t, r2.Payment)[1] {
			t.Errorf("another amount got nonces %v after %v", got, nonces(t, r2.Payment))
		}
		if v, _ := b.Read(env.Ctx, "ida"); v.Spent.Cmp(costOf(t, int64(5+len(nonces(t, r4.Payment))))) != 0 {
			t.Errorf("spent %s after the other amount", v.Spent)
		}
	})
}

func TestRetryWithoutCounterIsChargedAgain(t *testing.T) {
	rc := loadRecorded(t)
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
	s, _ := newTestSigner(t, rc, func(c *Config) { c.Budget = b })
	h := s.Handler()
	b.Grant(env.Ctx, "ida", costOf(t, 20), "g")
	code, body, _ := post(t, h, "/generate-live-payment", rc.request(nil, "m", 27648000, ""), HeaderAuthID, "ida")
	r1 := decodeOK(t, code, body)
	for range 2 {
		code, body, _ := post(t, h, "/generate-live-payment", rc.request(&r1.State, "m", 27648000, ""), HeaderAuthID, "ida")
		decodeOK(t, code, body)
	}
	if v, _ := b.Read(env.Ctx, "ida"); v.Spent.Cmp(costOf(t, 7)) != 0 { // 3, then 2 and 2 with fresh nonces
		t.Errorf("spent %s, want %s", v.Spent, costOf(t, 7))
	}
}

// TestRetryKeyIsTheState: two clients whose states share a state ID and
// sequence number (8 random hex digits can collide) are two calls: each is
// charged for its own tickets, none gets the other's replay.
func TestRetryKeyIsTheState(t *testing.T) {
	rc := loadRecorded(t)
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
	s, _ := newTestSigner(t, rc, func(c *Config) {
		c.Budget = b
		c.Nonces = &LedgerNonces{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
	})
	h := s.Handler()
	b.Grant(env.Ctx, "ida", costOf(t, 20), "g")
	code, body, _ := post(t, h, "/generate-live-payment", rc.request(nil, "m", 27648000, ""), HeaderAuthID, "ida")
	first := stateOf(t, decodeOK(t, code, body).State)
	twin := first
	twin.Balance = "0" // another client's state under the same ID
	a, _ := seal(rc.key, &first)
	bb, _ := seal(rc.key, &twin)
	var got []string
	for _, st := range []StateSig{a, bb} {
		code, body, _ := post(t, h, "/generate-live-payment", rc.request(&st, "m", 27648000, ""), HeaderAuthID, "ida")
		got = append(got, decodeOK(t, code, body).Payment)
	}
	if got[0] == got[1] {
		t.Error("the second client got the first one's payment")
	}
	// 3 tickets, then 2 for the first state and 3 for its twin.
	if v, _ := b.Read(env.Ctx, "ida"); v.Spent.Cmp(costOf(t, 8)) != 0 {
		t.Errorf("spent %s, want %s", v.Spent, costOf(t, 8))
	}
}
