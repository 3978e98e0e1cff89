package chain

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"byoc/chain/testchain"
	"byoc/ethsig"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/pm"
	"byoc/pmledger"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"
)

// Every redeemer test runs on every store: the ticket's state is money.
func forStores(t *testing.T, fn func(t *testing.T, f ledgertest.Factory)) {
	t.Run("journal", func(t *testing.T) { fn(t, ledgertest.Journal) })
	t.Run("sqlite", func(t *testing.T) { fn(t, ledgertest.SQLite) })
	t.Run("postgres", func(t *testing.T) { fn(t, ledgertest.Postgres) })
}

type fixture struct {
	t       *testing.T
	ctx     context.Context
	tc      *testchain.Chain
	env     *ledgertest.Env
	client  *Client
	orchKey *ecdsa.PrivateKey
	orch    *ethsig.KeySigner
	sndKey  *ecdsa.PrivateKey
	snd     *ethsig.KeySigner
	other   *ecdsa.PrivateKey
	r       *Redeemer
	nonce   uint32
}

func gwei(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(params.GWei)) }
func eth(n int64) *big.Int  { return new(big.Int).Mul(big.NewInt(n), big.NewInt(params.Ether)) }

func newFixture(t *testing.T, f ledgertest.Factory, opts testchain.Options) *fixture {
	t.Helper()
	x := &fixture{t: t, ctx: context.Background()}
	keys := make([]*ecdsa.PrivateKey, 3)
	for i := range keys {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		opts.Funded = append(opts.Funded, crypto.PubkeyToAddress(k.PublicKey))
	}
	x.orchKey, x.sndKey, x.other = keys[0], keys[1], keys[2]
	if opts.RoundLength == 0 {
		opts.RoundLength = 50 // no round boundary inside a test unless it asks
	}
	x.orch, _ = ethsig.NewKeySigner(x.orchKey)
	x.snd, _ = ethsig.NewKeySigner(x.sndKey)
	tc, err := testchain.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	x.tc = tc
	x.env = ledgertest.NewEnv(t, f)
	x.client = &Client{Backend: tc.Client, Broker: tc.Broker, Rounds: tc.Rounds}
	x.must(tc.Hook(x.ctx, "setTranscoder", x.orch.Address(), true))
	x.must(tc.Hook(x.ctx, "setPoolSize", big.NewInt(1)))
	x.r = x.redeemer()
	return x
}

func (x *fixture) redeemer() *Redeemer {
	return &Redeemer{Ledger: x.env.Ledger, Client: x.client, Signer: x.orch}
}

func (x *fixture) must(err error) {
	x.t.Helper()
	if err != nil {
		x.t.Fatal(err)
	}
}

func (x *fixture) fund(deposit, reserve *big.Int) {
	x.t.Helper()
	x.must(x.tc.AsSender(x.ctx, x.sndKey, new(big.Int).Add(deposit, reserve), "fundDepositAndReserve", deposit, reserve))
}

func (x *fixture) head() uint64 {
	x.t.Helper()
	h, err := x.tc.Block(x.ctx)
	x.must(err)
	return h
}

// ticket makes a winning ticket (winProb 2^256−1) of the current round
// whose params expire expiresIn blocks from now.
func (x *fixture) ticket(face *big.Int, expiresIn uint64) *pm.SignedTicket {
	x.t.Helper()
	return x.ticketFrom(x.snd, face, expiresIn)
}

// ticketFrom is ticket signed by another sender.
func (x *fixture) ticketFrom(snd *ethsig.KeySigner, face *big.Int, expiresIn uint64) *pm.SignedTicket {
	x.t.Helper()
	round, err := x.client.LastInitializedRound(x.ctx)
	x.must(err)
	bh, err := x.client.BlockHashForRound(x.ctx, round)
	x.must(err)
	var rr [32]byte
	rand.Read(rr[:])
	x.nonce++
	tk := pm.Ticket{Recipient: x.orch.Address(), Sender: snd.Address(), FaceValue: face, WinProb: pm.MaxWinProb(),
		SenderNonce: x.nonce, RecipientRandHash: crypto.Keccak256Hash(rr[:]), CreationRound: round.Int64(),
		CreationRoundBlockHash: bh, ParamsExpirationBlock: new(big.Int).SetUint64(x.head() + expiresIn)}
	h, err := tk.Hash()
	x.must(err)
	sig, err := snd.SignPersonal(h[:])
	x.must(err)
	return &pm.SignedTicket{Ticket: tk, Hash: h, Sig: sig, RecipientRand: rr}
}

// queue puts a winning ticket in the ledger as a payment would.
func (x *fixture) queue(st *pm.SignedTicket) string {
	x.t.Helper()
	payload, err := json.Marshal(pmledger.NewWinningTicket(st))
	x.must(err)
	key := pmledger.TicketKey(st.Hash)
	pool := ledger.PoolKey{Sender: st.Ticket.Sender.Hex(), Capability: "echo"}.Ref()
	_, err = x.env.Ledger.ReceivePayment(x.ctx, ledger.PaymentRequest{To: pool, Session: st.Ticket.RecipientRandHash.Hex(),
		SessionExpiry: st.Ticket.ParamsExpirationBlock.Int64(),
		Tickets:       []ledger.PaymentTicket{{Nonce: st.Ticket.SenderNonce, Credit: ledger.PaymentCredit{Key: key, Amount: ledger.Wei(1)}}},
		Winners: []ledger.Winner{{Key: key, Sender: st.Ticket.Sender.Hex(), FaceValue: ledger.AmountFromBig(st.Ticket.FaceValue),
			RedeemAfter: st.Ticket.ParamsExpirationBlock.Int64(), Payload: payload}}})
	x.must(err)
	return key
}

func (x *fixture) tick() {
	x.t.Helper()
	x.must(x.r.Tick(x.ctx))
}

func (x *fixture) winner(key string) ledger.Winner {
	x.t.Helper()
	w, err := x.env.Ledger.Winner(x.ctx, key)
	x.must(err)
	return w
}

func (x *fixture) wantState(key, state, errHas string) ledger.Winner {
	x.t.Helper()
	w := x.winner(key)
	if w.State != state || !strings.Contains(w.LastError, errHas) {
		x.t.Fatalf("ticket %s: state %q (%q), want %q with %q", key, w.State, w.LastError, state, errHas)
	}
	return w
}

// orchNonce is how many transactions the orchestrator's account sent.
func (x *fixture) orchNonce() uint64 {
	x.t.Helper()
	n, err := x.tc.Client.NonceAt(x.ctx, x.orch.Address(), nil)
	x.must(err)
	return n
}

// redemptions counts the canonical chain's WinningTicketRedeemed logs for st.
func (x *fixture) redemptions(st *pm.SignedTicket) int {
	x.t.Helper()
	logs, err := x.tc.Client.FilterLogs(x.ctx, ethereum.FilterQuery{FromBlock: big.NewInt(0), Addresses: []common.Address{x.tc.Broker},
		Topics: [][]common.Hash{{topicRedeemed}}})
	x.must(err)
	n := 0
	for _, l := range logs {
		v, err := TicketBrokerABI.Unpack("WinningTicketRedeemed", l.Data)
		x.must(err)
		if !l.Removed && v[2].(*big.Int).Uint64() == uint64(st.Ticket.SenderNonce) &&
			v[3].(*big.Int).Cmp(new(big.Int).SetBytes(st.RecipientRand[:])) == 0 {
			n++
		}
	}
	return n
}

func (x *fixture) fees() *big.Int {
	x.t.Helper()
	data, _ := x.tc.BrokerABI.Pack("feesOf", x.orch.Address())
	out, err := x.tc.Client.CallContract(x.ctx, ethereum.CallMsg{To: &x.tc.Broker, Data: data}, nil)
	x.must(err)
	return new(big.Int).SetBytes(out)
}

// redeemed runs the redemption of a ready ticket to its end and checks it
// paid want; it returns the receipt's gas.
func (x *fixture) redeemed(key string, st *pm.SignedTicket, want *big.Int) uint64 {
	x.t.Helper()
	x.tick()
	w := x.wantState(key, ledger.WinnerSubmitted, "")
	x.tc.Backend.Commit()
	x.tick()
	w = x.wantState(key, ledger.WinnerRedeemed, "")
	if w.Payout == nil || w.Payout.Cmp(ledger.AmountFromBig(want)) != 0 {
		x.t.Fatalf("payout %v, want %s", w.Payout, want)
	}
	if n := x.redemptions(st); n != 1 {
		x.t.Fatalf("%d redemptions on chain, want 1", n)
	}
	rc, err := x.tc.Client.TransactionReceipt(x.ctx, common.HexToHash(w.TxHash))
	x.must(err)
	x.t.Logf("redemption gas %d (paid %s of face value %s)", rc.GasUsed, want, st.Ticket.FaceValue)
	return rc.GasUsed
}

func TestRedeemHappyPath(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		x.fund(eth(1), eth(1))
		face := big.NewInt(1_200_000_000_000_000)
		st := x.ticket(face, 3)
		key := x.queue(st)
		// Not before the params expire: revealing recipientRand earlier
		// would let the sender predict its winners.
		for range 4 {
			x.tick()
			x.wantState(key, ledger.WinnerQueued, reasonNotYet)
			x.tc.Backend.Commit()
		}
		if x.orchNonce() != 0 {
			t.Fatal("a transaction was sent before the params expired")
		}
		x.redeemed(key, st, face)
		if x.fees().Cmp(face) != 0 {
			t.Fatalf("fees %s, want %s", x.fees(), face)
		}
		if w := x.winner(key); w.Attempts != 1 || w.TxNonce != 0 {
			t.Fatalf("attempts %d nonce %d", w.Attempts, w.TxNonce)
		}
		// Nothing more happens to a redeemed ticket.
		x.tick()
		if x.orchNonce() != 1 {
			t.Fatalf("%d transactions sent, want 1", x.orchNonce())
		}
	})
}

func TestUnderfundedThenToppedUp(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		face := eth(1)
		x.fund(big.NewInt(1000), big.NewInt(0))
		st := x.ticket(face, 1)
		key := x.queue(st)
		x.tc.Mine(2)
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "sender funds short")
		x.tick() // no spinning: still deferred, still nothing sent
		if x.orchNonce() != 0 {
			t.Fatal("a transaction was sent for an underfunded ticket")
		}
		x.fund(face, big.NewInt(0))
		x.redeemed(key, st, face)
	})
}

// Test663Guard: the sender's reserve covers the face value but this
// recipient's claimable share does not. The redeemer waits while a later
// round may pay in full, and in the ticket's last valid round redeems for
// the partial payout, which it records.
func Test663Guard(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		x.must(x.tc.Hook(x.ctx, "setPoolSize", big.NewInt(4)))
		reserve := eth(2)
		x.fund(big.NewInt(0), reserve)
		face := eth(1) // ≤ reserve, > reserve/4
		st := x.ticket(face, 1)
		key := x.queue(st)
		x.tc.Mine(2)
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "would pay 500000000000000000 of face value")
		if x.orchNonce() != 0 {
			t.Fatal("redeemed in the #663 zone before the last valid round")
		}
		x.must(x.tc.NextRound(x.ctx)) // the last valid round
		part := new(big.Int).Div(reserve, big.NewInt(4))
		x.redeemed(key, st, part)
		if x.fees().Cmp(part) != 0 {
			t.Fatalf("fees %s, want %s", x.fees(), part)
		}
	})
}

// sendTx sends a transaction from key with a tip of tipGwei, unmined.
func (x *fixture) sendTx(key *ecdsa.PrivateKey, nonce uint64, to common.Address, data []byte, tipGwei int64) *types.Transaction {
	x.t.Helper()
	tx, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: x.tc.ChainID, Nonce: nonce, GasTipCap: gwei(tipGwei),
		GasFeeCap: gwei(tipGwei + 100), Gas: 500_000, To: &to, Data: data}), types.LatestSignerForChainID(x.tc.ChainID), key)
	x.must(err)
	x.must(x.tc.Client.SendTransaction(x.ctx, tx))
	return tx
}

// failingUsed is a chain whose usedTickets call fails.
type failingUsed struct {
	Backend
	fail bool
}

func (b *failingUsed) CallContract(ctx context.Context, m ethereum.CallMsg, n *big.Int) ([]byte, error) {
	if b.fail && len(m.Data) >= 4 && string(m.Data[:4]) == string(TicketBrokerABI.Methods["usedTickets"].ID) {
		return nil, errors.New("injected: node unavailable")
	}
	return b.Backend.CallContract(ctx, m, n)
}

// TestMinedRevertKeepsTicket: the redemption passes its pre-flight, then the
// system is paused in the same block before it: it is mined reverted, with
// no reason. The ticket is unused, so it stays (go-livepeer drops it,
// #4013); when the usedTickets check itself fails, it stays too.
func TestMinedRevertKeepsTicket(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		fb := &failingUsed{Backend: x.tc.Client}
		x.client.Backend = fb
		x.fund(eth(1), eth(1))
		face := eth(1)
		st := x.ticket(face, 1)
		key := x.queue(st)
		x.tc.Mine(2)
		pause := func(on bool) {
			data, _ := x.tc.BrokerABI.Pack("setPaused", on)
			n, err := x.tc.Client.PendingNonceAt(x.ctx, crypto.PubkeyToAddress(x.tc.Deployer.PublicKey))
			x.must(err)
			x.sendTx(x.tc.Deployer, n, x.tc.Broker, data, 50) // a higher tip: mined first
		}
		for _, failCheck := range []bool{true, false} {
			x.tick()
			w := x.wantState(key, ledger.WinnerSubmitted, "")
			pause(true)
			x.tc.Backend.Commit()
			rc, err := x.tc.Client.TransactionReceipt(x.ctx, common.HexToHash(w.TxHash))
			x.must(err)
			if rc.Status != types.ReceiptStatusFailed {
				t.Fatal("the redemption was not mined reverted")
			}
			fb.fail = failCheck
			x.tick()
			if failCheck {
				x.wantState(key, ledger.WinnerQueued, "usedTickets check failed")
			} else {
				x.wantState(key, ledger.WinnerQueued, "ticket unused: kept")
			}
			fb.fail = false
			pause(false)
			x.tc.Backend.Commit()
		}
		x.redeemed(key, st, face)
		if w := x.winner(key); w.Attempts != 3 {
			t.Fatalf("attempts %d, want 3", w.Attempts)
		}
	})
}

// TestRedeemedBySomeoneElse: another account redeems the ticket first (the
// fees still go to the recipient); the redeemer finds that transaction and
// records what it paid.
func TestRedeemedBySomeoneElse(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		x.fund(eth(1), eth(1))
		face := big.NewInt(7_000_000)
		st := x.ticket(face, 1)
		key := x.queue(st)
		x.tc.Mine(2)
		data, err := RedeemCalldata(st)
		x.must(err)
		rc, err := x.tc.Send(x.ctx, x.other, &x.tc.Broker, nil, data, 0)
		x.must(err)
		if rc.Status != types.ReceiptStatusSuccessful {
			t.Fatal("the other account's redemption failed")
		}
		x.tick()
		w := x.wantState(key, ledger.WinnerRedeemed, "ticket is used")
		if w.TxHash != rc.TxHash.Hex() || w.Payout == nil || w.Payout.Cmp(ledger.AmountFromBig(face)) != 0 {
			t.Fatalf("recorded %s paying %v, want %s paying %s", w.TxHash, w.Payout, rc.TxHash.Hex(), face)
		}
		if x.orchNonce() != 0 {
			t.Fatal("the redeemer sent a transaction for a used ticket")
		}
	})
}

// TestExpiryAndPruning: a ticket the sender never covers dies once the
// round after its last valid round starts, and nothing is sent for it.
func TestExpiryAndPruning(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		st := x.ticket(eth(1), 1)
		key := x.queue(st)
		x.tc.Mine(2)
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "sender funds short")
		x.must(x.tc.NextRound(x.ctx))
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "sender funds short") // last valid round
		x.must(x.tc.NextRound(x.ctx))
		x.tick()
		x.wantState(key, ledger.WinnerDead, "expired")
		if x.orchNonce() != 0 {
			t.Fatal("a transaction was sent")
		}
	})
}

// TestRoundBoundary: a new round that is not yet initialized makes every
// redemption revert with a retryable reason; the ticket waits, then goes.
func TestRoundBoundary(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{RoundLength: 20})
		x.fund(eth(1), eth(1))
		face := eth(1)
		st := x.ticket(face, 1)
		key := x.queue(st)
		// Mine into the next round without initializing it.
		start, err := x.tc.CurrentRound(x.ctx)
		x.must(err)
		for {
			r, err := x.tc.CurrentRound(x.ctx)
			x.must(err)
			if r > start {
				break
			}
			x.tc.Backend.Commit()
		}
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "current round is not initialized")
		if x.orchNonce() != 0 {
			t.Fatal("a transaction was sent")
		}
		data, _ := x.tc.RoundsABI.Pack("initializeRound")
		_, err = x.tc.Send(x.ctx, x.tc.Deployer, &x.tc.Rounds, nil, data, 1_000_000)
		x.must(err)
		x.redeemed(key, st, face)
	})
}

// TestSenderUnlocking: a sender whose unlock completed cannot be redeemed
// against; the ticket waits (nothing sent) and goes once the sender has
// withdrawn and funded again.
func TestSenderUnlocking(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{UnlockPeriod: 1})
		x.fund(eth(1), eth(1))
		face := eth(1)
		st := x.ticket(face, 1)
		key := x.queue(st)
		x.must(x.tc.AsSender(x.ctx, x.sndKey, nil, "unlock"))
		x.must(x.tc.NextRound(x.ctx))
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "sender is unlocked")
		if x.orchNonce() != 0 {
			t.Fatal("a transaction was sent")
		}
		// Once unlocked, only a withdrawal and new funds lock it again.
		x.must(x.tc.AsSender(x.ctx, x.sndKey, nil, "withdraw"))
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "sender funds short")
		x.fund(eth(1), eth(1))
		x.redeemed(key, st, face)
	})
}

var errCrash = errors.New("crash")

// TestCrashBetweenBroadcastAndReceipt: the process dies (its ledger and
// redeemer are gone) after the transaction was recorded, once before and
// once after it was broadcast. The next process finds it and the ticket
// is redeemed exactly once.
func TestCrashBetweenBroadcastAndReceipt(t *testing.T) {
	for _, when := range []string{"before broadcast", "after broadcast"} {
		t.Run(strings.ReplaceAll(when, " ", "_"), func(t *testing.T) {
			forStores(t, func(t *testing.T, f ledgertest.Factory) {
				x := newFixture(t, f, testchain.Options{})
				x.fund(eth(1), eth(1))
				face := eth(1)
				st := x.ticket(face, 1)
				key := x.queue(st)
				x.tc.Mine(2)
				crash := func(*types.Transaction) error { return errCrash }
				if when == "before broadcast" {
					x.r.beforeBroadcast = crash
				} else {
					x.r.afterBroadcast = crash
				}
				if err := x.r.Tick(x.ctx); !errors.Is(err, errCrash) {
					t.Fatalf("tick: %v", err)
				}
				x.env.Restart()
				x.r = x.redeemer()
				x.tc.Backend.Commit()
				x.tick() // finds the recorded transaction: sends the same bytes again, or sees it mined
				x.tc.Backend.Commit()
				x.tick()
				x.wantState(key, ledger.WinnerRedeemed, "")
				if n := x.redemptions(st); n != 1 || x.orchNonce() != 1 {
					t.Fatalf("%d redemptions, %d transactions; want 1 and 1", n, x.orchNonce())
				}
			})
		})
	}
}

// TestReorg: the block holding the redemption is reorganised away and its
// nonce taken by another transaction on the new chain: the ticket goes
// back to the queue and is redeemed once on the new chain. A redemption
// the reorg only delays stays submitted and is mined again.
func TestReorg(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{RoundLength: 50})
		x.r.Confirmations = 2
		x.fund(eth(1), eth(1))
		face := eth(1)
		st := x.ticket(face, 1)
		key := x.queue(st)
		x.tc.Mine(2)
		parent, err := x.tc.Client.HeaderByNumber(x.ctx, nil)
		x.must(err)
		x.tick()
		w := x.wantState(key, ledger.WinnerSubmitted, "")
		x.tc.Backend.Commit()
		x.tick()
		x.wantState(key, ledger.WinnerSubmitted, "") // mined, 0 confirmations
		x.must(x.tc.Backend.Fork(parent.Hash()))
		// The pool takes the dropped redemption back; a second Fork waits
		// for that (and refuses, the pool being dirty), Rollback empties it.
		x.tc.Backend.Fork(parent.Hash())
		x.tc.Backend.Rollback()
		// On the new chain the nonce goes to a plain transfer.
		x.sendTx(x.orchKey, uint64(w.TxNonce), x.orch.Address(), nil, 500)
		x.tc.Mine(3)
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "gone")
		if x.redemptions(st) != 0 {
			t.Fatal("the redemption survived the reorg")
		}
		x.tick()
		x.wantState(key, ledger.WinnerSubmitted, "")
		x.tc.Mine(3)
		x.tick()
		x.wantState(key, ledger.WinnerRedeemed, "")
		if n := x.redemptions(st); n != 1 {
			t.Fatalf("%d redemptions", n)
		}
	})
}

// TestGasPolicy: the fee share waits until the last valid round; the fee
// cap waits; an unmined transaction is replaced after the timeout at the
// same nonce with higher fees, the ticket staying submitted, and whichever
// is mined is recorded.
func TestGasPolicy(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		x.fund(eth(1), eth(1))
		small := big.NewInt(1_000_000_000_000_000) // 0.001 ETH
		st := x.ticket(small, 1)
		key := x.queue(st)
		x.tc.Mine(2)
		// Fee share: at most 1/10^9 of the payout — not met before the last
		// valid round.
		x.r.Gas.MaxFeeShare = big.NewRat(1, 1_000_000_000)
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "gas: cost")
		// Fee cap below the base fee: waits even in the last valid round.
		x.must(x.tc.NextRound(x.ctx))
		x.r.Gas.MaxFeePerGas = big.NewInt(1)
		x.tick()
		x.wantState(key, ledger.WinnerQueued, "above the cap")
		if x.orchNonce() != 0 {
			t.Fatal("a transaction was sent")
		}
		// Last valid round, no cap: the payout beats the gas, so it goes.
		x.r.Gas.MaxFeePerGas = nil
		x.r.Gas.ReplaceAfter = time.Minute
		x.tick()
		w := x.wantState(key, ledger.WinnerSubmitted, "")
		first := w.TxHash
		// Unmined for longer than ReplaceAfter: replaced.
		x.tick()
		x.wantState(key, ledger.WinnerSubmitted, "")
		x.env.Clock.Advance(2 * time.Minute)
		x.tick()
		w = x.wantState(key, ledger.WinnerSubmitted, "replaced")
		hashes := strings.Split(w.TxHash, ",")
		if len(hashes) != 2 || hashes[0] != first || w.TxNonce != 0 || w.Attempts != 2 {
			t.Fatalf("after replacement: %+v", w)
		}
		x.tc.Backend.Commit()
		x.tick()
		w = x.wantState(key, ledger.WinnerRedeemed, "")
		if w.TxHash != hashes[1] || x.redemptions(st) != 1 || x.orchNonce() != 1 {
			t.Fatalf("redeemed by %s (want the replacement %s), %d redemptions", w.TxHash, hashes[1], x.redemptions(st))
		}
	})
}

// TestManual: automatic redemption off sends nothing; RedeemNow sends the
// named ticket at once.
func TestManual(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		x.fund(eth(1), eth(1))
		fa, fb := big.NewInt(400_000_000_000_000_000), big.NewInt(500_000_000_000_000_000)
		a, b := x.ticket(fa, 1), x.ticket(fb, 1)
		ka, kb := x.queue(a), x.queue(b)
		x.tc.Mine(2)
		x.r.SetAuto(false)
		x.tick()
		if x.orchNonce() != 0 || x.winner(ka).State != ledger.WinnerQueued {
			t.Fatal("sent with automatic redemption off")
		}
		ws, err := x.r.RedeemNow(x.ctx, []string{kb})
		x.must(err)
		if len(ws) != 1 || ws[0].State != ledger.WinnerSubmitted {
			t.Fatalf("RedeemNow: %+v", ws)
		}
		x.tc.Backend.Commit()
		x.tick()
		x.wantState(kb, ledger.WinnerRedeemed, "")
		x.wantState(ka, ledger.WinnerQueued, "")
		x.r.SetAuto(true)
		x.redeemed(ka, a, fa)
	})
}

// TestPerSenderOneAtATime: one redemption in flight per sender; another
// sender's goes in the same pass; the next of a sender goes in the pass
// that sees the first one mined.
func TestPerSenderOneAtATime(t *testing.T) {
	forStores(t, func(t *testing.T, f ledgertest.Factory) {
		x := newFixture(t, f, testchain.Options{})
		x.fund(eth(1), eth(1))
		other, _ := ethsig.NewKeySigner(x.other)
		x.must(x.tc.AsSender(x.ctx, x.other, eth(2), "fundDepositAndReserve", eth(1), eth(1)))
		a1, a2, b := x.ticket(big.NewInt(3e17), 1), x.ticket(big.NewInt(4e17), 1), x.ticketFrom(other, big.NewInt(5e17), 1)
		ka1 := x.queue(a1)
		x.env.Clock.Advance(time.Second) // oldest first
		ka2, kb := x.queue(a2), x.queue(b)
		x.tc.Mine(2)
		x.tick()
		x.wantState(ka1, ledger.WinnerSubmitted, "")
		x.wantState(ka2, ledger.WinnerQueued, "")
		x.wantState(kb, ledger.WinnerSubmitted, "")
		x.tick() // nothing mined: still one per sender
		x.wantState(ka2, ledger.WinnerQueued, "")
		x.tc.Backend.Commit()
		x.tick()
		x.wantState(ka1, ledger.WinnerRedeemed, "")
		x.wantState(kb, ledger.WinnerRedeemed, "")
		x.wantState(ka2, ledger.WinnerSubmitted, "")
		x.tc.Backend.Commit()
		x.tick()
		x.wantState(ka2, ledger.WinnerRedeemed, "")
		for _, st := range []*pm.SignedTicket{a1, a2, b} {
			if n := x.redemptions(st); n != 1 {
				t.Fatalf("%d redemptions", n)
			}
		}
	})
}
