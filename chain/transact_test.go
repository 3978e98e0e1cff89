package chain

import (
	"math/big"
	"strings"
	"testing"
	"time"

	"byoc/chain/testchain"
	"byoc/ledger/ledgertest"
)

// TestSenderCommands: a sender funds its deposit and reserve, reads them,
// and a refused call fails with the contract's reason, sending nothing.
func TestSenderCommands(t *testing.T) {
	x := newFixture(t, ledgertest.SQLite, testchain.Options{})
	poll, done := make(chan time.Time), make(chan struct{})
	stopped := make(chan struct{})
	go func() { // a block before each poll
		defer close(stopped)
		for {
			x.tc.Backend.Commit()
			select {
			case poll <- time.Time{}:
			case <-done:
				return
			}
		}
	}()
	defer func() { close(done); <-stopped }()
	if _, err := x.client.Transact(x.ctx, x.snd, poll, eth(2), "fundDeposit"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.client.Transact(x.ctx, x.snd, poll, eth(3), "fundReserve"); err != nil {
		t.Fatal(err)
	}
	info, err := x.client.SenderInfo(x.ctx, x.snd.Address())
	x.must(err)
	if info.Deposit.Cmp(eth(2)) != 0 || info.Reserve.Cmp(eth(3)) != 0 || info.Unlocking() {
		t.Fatalf("sender info %+v", info)
	}
	before, err := x.tc.Client.NonceAt(x.ctx, x.snd.Address(), nil)
	x.must(err)
	_, err = x.client.Transact(x.ctx, x.snd, poll, big.NewInt(1), "fundDepositAndReserve", big.NewInt(5), big.NewInt(5))
	if err == nil || !strings.Contains(err.Error(), "msg.value does not equal sum") {
		t.Fatalf("refused call: %v", err)
	}
	if after, _ := x.tc.Client.NonceAt(x.ctx, x.snd.Address(), nil); after != before {
		t.Fatal("a refused call was sent")
	}
}
