package pm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// SecretLength is the length of a recipient's HMAC secret.
const SecretLength = 32

// RecipientRandMessage returns the HMAC input that binds recipientRand to a
// ticket session: seed ‖ sender ‖ faceValue ‖ winProb ‖ expirationBlock ‖
// price.Num ‖ price.Denom ‖ auxData, each integer in its minimal big-endian
// form (zero is empty) and the price in lowest terms (so 4000/6 hashes like
// 2000/3; a zero price gives an empty numerator and denominator 0x01). There
// are no length prefixes. Nil integers count as zero and a nil price as 0.
// Integers must be non-negative; the sign of a negative one is dropped, as
// go-livepeer does, so callers must reject negatives first.
func RecipientRandMessage(seed *big.Int, sender common.Address, faceValue, winProb, expirationBlock *big.Int, price *big.Rat, auxData []byte) []byte {
	b := make([]byte, 0, 32+20+32+32+32+16+len(auxData)+16)
	return appendRandMessage(b, seed, sender, faceValue, winProb, expirationBlock, price, auxData)
}

func appendRandMessage(b []byte, seed *big.Int, sender common.Address, faceValue, winProb, expirationBlock *big.Int, price *big.Rat, auxData []byte) []byte {
	b = appendMinimal(b, seed)
	b = append(b, sender[:]...)
	b = appendMinimal(b, faceValue)
	b = appendMinimal(b, winProb)
	b = appendMinimal(b, expirationBlock)
	if price == nil {
		price = new(big.Rat)
	}
	b = appendMinimal(b, price.Num())
	b = appendMinimal(b, price.Denom())
	return append(b, auxData...)
}

func appendMinimal(b []byte, v *big.Int) []byte {
	if v == nil || v.Sign() == 0 {
		return b
	}
	n := (v.BitLen() + 7) / 8
	b = slices.Grow(b, n)[:len(b)+n]
	if v.Sign() < 0 {
		v = new(big.Int).Abs(v)
	}
	v.FillBytes(b[len(b)-n:])
	return b
}

// ComputeRecipientRand returns HMAC-SHA256(secret, msg), which read as a
// big-endian uint256 is recipientRand.
func ComputeRecipientRand(secret [SecretLength]byte, msg []byte) [32]byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write(msg)
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// RecipientRandHash returns keccak256(pad32(recipientRand)), the commitment
// carried in ticket params and tickets.
func RecipientRandHash(recipientRand [32]byte) common.Hash {
	return crypto.Keccak256Hash(recipientRand[:])
}

// IsWinningTicket reports whether keccak256(sig ‖ pad32(recipientRand)) read
// as a uint256 is below winProb. sig must be exactly the bytes sent, with v
// = 27/28. A nil or non-positive winProb never wins.
func IsWinningTicket(sig []byte, recipientRand [32]byte, winProb *big.Int) bool {
	if winProb == nil || winProb.Sign() <= 0 {
		return false
	}
	if winProb.BitLen() > 256 {
		return true
	}
	wp := pad32(winProb)
	return isWinning(crypto.Keccak256Hash(sig, recipientRand[:]), wp)
}

// isWinning compares the win-check hash with a padded win probability.
func isWinning(h common.Hash, winProb [32]byte) bool {
	return bytes.Compare(h[:], winProb[:]) < 0
}
