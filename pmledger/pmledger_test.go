package pmledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"byoc/ethsig"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/pm"
	"byoc/wire"

	"github.com/ethereum/go-ethereum/common"
)

// Test keys (the public keys of Livepeer's PM test vectors; never fund them).
const (
	senderKey    = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	recipientHex = "0x63FaC9201494f0bd17B9892B9fae4d52fe3BD377"
)

type fixture struct {
	env    *ledgertest.Env
	blocks *pm.StaticBlocks
	rcpt   *pm.Recipient
	snd    *pm.Sender
	rx     *Receiver
	price  *big.Rat
	pool   ledger.Ref
}

func newFixture(t *testing.T, f ledgertest.Factory, cfg pm.RecipientConfig) *fixture {
	t.Helper()
	fx := &fixture{env: ledgertest.NewEnv(t, f), price: big.NewRat(1000, 1),
		blocks: &pm.StaticBlocks{Block: big.NewInt(20_000_000), Round: 3500, BlockHash: common.HexToHash("0x73bccf99")}}
	cfg.Address = common.HexToAddress(recipientHex)
	copy(cfg.Secret[:], bytes.Repeat([]byte{7}, 32))
	cfg.Blocks = fx.blocks
	if cfg.GasPrice == nil {
		cfg.GasPrice = func() *big.Int { return big.NewInt(10_000_000) }
	}
	var err error
	if fx.rcpt, err = pm.NewRecipient(cfg); err != nil {
		t.Fatal(err)
	}
	signer, err := ethsig.KeySignerFromHex(senderKey)
	if err != nil {
		t.Fatal(err)
	}
	fx.snd = pm.NewSender(pm.SenderConfig{Signer: signer, Blocks: fx.blocks})
	fx.rx = &Receiver{Recipient: fx.rcpt, Ledger: fx.env.Ledger}
	fx.pool = ledger.PoolKey{Sender: signer.Address().Hex(), Capability: "echo"}.Ref()
	return fx
}

// payment issues fresh params (a new ticket session) and signs n tickets.
func (fx *fixture) payment(t *testing.T, n int) *wire.Payment {
	t.Helper()
	params, err := fx.rcpt.TicketParams(fx.snd.Address(), fx.price)
	if err != nil {
		t.Fatal(err)
	}
	wp, _ := pm.WirePrice(fx.price)
	id, err := fx.snd.StartSession(params.Wire(), wp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fx.snd.CreateTicketBatch(id, n)
	if err != nil {
		t.Fatal(err)
	}
	return b.Payment(pm.LayoutBYOC)
}

func (fx *fixture) receive(t *testing.T, p *wire.Payment, to ledger.Ref) (Receipt, error) {
	t.Helper()
	fx.rx.Ledger = fx.env.Ledger // after a restart
	return fx.rx.Receive(context.Background(), p, fx.price, to)
}

func evWei(t *testing.T, p *wire.Payment) ledger.Amount {
	params, err := pm.ParseTicketParams(p.TicketParams)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.CreditFor(params.EV())
}

func bothStores(t *testing.T, fn func(t *testing.T, f ledgertest.Factory)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, ledgertest.SQLite) })
	t.Run("Postgres", func(t *testing.T) { ledgertest.PostgresDSN(t); fn(t, ledgertest.Postgres) })
}

func TestReplayRefusedAfterRestart(t *testing.T) {
	bothStores(t, func(t *testing.T, f ledgertest.Factory) {
		fx := newFixture(t, f, pm.RecipientConfig{})
		p := fx.payment(t, 3)
		ev := evWei(t, p)
		rc, err := fx.receive(t, p, fx.pool)
		if err != nil || rc.Err() != nil || rc.Ledger.Tickets != 3 {
			t.Fatalf("first receive: %+v %v %v", rc.Ledger, err, rc.Err())
		}
		want := ev.Add(ev).Add(ev)
		if rc.Ledger.Credited.Cmp(want) != 0 {
			t.Fatalf("credited %s, want 3 × %s", rc.Ledger.Credited, ev)
		}
		fx.env.Restart()
		rc, err = fx.receive(t, p, fx.pool)
		var nerr *pm.NonceError
		if err != nil || !errors.As(rc.Err(), &nerr) || rc.Ledger.Credited.Sign() != 0 {
			t.Fatalf("replay after restart: %+v %v %v", rc.Ledger, err, rc.Err())
		}
		fx.env.WantBalance(fx.pool, mustInt64(t, want))
	})
}

func mustInt64(t *testing.T, a ledger.Amount) int64 {
	n, ok := a.Int64()
	if !ok {
		t.Fatalf("%s does not fit an int64", a)
	}
	return n
}

func TestWinnersQueuedDurably(t *testing.T) {
	// A face value of only twice the EV makes about every other ticket win;
	// a fixed seed source makes the run repeatable.
	fx := newFixture(t, ledgertest.SQLite, pm.RecipientConfig{MaxFaceValue: big.NewInt(2 * pm.DefaultTicketEV),
		GasPrice: func() *big.Int { return big.NewInt(1) },
		Rand:     bytes.NewReader(bytes.Repeat([]byte{42}, 4096))})
	p := fx.payment(t, 8)
	rc, err := fx.receive(t, p, fx.pool)
	if err != nil || rc.Err() != nil {
		t.Fatal(err, rc.Err())
	}
	won := len(rc.Validation.Winners())
	if won == 0 || rc.Ledger.Winners != won {
		t.Fatalf("%d winners in validation, ledger queued %d", won, rc.Ledger.Winners)
	}
	fx.env.Restart()
	ws, err := fx.env.Ledger.Winners(context.Background(), ledger.WinnerQueued, 0)
	if err != nil || len(ws) != won {
		t.Fatalf("queued winners after restart: %d, %v", len(ws), err)
	}
	for _, w := range ws {
		st, err := DecodeWinningTicket(w.Payload)
		if err != nil || TicketKey(st.Hash) != w.Key || st.Ticket.Sender != fx.snd.Address() {
			t.Fatalf("winner %s: %v", w.Key, err)
		}
		if !pm.IsWinningTicket(st.Sig, st.RecipientRand, st.Ticket.WinProb) {
			t.Fatalf("queued ticket %s does not win with its revealed recipientRand", w.Key)
		}
	}
	// Presented again, the winners are not queued twice.
	fx.receive(t, p, fx.pool)
	if ws, _ := fx.env.Ledger.Winners(context.Background(), "", 0); len(ws) != won {
		t.Fatalf("winners after replay: %d, want %d", len(ws), won)
	}
}

func TestExpiredParamsEarnNothing(t *testing.T) {
	fx := newFixture(t, ledgertest.SQLite, pm.RecipientConfig{})
	p := fx.payment(t, 2)
	fx.blocks.Block = big.NewInt(20_000_040)
	rc, err := fx.receive(t, p, fx.pool)
	if err != nil || !errors.Is(rc.Err(), pm.ErrTicketParamsExpired) || rc.Ledger.Credited.Sign() != 0 {
		t.Fatalf("expired: %+v %v %v", rc.Ledger, err, rc.Err())
	}
	fx.env.WantBalance(fx.pool, 0)
}

func TestBadTicketStopsLaterCredit(t *testing.T) {
	fx := newFixture(t, ledgertest.SQLite, pm.RecipientConfig{})
	p := fx.payment(t, 3)
	ev := evWei(t, p)
	p.TicketSenderParams[1].Sig[5] ^= 1 // the second ticket's signature
	rc, err := fx.receive(t, p, fx.pool)
	if err != nil || !errors.Is(rc.Err(), pm.ErrInvalidSignature) || rc.Ledger.Credited.Cmp(ev) != 0 {
		t.Fatalf("tampered: %+v %v %v", rc.Ledger, err, rc.Err())
	}
	if !rc.Validation.Tickets[2].Blocked {
		t.Fatal("the ticket after the bad one should be blocked")
	}
}

func TestFatalOrRefusedPaymentRecordsNothing(t *testing.T) {
	fx := newFixture(t, ledgertest.SQLite, pm.RecipientConfig{})
	p := fx.payment(t, 2)
	// A quote above the declared price is fatal.
	_, err := fx.rx.Receive(context.Background(), p, big.NewRat(1001, 1), fx.pool)
	if !pm.IsFatal(err) {
		t.Fatalf("price below quote: %v", err)
	}
	// A closed job refuses the payment as a whole.
	job := ledger.JobKey{Sender: fx.pool.Sender, JobID: "j1"}
	fx.env.Ledger.OpenJob(context.Background(), ledger.OpenJobRequest{Job: job, Capability: "echo"})
	fx.env.Ledger.CloseJob(context.Background(), job)
	if _, err := fx.receive(t, p, job.Ref()); !errors.Is(err, ledger.ErrJobClosed) {
		t.Fatalf("closed job: %v", err)
	}
	// So the same tickets still pay, once, elsewhere.
	rc, err := fx.receive(t, p, fx.pool)
	if err != nil || rc.Err() != nil || rc.Ledger.Tickets != 2 {
		t.Fatalf("after refusals: %+v %v %v", rc.Ledger, err, rc.Err())
	}
}

// The ledger's nonce rule, applied inside its transaction, gives the
// verdicts pm's rule (ApplyNonceRule, through a MemNonceBook) gives: random
// payments of repeated nonces over a few small-capped sessions.
func TestLedgerNonceRuleIsPMs(t *testing.T) {
	bothStores(t, func(t *testing.T, f ledgertest.Factory) {
		env := ledgertest.NewEnv(t, f)
		const maxNonces = 6
		book := pm.NewMemNonceBook(maxNonces)
		rng := rand.New(rand.NewPCG(1, 2))
		pool := ledger.PoolKey{Sender: "0xabc", Capability: "echo"}.Ref()
		for i := range 60 {
			session := common.Hash{byte(rng.IntN(3))}
			nonces := make([]uint32, 1+rng.IntN(5))
			req := ledger.PaymentRequest{To: pool, Session: session.Hex(), SessionExpiry: 100, MaxNonces: maxNonces, Chained: true}
			for k := range nonces {
				nonces[k] = uint32(rng.IntN(10))
				req.Tickets = append(req.Tickets, ledger.PaymentTicket{Nonce: nonces[k],
					Credit: ledger.PaymentCredit{Key: fmt.Sprintf("%d/%d", i, k), Amount: ledger.Wei(1)}})
			}
			want, err := book.RecordNonces(env.Ctx, pm.NonceSession{RecipientRandHash: session}, nonces)
			if err != nil {
				t.Fatal(err)
			}
			res, err := env.Ledger.ReceivePayment(env.Ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			credited := 0
			for k, v := range want {
				if v != pm.NonceAccepted {
					break
				}
				credited = k + 1
			}
			got := make([]pm.NonceVerdict, len(res.Nonces))
			for k, v := range res.Nonces {
				got[k] = map[ledger.NonceVerdict]pm.NonceVerdict{ledger.NonceNew: pm.NonceAccepted, ledger.NonceSeen: pm.NonceSeen, ledger.NonceTooMany: pm.NonceTooMany}[v]
			}
			if !slices.Equal(got, want) || res.Tickets != credited {
				t.Fatalf("payment %d %v in session %x: ledger %v (%d credited), pm %v (%d)", i, nonces, session[0], got, res.Tickets, want, credited)
			}
		}
	})
}
