package pm

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"byoc/wire"
)

// ExpirationParams are the creation round and its L1 block hash stamped into
// a ticket's auxData.
type ExpirationParams struct {
	CreationRound          int64
	CreationRoundBlockHash common.Hash
}

// AuxData returns the auxData for these params; see the function AuxData.
func (e ExpirationParams) AuxData() ([]byte, error) {
	return AuxData(e.CreationRound, e.CreationRoundBlockHash)
}

// Wire returns the protobuf form. A zero hash is left out, as go-livepeer
// does for empty bytes.
func (e ExpirationParams) Wire() *wire.TicketExpirationParams {
	w := &wire.TicketExpirationParams{CreationRound: e.CreationRound}
	if e.CreationRoundBlockHash != (common.Hash{}) {
		w.CreationRoundBlockHash = append([]byte(nil), e.CreationRoundBlockHash[:]...)
	}
	return w
}

// ParseExpirationParams converts the protobuf form. Nil gives round 0 and a
// zero hash (empty auxData). The hash must be empty or 32 bytes and the round
// non-negative; otherwise the error wraps ErrMalformedPayment.
func ParseExpirationParams(w *wire.TicketExpirationParams) (ExpirationParams, error) {
	var e ExpirationParams
	if w == nil {
		return e, nil
	}
	if w.CreationRound < 0 {
		return e, fmt.Errorf("%w: negative creation round", ErrMalformedPayment)
	}
	switch len(w.CreationRoundBlockHash) {
	case 0:
	case common.HashLength:
		copy(e.CreationRoundBlockHash[:], w.CreationRoundBlockHash)
	default:
		return e, fmt.Errorf("%w: creation round block hash has %d bytes", ErrMalformedPayment, len(w.CreationRoundBlockHash))
	}
	e.CreationRound = w.CreationRound
	return e, nil
}

// TicketParams are a recipient's parameters for one ticket session, as the
// recipient issues them and as a sender receives them.
type TicketParams struct {
	Recipient         common.Address
	FaceValue         *big.Int // wei
	WinProb           *big.Int // numerator over 2^256−1
	RecipientRandHash common.Hash
	Seed              *big.Int
	ExpirationBlock   *big.Int // L1 block after which the params are stale
	// PricePerPixel is the price the params were issued for (bound through
	// recipientRand). It is not on the wire inside TicketParams; nil when
	// parsed from the wire.
	PricePerPixel    *big.Rat
	ExpirationParams ExpirationParams
}

// EV returns the expected value of one ticket under these params.
func (p *TicketParams) EV() *big.Rat { return TicketEV(p.FaceValue, p.WinProb) }

// Wire returns the protobuf form with fields 1–7 set, as a recipient puts it
// in OrchestratorInfo and BYOC job tokens. Integers are minimal big-endian
// (zero omitted).
func (p *TicketParams) Wire() *wire.TicketParams {
	return &wire.TicketParams{
		Recipient:         append([]byte(nil), p.Recipient[:]...),
		FaceValue:         minimalBytes(p.FaceValue),
		WinProb:           minimalBytes(p.WinProb),
		RecipientRandHash: append([]byte(nil), p.RecipientRandHash[:]...),
		Seed:              minimalBytes(p.Seed),
		ExpirationBlock:   minimalBytes(p.ExpirationBlock),
		ExpirationParams:  p.ExpirationParams.Wire(),
	}
}

func minimalBytes(v *big.Int) []byte {
	if v == nil || v.Sign() == 0 {
		return nil
	}
	return v.Bytes()
}

// ParseTicketParams converts protobuf ticket params, strictly: the recipient
// must be 20 bytes (else ErrInvalidRecipient), the recipientRandHash 32
// bytes (else ErrInvalidRecipientRand), every integer below 2^256 (else
// ErrValueOutOfRange). ExpirationParams come from field 7 when present.
func ParseTicketParams(w *wire.TicketParams) (*TicketParams, error) {
	if w == nil {
		return nil, ErrNoTicketParams
	}
	p := new(TicketParams)
	if len(w.Recipient) != common.AddressLength {
		return nil, fmt.Errorf("%w: recipient has %d bytes", ErrInvalidRecipient, len(w.Recipient))
	}
	copy(p.Recipient[:], w.Recipient)
	if len(w.RecipientRandHash) != common.HashLength {
		return nil, fmt.Errorf("%w: hash has %d bytes", ErrInvalidRecipientRand, len(w.RecipientRandHash))
	}
	copy(p.RecipientRandHash[:], w.RecipientRandHash)
	var err error
	if p.FaceValue, err = uint256FromBytes(w.FaceValue, "face_value"); err != nil {
		return nil, err
	}
	if p.WinProb, err = uint256FromBytes(w.WinProb, "win_prob"); err != nil {
		return nil, err
	}
	if p.Seed, err = uint256FromBytes(w.Seed, "seed"); err != nil {
		return nil, err
	}
	if p.ExpirationBlock, err = uint256FromBytes(w.ExpirationBlock, "expiration_block"); err != nil {
		return nil, err
	}
	if p.ExpirationParams, err = ParseExpirationParams(w.ExpirationParams); err != nil {
		return nil, err
	}
	return p, nil
}

// ParsePrice returns the price of a PriceInfo, pricePerUnit/pixelsPerUnit,
// reduced. It fails, wrapping ErrInvalidExpectedPrice with go-livepeer's
// reason text, when p is nil, pixelsPerUnit is not positive or pricePerUnit
// is negative.
func ParsePrice(p *wire.PriceInfo) (*big.Rat, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("%w err=%q", ErrInvalidExpectedPrice, "expected price is nil")
	case p.PixelsPerUnit == 0:
		return nil, fmt.Errorf("%w err=%q", ErrInvalidExpectedPrice, "pixels per unit is 0")
	case p.PixelsPerUnit < 0:
		return nil, fmt.Errorf("%w err=%q", ErrInvalidExpectedPrice, "pixels per unit is negative")
	case p.PricePerUnit < 0:
		return nil, fmt.Errorf("%w err=%q", ErrInvalidExpectedPrice, "price per unit is negative")
	}
	return big.NewRat(p.PricePerUnit, p.PixelsPerUnit), nil
}

// WirePrice returns the PriceInfo for price in lowest terms. It fails with
// ErrInvalidPrice when price is nil, negative, or its numerator or
// denominator does not fit an int64.
func WirePrice(price *big.Rat) (*wire.PriceInfo, error) {
	if price == nil || price.Sign() < 0 || !price.Num().IsInt64() || !price.Denom().IsInt64() {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPrice, price)
	}
	return &wire.PriceInfo{PricePerUnit: price.Num().Int64(), PixelsPerUnit: price.Denom().Int64()}, nil
}

// FaceValueInputs are the inputs of the recipient's face value rule.
type FaceValueInputs struct {
	TicketEV         *big.Int // target EV per ticket, wei; must be > 0
	GasPrice         *big.Int // wei; nil means 0
	RedeemGas        uint64   // gas to redeem one winning ticket
	TxCostMultiplier uint64   // face value = multiplier × redemption cost
	MaxFloat         *big.Int // the sender's max float; nil means unlimited
	MaxFaceValue     *big.Int // operator cap; nil or 0 means unlimited
}

// avgGasPrice is the gas price go-livepeer assumes (3 gwei) when it decides
// whether a face value still covers a redemption.
var avgGasPrice = big.NewInt(3_000_000_000)

// FaceValue computes a ticket face value as go-livepeer's recipient does:
// txCost = RedeemGas·GasPrice; fv = txCost·TxCostMultiplier, raised to
// TicketEV·TxCostMultiplier when below TicketEV, then capped by MaxFloat and
// MaxFaceValue. It fails with ErrInsufficientReserve when the result is below
// TicketEV, or below both txCost and RedeemGas·3 gwei.
func FaceValue(in FaceValueInputs) (*big.Int, error) {
	if in.TicketEV == nil || in.TicketEV.Sign() <= 0 {
		return nil, fmt.Errorf("pm: ticket EV must be positive")
	}
	gasPrice := in.GasPrice
	if gasPrice == nil {
		gasPrice = new(big.Int)
	}
	redeemGas := new(big.Int).SetUint64(in.RedeemGas)
	mult := new(big.Int).SetUint64(in.TxCostMultiplier)
	txCost := new(big.Int).Mul(redeemGas, gasPrice)
	fv := new(big.Int).Mul(txCost, mult)
	if fv.Cmp(in.TicketEV) < 0 {
		fv.Mul(in.TicketEV, mult)
	}
	if in.MaxFloat != nil && fv.Cmp(in.MaxFloat) > 0 {
		fv.Set(in.MaxFloat)
	}
	if in.MaxFaceValue != nil && in.MaxFaceValue.Sign() > 0 && fv.Cmp(in.MaxFaceValue) > 0 {
		fv.Set(in.MaxFaceValue)
	}
	if fv.Cmp(in.TicketEV) < 0 {
		return nil, fmt.Errorf("%w: face value %v below ticket EV %v", ErrInsufficientReserve, fv, in.TicketEV)
	}
	if fv.Cmp(txCost) < 0 && fv.Cmp(new(big.Int).Mul(redeemGas, avgGasPrice)) < 0 {
		return nil, fmt.Errorf("%w: face value %v below redemption cost %v", ErrInsufficientReserve, fv, txCost)
	}
	if fv.BitLen() > 256 {
		return nil, fmt.Errorf("%w: face value", ErrValueOutOfRange)
	}
	return fv, nil
}

// WinProb returns the win probability numerator (over 2^256−1) that gives a
// ticket of faceValue an EV of at least ev: 0 for a zero face value, 2^256−1
// when faceValue equals ev, else ev·(q+1) when (2^256−1) mod faceValue ≠ 0
// and ev·q otherwise, with q = (2^256−1) div faceValue. The result is
// capped at 2^256−1 (only reachable when ev is close to faceValue).
func WinProb(faceValue, ev *big.Int) *big.Int {
	if faceValue == nil || faceValue.Sign() <= 0 || ev == nil || ev.Sign() <= 0 {
		return new(big.Int)
	}
	if faceValue.Cmp(ev) == 0 {
		return MaxWinProb()
	}
	q, r := new(big.Int).QuoRem(maxUint256, faceValue, new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	wp := q.Mul(q, ev)
	if wp.Cmp(maxUint256) > 0 {
		wp.Set(maxUint256)
	}
	return wp
}
