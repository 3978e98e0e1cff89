package chain

import (
	"bytes"
	"errors"
	"math/big"
	"testing"

	"byoc/chain/testchain"
	"byoc/ledger/ledgertest"
	"byoc/pm"
)

// TestSenderChecksGateTickets: a recipient wired to the chain state (as an
// orchestrator on chain is) issues params of the chain's round, refuses to
// price tickets for an unfunded sender, accepts a funded one's payment and
// refuses it once the sender starts unlocking.
func TestSenderChecksGateTickets(t *testing.T) {
	x := newFixture(t, ledgertest.SQLite, testchain.Options{})
	s := &State{Client: x.client, Me: x.orch.Address(), Ledger: x.env.Ledger}
	x.must(s.Refresh(x.ctx))
	cfg := pm.RecipientConfig{Address: x.orch.Address(), Blocks: s, ValidateSender: s.ValidateSender, MaxFloat: s.MaxFloat, GasPrice: s.GasPrice}
	copy(cfg.Secret[:], bytes.Repeat([]byte{7}, 32))
	rc, err := pm.NewRecipient(cfg)
	x.must(err)
	snd := pm.NewSender(pm.SenderConfig{Signer: x.snd, MaxTicketEV: eth(1), MaxTotalEV: eth(10)})
	price := big.NewRat(1000, 1)
	if _, err := rc.TicketParams(x.snd.Address(), price); !errors.Is(err, pm.ErrInsufficientReserve) {
		t.Fatalf("params for an unfunded sender: %v", err)
	}
	x.fund(eth(1), eth(1))
	x.must(s.Refresh(x.ctx))
	pay := func() error {
		params, err := rc.TicketParams(x.snd.Address(), price)
		if err != nil {
			return err
		}
		round, _ := s.CreationRound()
		if params.ExpirationParams.CreationRound != round || params.ExpirationBlock.Uint64() != x.head()+pm.ParamsValidityBlocks {
			t.Fatalf("params round %d expiring at %s; chain round %d head %d", params.ExpirationParams.CreationRound, params.ExpirationBlock, round, x.head())
		}
		wp, _ := pm.WirePrice(price)
		id, err := snd.StartSession(params.Wire(), wp)
		if err != nil {
			return err
		}
		b, err := snd.CreateTicketBatch(id, 1)
		if err != nil {
			return err
		}
		_, err = rc.Validate(b.Payment(pm.LayoutBYOC), price)
		return err
	}
	x.must(pay())
	x.must(x.tc.AsSender(x.ctx, x.sndKey, nil, "unlock"))
	x.must(s.Refresh(x.ctx))
	if err := pay(); !errors.Is(err, ErrSenderUnlocking) {
		t.Fatalf("payment of an unlocking sender: %v", err)
	}
}
