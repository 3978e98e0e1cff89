package chain

import (
	"errors"
	"math/big"
	"testing"

	"byoc/chain/testchain"
	"byoc/ledger/ledgertest"
)

// TestStateSenderChecks: params carry the chain's last initialized round
// and its hash; sender checks read deposit, claimable reserve, unlocks and
// unredeemed winners; the cache is refreshed by the broker's events and by
// a new round, not before.
func TestStateSenderChecks(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		x.must(x.tc.Hook(x.ctx, "setPoolSize", big.NewInt(2)))
		s := &State{Client: x.client, Me: x.orch.Address(), Ledger: x.env.Ledger, MaxFloatPerSender: eth(3)}
		x.must(s.Refresh(x.ctx))
		round, err := x.client.LastInitializedRound(x.ctx)
		x.must(err)
		hash, err := x.client.BlockHashForRound(x.ctx, round)
		x.must(err)
		if r, h := s.CreationRound(); r != round.Int64() || h != hash || s.LastSeenL1Block().Uint64() != x.head() {
			t.Fatalf("params round %d %s, block %s; chain %s %s, %d", r, h.Hex(), s.LastSeenL1Block(), round, hash.Hex(), x.head())
		}
		if s.GasPrice().Sign() <= 0 {
			t.Fatalf("gas price %s", s.GasPrice())
		}
		snd := x.snd.Address()
		if err := s.ValidateSender(snd); !errors.Is(err, ErrSenderUnfunded) {
			t.Fatalf("unfunded sender: %v", err)
		}
		x.fund(eth(1), eth(4))
		if err := s.ValidateSender(snd); !errors.Is(err, ErrSenderUnfunded) {
			t.Fatalf("cached until the next refresh: %v", err)
		}
		x.must(s.Refresh(x.ctx)) // DepositFunded, ReserveFunded
		if err := s.ValidateSender(snd); err != nil {
			t.Fatalf("funded sender: %v", err)
		}
		// deposit 1 + reserve 4 / pool 2 = 3, at the cap of 3.
		if mf, err := s.MaxFloat(snd); err != nil || mf.Cmp(eth(3)) != 0 {
			t.Fatalf("max float %v %v, want 3 ETH", mf, err)
		}
		x.queue(x.ticket(eth(2), 1))
		if mf, err := s.MaxFloat(snd); err != nil || mf.Cmp(eth(1)) != 0 {
			t.Fatalf("max float with a 2 ETH winner pending %v %v, want 1 ETH", mf, err)
		}
		x.must(x.tc.AsSender(x.ctx, x.sndKey, nil, "unlock"))
		x.must(s.Refresh(x.ctx)) // Unlock
		if err := s.ValidateSender(snd); !errors.Is(err, ErrSenderUnlocking) {
			t.Fatalf("unlocking sender: %v", err)
		}
		x.must(x.tc.NextRound(x.ctx))
		x.must(s.Refresh(x.ctx))
		if r, _ := s.CreationRound(); r != round.Int64()+1 {
			t.Fatalf("round %d after a new round, want %d", r, round.Int64()+1)
		}
	})
}
