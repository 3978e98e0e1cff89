package signer

import (
	"strings"
	"testing"

	"byoc/ledger"
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

// TestFirstCallIdempotencyKey: a first call (no state) sent again with the
// same Idempotency-Key — its answer was lost — is charged once, writes one
// usage event and gets the very same payment and state; another key is
// another payment; the same key for another amount is 409 and charges
// nothing; without a key a resent first call is charged again.
func TestFirstCallIdempotencyKey(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex(), Events: true}
		s, _ := newTestSigner(t, rc, func(c *Config) {
			c.Budget = b
			c.Nonces = &LedgerNonces{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
		})
		h := s.Handler()
		b.Grant(env.Ctx, "ida", costOf(t, 20), "g")
		pay := func(key string, px int64) (int, string) {
			hdr := []string{HeaderAuthID, "ida"}
			if key != "" {
				hdr = append(hdr, HeaderIdempotencyKey, key)
			}
			code, body, _ := post(t, h, "/generate-live-payment", rc.request(nil, "m", px, ""), hdr...)
			return code, body
		}
		spent := func() ledger.Amount {
			v, err := b.Read(env.Ctx, "ida")
			if err != nil {
				t.Fatal(err)
			}
			return v.Spent
		}
		code, body := pay("k1", 27648000)
		r1 := decodeOK(t, code, body)
		code, body = pay("k1", 27648000)
		r2 := decodeOK(t, code, body)
		if r1.Payment != r2.Payment || stateOf(t, r1.State).StateID != stateOf(t, r2.State).StateID {
			t.Errorf("the retried first call got another payment or state:\n%s\n%s", r1.Payment, r2.Payment)
		}
		if got := spent(); got.Cmp(costOf(t, 3)) != 0 {
			t.Errorf("spent %s after a first call and its retry, want %s", got, costOf(t, 3))
		}
		if evs, _ := env.Ledger.PendingOutbox(env.Ctx, 0, 10); len(evs) != 1 {
			t.Errorf("%d usage events, want 1", len(evs))
		}
		// The same key for another amount: refused, nothing charged.
		if code, body = pay("k1", 2*27648000); code != 409 || !strings.Contains(body, "idempotency_key_reused") {
			t.Errorf("the key reused for another amount: %d %s", code, body)
		}
		if got := spent(); got.Cmp(costOf(t, 3)) != 0 {
			t.Errorf("spent %s after the refused reuse, want %s", got, costOf(t, 3))
		}
		// Another key is another payment, with fresh nonces.
		code, body = pay("k2", 27648000)
		r3 := decodeOK(t, code, body)
		if n1, n3 := nonces(t, r1.Payment), nonces(t, r3.Payment); n3[0] <= n1[len(n1)-1] {
			t.Errorf("another key got nonces %v after %v", n3, n1)
		}
		// Without a key a resent first call is a new payment.
		for range 2 {
			code, body = pay("", 27648000)
			decodeOK(t, code, body)
		}
		if got := spent(); got.Cmp(costOf(t, 12)) != 0 {
			t.Errorf("spent %s, want %s (3 + 3 + 3 + 3)", got, costOf(t, 12))
		}
		// Another customer's first call with the same key is its own: its
		// own state, spend and event.
		if _, err := b.Grant(env.Ctx, "idb", costOf(t, 20), "gb"); err != nil { // grant keys are the signer's, not the customer's
			t.Fatal(err)
		}
		code, body, _ = post(t, h, "/generate-live-payment", rc.request(nil, "m", 27648000, ""), HeaderAuthID, "idb", HeaderIdempotencyKey, "k1")
		rb := decodeOK(t, code, body)
		if stateOf(t, rb.State).StateID == stateOf(t, r1.State).StateID {
			t.Errorf("two customers' first calls with one Idempotency-Key share state ID %s", stateOf(t, rb.State).StateID)
		}
		if v, err := b.Read(env.Ctx, "idb"); err != nil || v.Spent.Cmp(costOf(t, 3)) != 0 {
			t.Errorf("the other customer spent %v, %v; want %s", v.Spent, err, costOf(t, 3))
		}
	})
}
