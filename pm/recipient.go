package pm

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"sync"
	"sync/atomic"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ethsig"
	"byoc/wire"
)

// Recipient defaults, as in go-livepeer.
const (
	// DefaultTicketEV is the target expected value of one ticket, in wei.
	DefaultTicketEV = 8_000_000_000
	// DefaultRedeemGas is the gas to redeem a winning ticket on Arbitrum.
	DefaultRedeemGas = 1_200_000
	// DefaultTxCostMultiplier makes the face value this many times the
	// redemption cost.
	DefaultTxCostMultiplier = 100
)

// RecipientConfig configures a Recipient.
type RecipientConfig struct {
	// Address is the recipient's (orchestrator's) ETH address; required.
	Address common.Address
	// Secret keys the recipientRand HMAC; required, not all zero. Persist it
	// (byoc keeps it in the node's data directory) so that params issued
	// before a restart stay valid after it.
	Secret [SecretLength]byte
	// Blocks supplies the last seen L1 block and the creation round;
	// required.
	Blocks BlockSource
	// TicketEV is the target EV per ticket in wei; nil selects
	// DefaultTicketEV.
	TicketEV *big.Int
	// RedeemGas is the gas one redemption costs; 0 selects DefaultRedeemGas.
	RedeemGas uint64
	// TxCostMultiplier: 0 selects DefaultTxCostMultiplier.
	TxCostMultiplier uint64
	// GasPrice returns the current gas price in wei; nil means 0.
	GasPrice func() *big.Int
	// MaxFaceValue caps face values; nil or 0 means no cap.
	MaxFaceValue *big.Int
	// MaxFloat returns a sender's max float (what its reserve can back for
	// this recipient); nil means unlimited.
	MaxFloat func(sender common.Address) (*big.Int, error)
	// ValidateSender, if set, is asked about a payment's sender before its
	// tickets are checked (go-livepeer: the sender's deposit and reserve are
	// not about to unlock). An error rejects the payment as fatal.
	ValidateSender func(sender common.Address) error
	// Rand is the source of ticket seeds; nil selects crypto/rand.
	Rand io.Reader
}

// Recipient issues ticket params and validates payments. It is safe for
// concurrent use and holds no per-payment state: replay protection lives in
// the NonceBook given to Validation.Settle.
type Recipient struct {
	cfg      RecipientConfig
	hmacs    sync.Pool // of hash.Hash keyed with cfg.Secret
	evCache  atomic.Pointer[evEntry]
	randLock sync.Mutex // serialises reads from cfg.Rand
}

type evEntry struct {
	faceValue, winProb [32]byte
	ev                 *big.Rat // never modified after publication
}

// NewRecipient checks cfg and returns a Recipient.
func NewRecipient(cfg RecipientConfig) (*Recipient, error) {
	if cfg.Address == (common.Address{}) {
		return nil, errors.New("pm: recipient address required")
	}
	if cfg.Secret == ([SecretLength]byte{}) {
		return nil, errors.New("pm: recipient secret must not be zero")
	}
	if cfg.Blocks == nil {
		return nil, errors.New("pm: recipient needs a block source")
	}
	if cfg.TicketEV == nil {
		cfg.TicketEV = big.NewInt(DefaultTicketEV)
	} else if cfg.TicketEV.Sign() <= 0 || cfg.TicketEV.BitLen() > 256 {
		return nil, errors.New("pm: ticket EV must be positive and below 2^256")
	} else {
		cfg.TicketEV = new(big.Int).Set(cfg.TicketEV)
	}
	if cfg.RedeemGas == 0 {
		cfg.RedeemGas = DefaultRedeemGas
	}
	if cfg.TxCostMultiplier == 0 {
		cfg.TxCostMultiplier = DefaultTxCostMultiplier
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	r := &Recipient{cfg: cfg}
	secret := cfg.Secret
	r.hmacs.New = func() any { return hmac.New(sha256.New, secret[:]) }
	return r, nil
}

// Address returns the recipient's address.
func (r *Recipient) Address() common.Address { return r.cfg.Address }

// TicketEV returns the configured target EV per ticket, in wei.
func (r *Recipient) TicketEV() *big.Int { return new(big.Int).Set(r.cfg.TicketEV) }

// TicketParams issues fresh params for sender to pay at price (wei per unit
// of work, reduced or not). A zero price gives a zero face value and win
// probability (tickets worth nothing, still well-formed). It fails with
// ErrInvalidPrice for a nil or negative price and ErrInsufficientReserve
// when the sender's max float is too small.
func (r *Recipient) TicketParams(sender common.Address, price *big.Rat) (*TicketParams, error) {
	if price == nil || price.Sign() < 0 {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPrice, price)
	}
	price = new(big.Rat).Set(price)
	var seedBytes [32]byte
	r.randLock.Lock()
	_, err := io.ReadFull(r.cfg.Rand, seedBytes[:])
	r.randLock.Unlock()
	if err != nil {
		return nil, fmt.Errorf("pm: reading seed: %w", err)
	}
	p := &TicketParams{
		Recipient:     r.cfg.Address,
		Seed:          new(big.Int).SetBytes(seedBytes[:]),
		PricePerPixel: price,
		FaceValue:     new(big.Int),
		WinProb:       new(big.Int),
	}
	last := r.cfg.Blocks.LastSeenL1Block()
	if last == nil || last.Sign() <= 0 {
		return nil, errors.New("pm: block source has no last seen L1 block")
	}
	p.ExpirationBlock = new(big.Int).Add(last, big.NewInt(ParamsValidityBlocks))
	p.ExpirationParams.CreationRound, p.ExpirationParams.CreationRoundBlockHash = r.cfg.Blocks.CreationRound()
	aux, err := p.ExpirationParams.AuxData()
	if err != nil {
		return nil, err
	}
	if price.Sign() > 0 {
		in := FaceValueInputs{
			TicketEV:         r.cfg.TicketEV,
			RedeemGas:        r.cfg.RedeemGas,
			TxCostMultiplier: r.cfg.TxCostMultiplier,
			MaxFaceValue:     r.cfg.MaxFaceValue,
		}
		if r.cfg.GasPrice != nil {
			in.GasPrice = r.cfg.GasPrice()
		}
		if r.cfg.MaxFloat != nil {
			if in.MaxFloat, err = r.cfg.MaxFloat(sender); err != nil {
				return nil, fmt.Errorf("pm: max float for %v: %w", sender, err)
			}
		}
		if p.FaceValue, err = FaceValue(in); err != nil {
			return nil, err
		}
		p.WinProb = WinProb(p.FaceValue, r.cfg.TicketEV)
	}
	msg := RecipientRandMessage(p.Seed, sender, p.FaceValue, p.WinProb, p.ExpirationBlock, price, aux)
	p.RecipientRandHash = RecipientRandHash(r.recipientRand(msg))
	return p, nil
}

func (r *Recipient) recipientRand(msg []byte) (out [32]byte) {
	r.recipientRandInto(msg, &out)
	return out
}

func (r *Recipient) recipientRandInto(msg []byte, out *[32]byte) {
	m := r.hmacs.Get().(hash.Hash)
	m.Reset()
	m.Write(msg)
	m.Sum(out[:0])
	r.hmacs.Put(m)
}

// ticketEV returns the shared, read-only EV for (faceValue, winProb),
// remembering the last pair: params change only with the gas price, so
// reducing the 512-bit fraction once serves every payment until then.
func (r *Recipient) ticketEV(fv, wp [32]byte, faceValue, winProb *big.Int) *big.Rat {
	if e := r.evCache.Load(); e != nil && e.faceValue == fv && e.winProb == wp {
		return e.ev
	}
	ev := TicketEV(faceValue, winProb)
	r.evCache.Store(&evEntry{faceValue: fv, winProb: wp, ev: ev})
	return ev
}

// TicketResult is the outcome for one ticket of a payment, in payment order.
type TicketResult struct {
	// Index is the ticket's position in the payment.
	Index int
	// TicketHash is the ticket hash: the on-chain usedTickets key and the
	// idempotency key for crediting the ticket.
	TicketHash common.Hash
	// RecipientRandHash is the ticket session the ticket belongs to.
	RecipientRandHash common.Hash
	// Nonce is the ticket's sender nonce.
	Nonce uint32
	// EV is the ticket's exact expected value (the credit it earns); a copy
	// the caller owns.
	EV *big.Rat
	// Won reports a winning ticket; only computed for valid signatures.
	Won bool
	// Err is the ticket's non-fatal error, in go-livepeer's order: invalid
	// signature (set by Validate), then nonce seen or too many, then params
	// expired (set by Settle).
	Err error
	// Credit is set by Settle when the ticket earns its EV: Err is nil and
	// no earlier ticket of the payment had an error.
	Credit bool
	// Blocked is set by Settle for a ticket that is valid (Err nil, nonce
	// recorded) but earns nothing because an earlier ticket of the same
	// payment failed: go-livepeer's rule that one bad ticket stops credit
	// for the rest of its payment.
	Blocked bool
	// Winner is set for a winning ticket with a valid signature, whatever
	// its nonce or expiry (go-livepeer still redeems those), with everything
	// needed to redeem it.
	Winner *SignedTicket

	sigValid bool
}

// Validation is the outcome of validating one payment. Validate fills it
// without touching any state; Settle then applies the nonce rule through a
// NonceBook and decides which tickets earn credit.
type Validation struct {
	// Sender is the payment's sender (zero if it named none).
	Sender common.Address
	// Price is the payment's declared price (expected_price), reduced; nil
	// when the payment declared none.
	Price *big.Rat
	// Params are the ticket params the payment's tickets were made from,
	// with PricePerPixel = Price and ExpirationParams from the payment's
	// top-level expiration_params; nil when the payment carries none.
	Params *TicketParams
	// Expired reports params at or past their expiration block.
	Expired bool
	// Tickets has one result per ticket, in payment order.
	Tickets []TicketResult

	settled bool
}

// Settled reports whether Settle has run.
func (v *Validation) Settled() bool { return v.settled }

// Credit returns the total EV of the tickets that earn credit (zero before
// Settle).
func (v *Validation) Credit() *big.Rat {
	sum := new(big.Rat)
	for i := range v.Tickets {
		if v.Tickets[i].Credit {
			sum.Add(sum, v.Tickets[i].EV)
		}
	}
	return sum
}

// Err returns the error go-livepeer reports for the whole payment (HTTP
// 400) after crediting what it could: the last ticket error, nil if none
// (e.g. "invalid ticket senderNonce: already seen sender=0x… nonce=3" for a
// replayed three-ticket payment).
func (v *Validation) Err() error {
	for i := len(v.Tickets) - 1; i >= 0; i-- {
		if v.Tickets[i].Err != nil {
			return v.Tickets[i].Err
		}
	}
	return nil
}

// Winners returns the winning tickets to queue for redemption.
func (v *Validation) Winners() []*SignedTicket {
	var out []*SignedTicket
	for i := range v.Tickets {
		if w := v.Tickets[i].Winner; w != nil {
			out = append(out, w)
		}
	}
	return out
}

// personalPrefix32 is the EIP-191 prefix for a 32-byte message.
var personalPrefix32 = []byte(ethsig.PersonalPrefix32)

// Validate checks a payment against this recipient without changing any
// state, in go-livepeer's order:
//
//  1. the sender, when present, is 20 bytes;
//  2. expected_price, when present, parses (pixelsPerUnit > 0, price >= 0)
//     and is not below quote (nil quote: no lower bound);
//  3. without ticket_params the payment carries no tickets and nothing more
//     is checked (an empty header, or a price-only payment);
//  4. with ticket_params: a sender and expected_price are required, then
//     ValidateSender, recipient == us, sender != 0, and recipientRand
//     recomputed from the payment's params must hash to their
//     recipientRandHash. Each is fatal.
//
// Then for each ticket: the signature (non-fatal, no credit), the win check,
// and expiry (recorded for Settle, which orders it after the nonce check).
// Every error returned is a *FatalError; with one, no ticket may be
// credited. recipientRand is computed once per payment.
func (r *Recipient) Validate(p *wire.Payment, quote *big.Rat) (*Validation, error) {
	v := new(Validation)
	if p == nil {
		return v, nil
	}
	if len(p.Sender) != 0 {
		if len(p.Sender) != common.AddressLength {
			return nil, fatalf(ErrInvalidSender, "sender has %d bytes", len(p.Sender))
		}
		v.Sender = common.BytesToAddress(p.Sender)
	}
	if p.ExpectedPrice != nil {
		price, err := ParsePrice(p.ExpectedPrice)
		if err != nil {
			return nil, fatal(err)
		}
		if quote != nil && price.Cmp(quote) < 0 {
			return nil, fatalf(ErrPriceBelowQuote, "%v < %v", price.RatString(), quote.RatString())
		}
		v.Price = price
	}
	if p.TicketParams == nil {
		if len(p.TicketSenderParams) > 0 {
			return nil, fatalf(ErrMalformedPayment, "tickets without ticket_params")
		}
		return v, nil
	}
	if len(p.Sender) == 0 {
		return nil, fatal(ErrMissingSender)
	}
	if v.Price == nil {
		_, err := ParsePrice(nil)
		return nil, fatal(err)
	}
	if r.cfg.ValidateSender != nil {
		if err := r.cfg.ValidateSender(v.Sender); err != nil {
			return nil, fatal(err)
		}
	}
	params, err := ParseTicketParams(p.TicketParams)
	if err != nil {
		return nil, fatal(err)
	}
	if params.Recipient != r.cfg.Address {
		return nil, fatal(ErrInvalidRecipient)
	}
	if v.Sender == (common.Address{}) {
		return nil, fatal(ErrInvalidSender)
	}
	// The top-level expiration_params, not field 7, are what the tickets
	// were signed over and what the HMAC covers.
	if params.ExpirationParams, err = ParseExpirationParams(p.ExpirationParams); err != nil {
		return nil, fatal(err)
	}
	params.PricePerPixel = v.Price
	v.Params = params

	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	pre := &sc.pre
	clear(pre[:])
	preLen := PreimageLenNoAux
	copy(pre[0:20], params.Recipient[:])
	copy(pre[20:40], v.Sender[:])
	fv, wp := pad32(params.FaceValue), pad32(params.WinProb)
	copy(pre[40:72], fv[:])
	copy(pre[72:104], wp[:])
	copy(pre[136:168], params.RecipientRandHash[:])
	if params.ExpirationParams.CreationRound != 0 || params.ExpirationParams.CreationRoundBlockHash != (common.Hash{}) {
		binary.BigEndian.PutUint64(pre[192:200], uint64(params.ExpirationParams.CreationRound))
		copy(pre[200:232], params.ExpirationParams.CreationRoundBlockHash[:])
		preLen = PreimageLen
	}

	msg := appendRandMessage(sc.msg[:0], params.Seed, v.Sender, params.FaceValue, params.WinProb,
		params.ExpirationBlock, v.Price, pre[PreimageLenNoAux:preLen])
	r.recipientRandInto(msg, &sc.rand)
	recipientRand := sc.rand
	kh := sc.kh
	kh.Reset()
	kh.Write(recipientRand[:])
	kh.Read(sc.h[:])
	if sc.h != params.RecipientRandHash {
		return nil, fatal(ErrInvalidRecipientRand)
	}

	last := r.cfg.Blocks.LastSeenL1Block()
	v.Expired = last == nil || params.ExpirationBlock.Cmp(last) <= 0
	ev := r.ticketEV(fv, wp, params.FaceValue, params.WinProb)

	v.Tickets = make([]TicketResult, len(p.TicketSenderParams))
	for i, tsp := range p.TicketSenderParams {
		var nonce uint32
		var sig []byte
		if tsp != nil {
			nonce, sig = tsp.SenderNonce, tsp.Sig
		}
		res := &v.Tickets[i]
		res.Index, res.Nonce, res.RecipientRandHash = i, nonce, params.RecipientRandHash
		res.EV = new(big.Rat).Set(ev)

		binary.BigEndian.PutUint32(pre[132:136], nonce)
		kh.Reset()
		kh.Write(pre[:preLen])
		kh.Read(res.TicketHash[:])

		kh.Reset()
		kh.Write(personalPrefix32)
		kh.Write(res.TicketHash[:])
		kh.Read(sc.digest[:])
		signer, err := sc.rec.RecoverDigest(sc.digest[:], sig)
		if err != nil || signer != v.Sender {
			res.Err = ErrInvalidSignature
			continue
		}
		res.sigValid = true

		kh.Reset()
		kh.Write(sig)
		kh.Write(recipientRand[:])
		kh.Read(sc.win[:])
		if res.Won = isWinning(sc.win, wp); res.Won {
			res.Winner = &SignedTicket{
				Ticket:        params.ticket(v.Sender, nonce),
				Hash:          res.TicketHash,
				Sig:           append([]byte(nil), sig...),
				RecipientRand: recipientRand,
			}
		}
	}
	return v, nil
}

// ticket returns the full ticket for a nonce, with its own copies of the
// numbers.
func (p *TicketParams) ticket(sender common.Address, nonce uint32) Ticket {
	t := Ticket{
		Recipient:              p.Recipient,
		Sender:                 sender,
		FaceValue:              new(big.Int).Set(p.FaceValue),
		WinProb:                new(big.Int).Set(p.WinProb),
		SenderNonce:            nonce,
		RecipientRandHash:      p.RecipientRandHash,
		CreationRound:          p.ExpirationParams.CreationRound,
		CreationRoundBlockHash: p.ExpirationParams.CreationRoundBlockHash,
		ParamsExpirationBlock:  new(big.Int).Set(p.ExpirationBlock),
	}
	if p.PricePerPixel != nil {
		t.PricePerPixel = new(big.Rat).Set(p.PricePerPixel)
	}
	return t
}

// Settle applies the replay rule and decides credit. The nonces of tickets
// with valid signatures (Validation.Nonces) are given, in payment order, to
// book in one RecordNonces call (so a payment's nonces are recorded
// atomically); then SettleNonces decides with its verdicts.
//
// Each call starts again from what Validate found. It returns an error
// wrapping ErrNonceBook when the book fails, in which case nothing should
// be credited. A durable store that applies the nonce rule inside its own
// transaction (byoc's ledger) takes Nonces and gives its verdicts to
// SettleNonces instead, so nothing calls back out of the transaction.
func (v *Validation) Settle(ctx context.Context, book NonceBook) error {
	nonces := v.Nonces()
	var verdicts []NonceVerdict
	if len(nonces) > 0 {
		if book == nil {
			return fmt.Errorf("%w: %v", ErrNonceBook, errNilNonceBook)
		}
		var err error
		verdicts, err = book.RecordNonces(ctx, NonceSession{
			RecipientRandHash: v.Params.RecipientRandHash,
			Sender:            v.Sender,
			ExpirationBlock:   new(big.Int).Set(v.Params.ExpirationBlock),
		}, nonces)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNonceBook, err)
		}
	}
	return v.SettleNonces(verdicts)
}

// Nonces are the nonces the replay rule must see: those of the tickets with
// valid signatures, in payment order.
func (v *Validation) Nonces() []uint32 {
	var nonces []uint32
	for i := range v.Tickets {
		if v.Tickets[i].sigValid {
			nonces = append(nonces, v.Tickets[i].Nonce)
		}
	}
	return nonces
}

// SettleNonces decides credit from the replay rule's verdicts, one per
// nonce of Nonces: a rejected nonce becomes the ticket's error, then
// expiry; each ticket earns credit only if it has no error and no earlier
// ticket had one (TicketResult.Blocked marks valid tickets that lose credit
// that way). Each call starts again from what Validate found.
func (v *Validation) SettleNonces(verdicts []NonceVerdict) error {
	for i := range v.Tickets {
		t := &v.Tickets[i]
		if t.sigValid {
			t.Err = nil // Validate leaves errors only on invalid signatures
		}
		t.Credit, t.Blocked = false, false
	}
	v.settled = false
	if n := len(v.Nonces()); len(verdicts) != n {
		return fmt.Errorf("%w: %d verdicts for %d nonces", ErrNonceBook, len(verdicts), n)
	}
	blocked := false
	k := 0
	for i := range v.Tickets {
		t := &v.Tickets[i]
		if t.sigValid {
			if vd := verdicts[k]; vd != NonceAccepted {
				t.Err = &NonceError{Sender: v.Sender, Nonce: t.Nonce, Verdict: vd}
			} else if v.Expired {
				t.Err = ErrTicketParamsExpired
			}
			k++
		}
		t.Credit = t.Err == nil && !blocked
		t.Blocked = t.Err == nil && blocked
		if t.Err != nil {
			blocked = true
		}
	}
	v.settled = true
	return nil
}

// Receive validates and settles a payment in one step: Validate, then
// Settle with book. Fatal errors are returned as *FatalError; per-ticket
// errors are in the result (see Validation.Err).
func (r *Recipient) Receive(ctx context.Context, p *wire.Payment, quote *big.Rat, book NonceBook) (*Validation, error) {
	v, err := r.Validate(p, quote)
	if err != nil {
		return nil, err
	}
	if err := v.Settle(ctx, book); err != nil {
		return nil, err
	}
	return v, nil
}
