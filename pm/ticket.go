package pm

import (
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// Sizes of the ticket hash preimage (Solidity abi.encodePacked of the
// on-chain Ticket struct).
const (
	// AuxDataLen is the length of non-empty auxData: uint256(round)‖blockHash.
	AuxDataLen = 64
	// PreimageLen is the preimage length with auxData.
	PreimageLen = 168 + AuxDataLen
	// PreimageLenNoAux is the preimage length with empty auxData.
	PreimageLenNoAux = 168
)

var (
	two256     = new(big.Int).Lsh(big.NewInt(1), 256)
	maxUint256 = new(big.Int).Sub(two256, big.NewInt(1))
)

// MaxWinProb returns 2^256−1, the win probability of a ticket that always
// wins and the denominator of every win probability.
func MaxWinProb() *big.Int { return new(big.Int).Set(maxUint256) }

// Ticket is a PM ticket as the recipient rebuilds it from a payment.
// ParamsExpirationBlock and PricePerPixel are not part of the ticket hash;
// they are bound to it through recipientRand.
type Ticket struct {
	Recipient              common.Address
	Sender                 common.Address
	FaceValue              *big.Int // wei, < 2^256; nil means 0
	WinProb                *big.Int // numerator over 2^256−1; nil means 0
	SenderNonce            uint32
	RecipientRandHash      common.Hash
	CreationRound          int64 // must not be negative
	CreationRoundBlockHash common.Hash
	ParamsExpirationBlock  *big.Int
	PricePerPixel          *big.Rat
}

// AuxData returns the ticket's auxData: uint256(round)‖blockHash, or the
// empty string when round is 0 and blockHash is zero. A negative round is
// rejected with ErrValueOutOfRange.
func AuxData(round int64, blockHash common.Hash) ([]byte, error) {
	if round < 0 {
		return nil, fmt.Errorf("%w: negative creation round %d", ErrValueOutOfRange, round)
	}
	if round == 0 && blockHash == (common.Hash{}) {
		return []byte{}, nil
	}
	b := make([]byte, AuxDataLen)
	binary.BigEndian.PutUint64(b[24:32], uint64(round))
	copy(b[32:], blockHash[:])
	return b, nil
}

// AuxData returns the ticket's auxData; see the function AuxData.
func (t *Ticket) AuxData() ([]byte, error) {
	return AuxData(t.CreationRound, t.CreationRoundBlockHash)
}

// Preimage returns the bytes whose keccak256 is the ticket hash: recipient,
// sender, faceValue, winProb, senderNonce, recipientRandHash, auxData (232
// bytes, or 168 when auxData is empty). Values outside uint256 are rejected
// with ErrValueOutOfRange rather than giving a longer preimage.
func (t *Ticket) Preimage() ([]byte, error) {
	aux, err := t.AuxData()
	if err != nil {
		return nil, err
	}
	b := make([]byte, PreimageLenNoAux+len(aux))
	copy(b[0:20], t.Recipient[:])
	copy(b[20:40], t.Sender[:])
	if err := putUint256(b[40:72], t.FaceValue, "faceValue"); err != nil {
		return nil, err
	}
	if err := putUint256(b[72:104], t.WinProb, "winProb"); err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(b[132:136], t.SenderNonce)
	copy(b[136:168], t.RecipientRandHash[:])
	copy(b[168:], aux)
	return b, nil
}

// Hash returns the ticket hash, keccak256(Preimage()), which is also the
// TicketBroker's usedTickets key and byoc's idempotency key for a ticket.
func (t *Ticket) Hash() (common.Hash, error) {
	pre, err := t.Preimage()
	if err != nil {
		return common.Hash{}, err
	}
	return crypto.Keccak256Hash(pre), nil
}

// EV returns the ticket's expected value, FaceValue·WinProb/(2^256−1).
func (t *Ticket) EV() *big.Rat { return TicketEV(t.FaceValue, t.WinProb) }

// TicketEV returns faceValue·winProb/(2^256−1) as an exact, reduced
// rational. Nil inputs count as zero.
func TicketEV(faceValue, winProb *big.Int) *big.Rat {
	if faceValue == nil || winProb == nil || faceValue.Sign() == 0 || winProb.Sign() == 0 {
		return new(big.Rat)
	}
	num := new(big.Int).Mul(faceValue, winProb)
	return new(big.Rat).SetFrac(num, maxUint256)
}

// checkUint256 returns ErrValueOutOfRange unless 0 <= v < 2^256 (nil is 0).
func checkUint256(v *big.Int, name string) error {
	if v == nil {
		return nil
	}
	if v.Sign() < 0 || v.BitLen() > 256 {
		return fmt.Errorf("%w: %s", ErrValueOutOfRange, name)
	}
	return nil
}

// putUint256 writes v big-endian, left-padded, into the 32-byte dst.
func putUint256(dst []byte, v *big.Int, name string) error {
	if err := checkUint256(v, name); err != nil {
		return err
	}
	clear(dst)
	if v != nil {
		v.FillBytes(dst)
	}
	return nil
}

// uint256FromBytes parses a big-endian integer as go-livepeer does
// (leading zeros allowed) and rejects values of 2^256 or more.
func uint256FromBytes(b []byte, name string) (*big.Int, error) {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) > 32 {
		return nil, fmt.Errorf("%w: %s has %d significant bytes", ErrValueOutOfRange, name, len(b))
	}
	return new(big.Int).SetBytes(b), nil
}

// pad32 returns v as 32 big-endian bytes; v must already be checked.
func pad32(v *big.Int) (out [32]byte) {
	if v != nil {
		v.FillBytes(out[:])
	}
	return out
}
