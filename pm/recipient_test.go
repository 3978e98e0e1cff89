package pm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
	"byoc/wire"
)

// fixture is a recipient and a sender that talk to each other, with the
// vectors' keys and a random seed per issued session.
type fixture struct {
	v      *vectors
	blocks *StaticBlocks
	rcpt   *Recipient
	snd    *Sender
	price  *big.Rat
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	v := loadVectors(t)
	f := &fixture{v: v, blocks: vectorBlocks(t, v, 20_000_000), price: big.NewRat(2000, 3)}
	r, err := NewRecipient(RecipientConfig{
		Address:  common.HexToAddress(v.Keys.RecipientAddress),
		Secret:   secretOf(t, v),
		Blocks:   f.blocks,
		GasPrice: func() *big.Int { return big.NewInt(10_000_000) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.rcpt = r
	signer, err := ethsig.KeySignerFromHex(v.Keys.SenderKey)
	if err != nil {
		t.Fatal(err)
	}
	f.snd = NewSender(SenderConfig{Signer: signer, MaxNonces: 1000, Blocks: f.blocks})
	return f
}

// pay issues fresh params and returns a payment of n tickets.
func (f *fixture) pay(t testing.TB, n int) *wire.Payment {
	t.Helper()
	id := f.session(t)
	b, err := f.snd.CreateTicketBatch(id, n)
	if err != nil {
		t.Fatal(err)
	}
	return b.Payment(LayoutBYOC)
}

func (f *fixture) session(t testing.TB) SessionID {
	t.Helper()
	params, err := f.rcpt.TicketParams(f.snd.Address(), f.price)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := WirePrice(f.price)
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.snd.StartSession(params.Wire(), wp)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestValidateFatalChecks(t *testing.T) {
	f := newFixture(t)
	base := f.pay(t, 2)
	cases := []struct {
		name   string
		mutate func(p *wire.Payment)
		want   error
		text   string
	}{
		{"sender wrong length", func(p *wire.Payment) { p.Sender = p.Sender[:19] }, ErrInvalidSender, ""},
		{"sender missing", func(p *wire.Payment) { p.Sender = nil }, ErrMissingSender, ""},
		{"sender zero", func(p *wire.Payment) { p.Sender = make([]byte, 20) }, ErrInvalidSender, "invalid ticket sender"},
		{"price missing", func(p *wire.Payment) { p.ExpectedPrice = nil }, ErrInvalidExpectedPrice,
			`invalid expected price sent with payment err="expected price is nil"`},
		{"pixels per unit 0", func(p *wire.Payment) { p.ExpectedPrice.PixelsPerUnit = 0 }, ErrInvalidExpectedPrice,
			`invalid expected price sent with payment err="pixels per unit is 0"`},
		{"pixels per unit negative", func(p *wire.Payment) { p.ExpectedPrice.PixelsPerUnit = -3 }, ErrInvalidExpectedPrice, ""},
		{"price negative", func(p *wire.Payment) { p.ExpectedPrice.PricePerUnit = -2000 }, ErrInvalidExpectedPrice, ""},
		{"price below quote", func(p *wire.Payment) { p.ExpectedPrice.PricePerUnit = 1999 }, ErrPriceBelowQuote, ""},
		{"tickets without params", func(p *wire.Payment) { p.TicketParams = nil }, ErrMalformedPayment, ""},
		{"other recipient", func(p *wire.Payment) { p.TicketParams.Recipient[0] ^= 1 }, ErrInvalidRecipient, "invalid ticket recipient"},
		{"recipient wrong length", func(p *wire.Payment) { p.TicketParams.Recipient = append(p.TicketParams.Recipient, 0) }, ErrInvalidRecipient, ""},
		{"rand hash wrong length", func(p *wire.Payment) { p.TicketParams.RecipientRandHash = p.TicketParams.RecipientRandHash[1:] }, ErrInvalidRecipientRand, ""},
		{"face value >= 2^256", func(p *wire.Payment) { p.TicketParams.FaceValue = bytes.Repeat([]byte{1}, 33) }, ErrValueOutOfRange, ""},
		{"win prob >= 2^256", func(p *wire.Payment) { p.TicketParams.WinProb = append([]byte{1}, make([]byte, 32)...) }, ErrValueOutOfRange, ""},
		{"negative round", func(p *wire.Payment) { p.ExpirationParams.CreationRound = -1 }, ErrMalformedPayment, ""},
		{"block hash wrong length", func(p *wire.Payment) { p.ExpirationParams.CreationRoundBlockHash = []byte{1} }, ErrMalformedPayment, ""},
		{"expiration params missing", func(p *wire.Payment) { p.ExpirationParams = nil }, ErrInvalidRecipientRand, ""},
		{"round changed", func(p *wire.Payment) { p.ExpirationParams.CreationRound++ }, ErrInvalidRecipientRand, ""},
		{"seed changed", func(p *wire.Payment) { p.TicketParams.Seed[0] ^= 1 }, ErrInvalidRecipientRand, ""},
		{"face value changed", func(p *wire.Payment) { p.TicketParams.FaceValue[0]++ }, ErrInvalidRecipientRand, ""},
		{"win prob changed", func(p *wire.Payment) { p.TicketParams.WinProb[0]++ }, ErrInvalidRecipientRand, ""},
		{"expiration block changed", func(p *wire.Payment) { p.TicketParams.ExpirationBlock[0]++ }, ErrInvalidRecipientRand, ""},
		{"rand hash changed", func(p *wire.Payment) { p.TicketParams.RecipientRandHash[0] ^= 1 }, ErrInvalidRecipientRand, ""},
		{"other sender", func(p *wire.Payment) { p.Sender[0] ^= 1 }, ErrInvalidRecipientRand, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := base.Clone()
			tc.mutate(p)
			v, err := f.rcpt.Validate(p, f.price)
			if v != nil || !IsFatal(err) || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want fatal %v", v, err, tc.want)
			}
			if tc.text != "" && err.Error() != tc.text {
				t.Errorf("text %q, want %q", err.Error(), tc.text)
			}
		})
	}
	// Leading zeros in integers are tolerated, as go-livepeer's SetBytes does.
	p := base.Clone()
	p.TicketParams.FaceValue = append([]byte{0, 0}, p.TicketParams.FaceValue...)
	if v, err := f.rcpt.Receive(context.Background(), p, f.price, NewMemNonceBook(0)); err != nil || v.Err() != nil {
		t.Fatalf("leading zeros: %v", err)
	}
}

func TestValidateSenderHook(t *testing.T) {
	f := newFixture(t)
	p := f.pay(t, 1)
	unlocking := errors.New("deposit and reserve is set to unlock soon")
	f.rcpt.cfg.ValidateSender = func(common.Address) error { return unlocking }
	if _, err := f.rcpt.Validate(p, f.price); !IsFatal(err) || !errors.Is(err, unlocking) {
		t.Fatalf("err = %v", err)
	}
}

func TestSignatureChecks(t *testing.T) {
	f := newFixture(t)
	base := f.pay(t, 1)
	sig := base.TicketSenderParams[0].Sig
	// The malleated twin (N−s, flipped v) recovers the same key but has a
	// high s, so it must be rejected.
	n := crypto.S256().Params().N
	s := new(big.Int).SetBytes(sig[32:64])
	high := append([]byte(nil), sig...)
	new(big.Int).Sub(n, s).FillBytes(high[32:64])
	high[64] = 55 - high[64] // 27 <-> 28
	cases := map[string][]byte{
		"empty":      nil,
		"64 bytes":   sig[:64],
		"66 bytes":   append(append([]byte(nil), sig...), 0),
		"v = 0/1":    append(append([]byte(nil), sig[:64]...), sig[64]-27),
		"v = 29":     append(append([]byte(nil), sig[:64]...), 29),
		"high s":     high,
		"zero r":     append(make([]byte, 32), sig[32:]...),
		"other key":  mustSign(t, "0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f", base),
		"flipped v":  append(append([]byte(nil), sig[:64]...), sig[64]^1),
		"all 0xff":   bytes.Repeat([]byte{0xff}, 65),
		"bit change": func() []byte { b := append([]byte(nil), sig...); b[0] ^= 0x80; return b }(),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			p := base.Clone()
			p.TicketSenderParams[0].Sig = bad
			v, err := f.rcpt.Receive(context.Background(), p, f.price, NewMemNonceBook(0))
			if err != nil {
				t.Fatal(err)
			}
			tr := v.Tickets[0]
			if tr.Err != ErrInvalidSignature || tr.Credit || tr.Won || tr.Winner != nil || v.Credit().Sign() != 0 {
				t.Fatalf("result %+v", tr)
			}
		})
	}
	if _, err := ethsig.Recover([]byte("x"), high); !errors.Is(err, ethsig.ErrInvalidSignature) || !strings.Contains(err.Error(), "s value too high") {
		t.Errorf("high s: %v", err)
	}
}

// mustSign signs the first ticket of p with another key.
func mustSign(t *testing.T, key string, p *wire.Payment) []byte {
	t.Helper()
	s, err := ethsig.KeySignerFromHex(key)
	if err != nil {
		t.Fatal(err)
	}
	params, _ := ParseTicketParams(p.TicketParams)
	exp, _ := ParseExpirationParams(p.ExpirationParams)
	params.ExpirationParams = exp
	tk := params.ticket(common.BytesToAddress(p.Sender), p.TicketSenderParams[0].SenderNonce)
	h, _ := tk.Hash()
	sig, err := s.SignPersonal(h[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestOneBadTicketStopsCredit checks go-livepeer's rule: after the first
// non-fatal error, later tickets are recorded but earn nothing.
func TestOneBadTicketStopsCredit(t *testing.T) {
	f := newFixture(t)
	p := f.pay(t, 4)
	p.TicketSenderParams[1].Sig[5] ^= 1
	book := NewMemNonceBook(0)
	v, err := f.rcpt.Receive(context.Background(), p, f.price, book)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ credit, blocked, err bool }{{true, false, false}, {false, false, true}, {false, true, false}, {false, true, false}}
	for i, w := range want {
		tr := v.Tickets[i]
		if tr.Credit != w.credit || tr.Blocked != w.blocked || (tr.Err != nil) != w.err {
			t.Errorf("ticket %d: %+v", i, tr)
		}
	}
	if v.Credit().Cmp(v.Tickets[0].EV) != 0 {
		t.Errorf("credit %v", v.Credit())
	}
	// The blocked tickets' nonces were recorded: presenting them again is a
	// replay. The bad ticket's nonce was not (its signature failed first).
	again, err := f.rcpt.Receive(context.Background(), p, f.price, book)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2, 3} {
		if !errors.Is(again.Tickets[i].Err, ErrNonceSeen) {
			t.Errorf("ticket %d on replay: %v", i, again.Tickets[i].Err)
		}
	}
	if again.Tickets[1].Err != ErrInvalidSignature {
		t.Errorf("bad ticket on replay: %v", again.Tickets[1].Err)
	}
}

func TestDuplicateNonceInOnePayment(t *testing.T) {
	f := newFixture(t)
	p := f.pay(t, 3)
	p.TicketSenderParams = append(p.TicketSenderParams, p.TicketSenderParams[1].Clone())
	v, err := f.rcpt.Receive(context.Background(), p, f.price, NewMemNonceBook(0))
	if err != nil {
		t.Fatal(err)
	}
	if !v.Tickets[0].Credit || !v.Tickets[1].Credit || !v.Tickets[2].Credit || v.Tickets[3].Credit {
		t.Fatalf("%+v", v.Tickets)
	}
	var ne *NonceError
	if !errors.As(v.Tickets[3].Err, &ne) || ne.Verdict != NonceSeen || ne.Nonce != 2 {
		t.Fatalf("duplicate: %v", v.Tickets[3].Err)
	}
	if v.Tickets[0].TicketHash == v.Tickets[1].TicketHash || v.Tickets[1].TicketHash != v.Tickets[3].TicketHash {
		t.Error("ticket hashes")
	}
}

// TestNonceCap checks the 600-nonce cap per recipientRandHash: the 601st
// distinct nonce is refused with go-livepeer's text.
func TestNonceCap(t *testing.T) {
	if testing.Short() {
		t.Skip("signs 601 tickets")
	}
	f := newFixture(t)
	id := f.session(t)
	b, err := f.snd.CreateTicketBatch(id, 601)
	if err != nil {
		t.Fatal(err)
	}
	book := NewMemNonceBook(0)
	p := b.Payment(LayoutSegment)
	first := p.Clone()
	first.TicketSenderParams = first.TicketSenderParams[:600]
	v, err := f.rcpt.Receive(context.Background(), first, f.price, book)
	if err != nil || v.Err() != nil {
		t.Fatalf("600 tickets: %v %v", err, v.Err())
	}
	last := p.Clone()
	last.TicketSenderParams = last.TicketSenderParams[600:]
	v, err = f.rcpt.Receive(context.Background(), last, f.price, book)
	if err != nil {
		t.Fatal(err)
	}
	want := "invalid ticket senderNonce: too many values sender=" + f.snd.Address().Hex() + " nonce=601"
	if err := v.Err(); !errors.Is(err, ErrTooManyNonces) || err.Error() != want {
		t.Fatalf("601st: %v", err)
	}
}

func TestWinnerStillQueuedWhenExpired(t *testing.T) {
	v := loadVectors(t)
	sc := &v.Scenarios[1] // B: nonce 1 wins
	r := newVectorRecipient(t, v, sc, nil)
	r.cfg.Blocks = vectorBlocks(t, v, 30_000_000)
	p, _ := wire.DecodePaymentHeader(sc.PaymentHeader)
	res, err := r.Receive(context.Background(), p, big.NewRat(1, 1), NewMemNonceBook(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Credit().Sign() != 0 || len(res.Winners()) != 1 || !errors.Is(res.Tickets[0].Err, ErrTicketParamsExpired) {
		t.Fatalf("credit %v winners %d err %v", res.Credit(), len(res.Winners()), res.Tickets[0].Err)
	}
}

type failingBook struct{ verdicts []NonceVerdict }

func (b failingBook) RecordNonces(context.Context, NonceSession, []uint32) ([]NonceVerdict, error) {
	if b.verdicts != nil {
		return b.verdicts, nil
	}
	return nil, errors.New("disk on fire")
}

func TestSettleErrors(t *testing.T) {
	f := newFixture(t)
	p := f.pay(t, 2)
	v, err := f.rcpt.Validate(p, f.price)
	if err != nil {
		t.Fatal(err)
	}
	if v.Credit().Sign() != 0 || v.Settled() {
		t.Fatal("credit before Settle")
	}
	if err := v.Settle(context.Background(), failingBook{}); !errors.Is(err, ErrNonceBook) || v.Settled() {
		t.Fatalf("failing book: %v", err)
	}
	if err := v.Settle(context.Background(), failingBook{verdicts: []NonceVerdict{NonceAccepted}}); !errors.Is(err, ErrNonceBook) {
		t.Fatalf("short verdicts: %v", err)
	}
	if err := v.Settle(context.Background(), nil); !errors.Is(err, ErrNonceBook) {
		t.Fatalf("nil book: %v", err)
	}
	book := NewMemNonceBook(0)
	if err := v.Settle(context.Background(), book); err != nil {
		t.Fatal(err)
	}
	first := v.Credit()
	// A store retrying its transaction settles again: with a fresh view of
	// the book the decision is the same; with the nonces recorded, a replay.
	if err := v.Settle(context.Background(), NewMemNonceBook(0)); err != nil || v.Credit().Cmp(first) != 0 || !v.Settled() {
		t.Fatalf("settle again on a fresh book: %v, credit %v want %v", err, v.Credit(), first)
	}
	if err := v.Settle(context.Background(), book); err != nil || v.Credit().Sign() != 0 || v.Err() == nil {
		t.Fatalf("settle again on the same book: %v, credit %v, err %v", err, v.Credit(), v.Err())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v2, _ := f.rcpt.Validate(p, f.price)
	if err := v2.Settle(ctx, NewMemNonceBook(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestTicketParamsIssuance(t *testing.T) {
	f := newFixture(t)
	sender := f.snd.Address()
	p1, err := f.rcpt.TicketParams(sender, f.price)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := f.rcpt.TicketParams(sender, f.price)
	if p1.RecipientRandHash == p2.RecipientRandHash || p1.Seed.Cmp(p2.Seed) == 0 {
		t.Fatal("two issuances share a session")
	}
	if p1.ExpirationBlock.Int64() != 20_000_040 || p1.ExpirationParams.CreationRound != 3500 {
		t.Fatalf("params %+v", p1)
	}
	if p1.EV().Cmp(new(big.Rat).SetInt64(DefaultTicketEV)) < 0 {
		t.Fatal("EV below target")
	}
	if _, err := f.rcpt.TicketParams(sender, big.NewRat(-1, 1)); !errors.Is(err, ErrInvalidPrice) {
		t.Fatalf("negative price: %v", err)
	}
	if _, err := f.rcpt.TicketParams(sender, nil); !errors.Is(err, ErrInvalidPrice) {
		t.Fatalf("nil price: %v", err)
	}
	f.rcpt.cfg.MaxFloat = func(common.Address) (*big.Int, error) { return big.NewInt(1000), nil }
	if _, err := f.rcpt.TicketParams(sender, f.price); !errors.Is(err, ErrInsufficientReserve) {
		t.Fatalf("tiny max float: %v", err)
	}
	// A zero sender (offchain BYOC) still gets params, e.g. at price 0.
	if p, err := f.rcpt.TicketParams(common.Address{}, new(big.Rat)); err != nil || p.FaceValue.Sign() != 0 {
		t.Fatalf("zero sender: %v", err)
	}
}

func TestNewRecipientChecks(t *testing.T) {
	v := loadVectors(t)
	ok := RecipientConfig{Address: common.HexToAddress(v.Keys.RecipientAddress), Secret: secretOf(t, v), Blocks: vectorBlocks(t, v, 1)}
	for name, mut := range map[string]func(c *RecipientConfig){
		"no address": func(c *RecipientConfig) { c.Address = common.Address{} },
		"no secret":  func(c *RecipientConfig) { c.Secret = [32]byte{} },
		"no blocks":  func(c *RecipientConfig) { c.Blocks = nil },
		"zero EV":    func(c *RecipientConfig) { c.TicketEV = new(big.Int) },
	} {
		c := ok
		mut(&c)
		if _, err := NewRecipient(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewRecipient(ok); err != nil {
		t.Fatal(err)
	}
}

func TestFaceValueAndWinProb(t *testing.T) {
	ev := big.NewInt(8_000_000_000)
	cases := []struct {
		name string
		in   FaceValueInputs
		want string
		err  error
	}{
		{"gas 1e7", FaceValueInputs{TicketEV: ev, GasPrice: big.NewInt(1e7), RedeemGas: 1_200_000, TxCostMultiplier: 100}, "1200000000000000", nil},
		{"gas 0 -> EV x 100", FaceValueInputs{TicketEV: ev, RedeemGas: 1_200_000, TxCostMultiplier: 100}, "800000000000", nil},
		{"max face value", FaceValueInputs{TicketEV: ev, GasPrice: big.NewInt(1), RedeemGas: 1_200_000, TxCostMultiplier: 100, MaxFaceValue: big.NewInt(16e9)}, "16000000000", nil},
		{"max float caps", FaceValueInputs{TicketEV: ev, GasPrice: big.NewInt(1e7), RedeemGas: 1_200_000, TxCostMultiplier: 100, MaxFloat: big.NewInt(1e14)}, "100000000000000", nil},
		{"below EV", FaceValueInputs{TicketEV: ev, RedeemGas: 1_200_000, TxCostMultiplier: 100, MaxFloat: big.NewInt(1e9)}, "", ErrInsufficientReserve},
		{"below tx cost", FaceValueInputs{TicketEV: ev, GasPrice: big.NewInt(1e10), RedeemGas: 1_200_000, TxCostMultiplier: 100, MaxFloat: big.NewInt(1e10)}, "", ErrInsufficientReserve},
	}
	for _, tc := range cases {
		fv, err := FaceValue(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v", tc.name, err)
			}
			continue
		}
		if err != nil || fv.String() != tc.want {
			t.Errorf("%s: %v %v", tc.name, fv, err)
		}
	}
	if WinProb(ev, ev).Cmp(MaxWinProb()) != 0 || WinProb(new(big.Int), ev).Sign() != 0 {
		t.Error("win prob edge cases")
	}
	// EV·(q+1) may exceed 2^256−1 when ev is close to the face value.
	big255 := new(big.Int).Lsh(big.NewInt(1), 255)
	if wp := WinProb(new(big.Int).Add(big255, big.NewInt(1)), big255); wp.Cmp(MaxWinProb()) != 0 {
		t.Errorf("win prob not capped: %x", wp)
	}
	// The resulting EV is never below the target.
	for _, fv := range []int64{8_000_000_001, 16_000_000_000, 1_200_000_000_000_000, 999_999_999_999} {
		wp := WinProb(big.NewInt(fv), ev)
		if TicketEV(big.NewInt(fv), wp).Cmp(new(big.Rat).SetInt(ev)) < 0 {
			t.Errorf("fv %d: EV below target", fv)
		}
	}
}

func TestPriceHelpers(t *testing.T) {
	p, err := WirePrice(big.NewRat(4000, 6))
	if err != nil || !bytes.Equal(p.Marshal(), (&wire.PriceInfo{PricePerUnit: 2000, PixelsPerUnit: 3}).Marshal()) {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := WirePrice(new(big.Rat).SetFrac(new(big.Int).Lsh(big.NewInt(1), 70), big.NewInt(3))); !errors.Is(err, ErrInvalidPrice) {
		t.Fatal("huge price accepted")
	}
	r, err := ParsePrice(&wire.PriceInfo{PricePerUnit: 4000, PixelsPerUnit: 6})
	if err != nil || r.RatString() != "2000/3" {
		t.Fatalf("%v %v", r, err)
	}
}

func TestRandomSecretsDisagree(t *testing.T) {
	f := newFixture(t)
	p := f.pay(t, 1)
	var other [32]byte
	if _, err := rand.Read(other[:]); err != nil {
		t.Fatal(err)
	}
	f.rcpt.cfg.Secret = other
	r2, err := NewRecipient(f.rcpt.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Validate(p, f.price); !errors.Is(err, ErrInvalidRecipientRand) {
		t.Fatalf("params from another secret: %v", err)
	}
}
