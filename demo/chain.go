package demo

import (
	"context"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"time"

	"byoc/chain"
	"byoc/chain/testchain"
	"byoc/internal/nodefiles"
	"byoc/ledger"
	"byoc/orchestrator"

	"github.com/ethereum/go-ethereum/common"
)

// On the local chain tickets must be worth a redemption's gas: 0.01 ETH
// each, and (nearly) every ticket wins, so the demo has winners.
var (
	chainTicketEV = new(big.Int).Mul(big.NewInt(10), big.NewInt(1_000_000_000_000_000))
	chainDeposit  = new(big.Int).Mul(big.NewInt(1), big.NewInt(1_000_000_000_000_000_000))
)

// localChain is the demo's chain: go-ethereum's simulated backend with
// byoc's test TicketBroker, mining a block every blockEvery and
// initializing each round of 500 blocks as it starts.
type localChain struct {
	tc     *testchain.Chain
	client *chain.Client
	stop   chan struct{}
	done   chan struct{}
}

const blockEvery = 20 * time.Millisecond

// startChain starts the chain, registers the orchestrator's address as an
// active transcoder, and funds the gateway's deposit and reserve.
func startChain(ctx context.Context, dir string, out interface{ Write([]byte) (int, error) }) (*localChain, *orchestrator.OnChain, error) {
	okey, err := nodefiles.Key(filepath.Join(dir, "orchestrator"))
	if err != nil {
		return nil, nil, err
	}
	gkey, err := nodefiles.Key(filepath.Join(dir, "gateway"))
	if err != nil {
		return nil, nil, err
	}
	tc, err := testchain.New(testchain.Options{RoundLength: 500, Funded: []common.Address{okey.Address(), gkey.Address()}})
	if err != nil {
		return nil, nil, fmt.Errorf("local chain: %w", err)
	}
	lc := &localChain{tc: tc, client: &chain.Client{Backend: tc.Client, Broker: tc.Broker, Rounds: tc.Rounds},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := tc.Hook(ctx, "setTranscoder", okey.Address(), true); err != nil {
		tc.Close()
		return nil, nil, err
	}
	if err := tc.Hook(ctx, "setPoolSize", big.NewInt(1)); err != nil {
		tc.Close()
		return nil, nil, err
	}
	go lc.mine()
	t := time.NewTicker(blockEvery)
	defer t.Stop()
	if _, err := lc.client.Transact(ctx, gkey, t.C, new(big.Int).Mul(chainDeposit, big.NewInt(2)), "fundDepositAndReserve", chainDeposit, chainDeposit); err != nil {
		lc.close()
		return nil, nil, fmt.Errorf("funding the gateway: %w", err)
	}
	fmt.Fprintf(out, "local chain: TicketBroker %s, RoundsManager %s; gateway funded with deposit and reserve of 1 ETH each\n",
		tc.Broker.Hex(), tc.Rounds.Hex())
	return lc, &orchestrator.OnChain{Client: lc.client, Signer: okey, Poll: blockEvery,
		Gas: chain.GasPolicy{MaxFeeShare: big.NewRat(1, 2)}}, nil
}

func (lc *localChain) mine() {
	defer close(lc.done)
	t := time.NewTicker(blockEvery)
	defer t.Stop()
	for {
		select {
		case <-lc.stop:
			return
		case <-t.C:
			lc.tc.Backend.Commit()
			// A keeper: each round is initialized as it starts.
			lc.tc.InitializeRound(context.Background())
		}
	}
}

func (lc *localChain) close() {
	close(lc.stop)
	<-lc.done
	lc.tc.Close()
}

// redeemed waits until the orchestrator redeemed every winning ticket (its
// params expire 40 blocks after they were issued) and prints each.
func (d *run) redeemed(lc *localChain) ([]ledger.Winner, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		all, err := d.orch.Ledger.Winners(d.ctx, "", 0)
		if err != nil {
			return nil, err
		}
		pending := 0
		for _, w := range all {
			if w.State == ledger.WinnerQueued || w.State == ledger.WinnerSubmitted {
				pending++
			}
		}
		if pending == 0 && len(all) > 0 {
			fmt.Fprintf(d.out, "\nRedeemed on the local chain (TicketBroker %s):\n", lc.tc.Broker.Hex())
			for _, w := range all {
				gas := uint64(0)
				if w.TxHash != "" {
					if r, err := lc.tc.Client.TransactionReceipt(d.ctx, common.HexToHash(w.TxHash)); err == nil {
						gas = r.GasUsed
					}
				}
				payout := "-"
				if w.Payout != nil {
					payout = gwei(*w.Payout)
				}
				fmt.Fprintf(d.out, "   ticket %s…  %-8s face %s gwei  paid %s gwei  tx %s  gas %d %s\n", w.Key[:14], w.State,
					gwei(w.FaceValue), payout, short(w.TxHash), gas, strings.TrimSpace(w.LastError))
			}
			return all, nil
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("no winning ticket to redeem")
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d winning tickets still not redeemed after 60 s", pending)
		}
		select {
		case <-d.ctx.Done():
			return nil, d.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
