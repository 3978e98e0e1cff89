package pm

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// SignatureLength is the length of a PM signature: r (32) ‖ s (32) ‖ v (1),
// with v = 27 or 28.
const SignatureLength = 65

// secp256k1HalfN is secp256k1's group order divided by two; a signature with
// a larger s is rejected (EIP-2 low-s rule, as go-livepeer and OpenZeppelin).
var secp256k1HalfN = common.FromHex("0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")

// PersonalSignDigest returns the EIP-191 personal-sign digest of msg:
// keccak256("\x19Ethereum Signed Message:\n" + decimal len(msg) + msg).
// For a ticket, msg is the 32-byte ticket hash.
func PersonalSignDigest(msg []byte) common.Hash {
	prefix := "\x19Ethereum Signed Message:\n" + strconv.Itoa(len(msg))
	return crypto.Keccak256Hash([]byte(prefix), msg)
}

// Signer produces EIP-191 personal-sign signatures. Implementations must
// return 65 bytes r‖s‖v with low s and v = 27 or 28, and be safe for
// concurrent use.
type Signer interface {
	// Address returns the signer's ETH address.
	Address() common.Address
	// SignPersonal signs PersonalSignDigest(msg).
	SignPersonal(msg []byte) ([]byte, error)
}

// KeySigner is a Signer holding a secp256k1 private key in memory. Its
// signatures are deterministic (RFC 6979), so they can be compared with
// go-livepeer's byte for byte.
type KeySigner struct {
	key  *ecdsa.PrivateKey
	addr common.Address
}

// NewKeySigner returns a signer for key.
func NewKeySigner(key *ecdsa.PrivateKey) (*KeySigner, error) {
	if key == nil || key.D == nil {
		return nil, errors.New("pm: nil private key")
	}
	return &KeySigner{key: key, addr: crypto.PubkeyToAddress(key.PublicKey)}, nil
}

// KeySignerFromHex parses a raw hex private key (with or without 0x), for
// development setups.
func KeySignerFromHex(s string) (*KeySigner, error) {
	key, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil {
		return nil, fmt.Errorf("pm: parsing hex key: %w", err)
	}
	return NewKeySigner(key)
}

// Address returns the signer's address.
func (s *KeySigner) Address() common.Address { return s.addr }

// SignPersonal signs PersonalSignDigest(msg) and returns r‖s‖v with v = 27
// or 28.
func (s *KeySigner) SignPersonal(msg []byte) ([]byte, error) {
	d := PersonalSignDigest(msg)
	return s.signDigest(d[:])
}

func (s *KeySigner) signDigest(digest []byte) ([]byte, error) {
	sig, err := crypto.Sign(digest, s.key)
	if err != nil {
		return nil, fmt.Errorf("pm: signing: %w", err)
	}
	sig[64] += 27
	return sig, nil
}

// RecoverPersonalSigner returns the address whose key made sig, a
// personal-sign signature over msg. It applies the recipient's rules: 65
// bytes, s in the lower half of the curve order, v = 27 or 28. Failures wrap
// ErrInvalidSignature.
func RecoverPersonalSigner(msg, sig []byte) (common.Address, error) {
	d := PersonalSignDigest(msg)
	return recoverDigest(d[:], sig)
}

// VerifyPersonalSig checks that sig is addr's personal-sign signature over
// msg; failures wrap ErrInvalidSignature.
func VerifyPersonalSig(addr common.Address, msg, sig []byte) error {
	got, err := RecoverPersonalSigner(msg, sig)
	if err != nil {
		return err
	}
	if got != addr {
		return fmt.Errorf("%w: signed by %v, not %v", ErrInvalidSignature, got, addr)
	}
	return nil
}

// scratch holds the buffers of one signature check or payment validation,
// recycled through scratchPool so that the hot path does not allocate them.
type scratch struct {
	kh                    crypto.KeccakState
	pre                   [PreimageLen]byte
	msg                   [256]byte
	rand                  [32]byte
	h, digest, win, pubKH common.Hash
	sig                   [SignatureLength]byte
}

var scratchPool = sync.Pool{New: func() any { return &scratch{kh: crypto.NewKeccakState()} }}

// recoverDigest recovers the signer of a digest; see recover.
func recoverDigest(digest, sig []byte) (common.Address, error) {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	return sc.recover(digest, sig)
}

// recover checks sig against the recipient's rules (65 bytes, low s,
// v = 27/28) and returns the address that signed digest.
func (sc *scratch) recover(digest, sig []byte) (common.Address, error) {
	if len(sig) != SignatureLength {
		return common.Address{}, fmt.Errorf("%w: length %d", ErrInvalidSignature, len(sig))
	}
	if bytes.Compare(sig[32:64], secp256k1HalfN) > 0 {
		return common.Address{}, fmt.Errorf("%w: signature s value too high", ErrInvalidSignature)
	}
	v := sig[64]
	if v != 27 && v != 28 {
		return common.Address{}, fmt.Errorf("%w: v = %d", ErrInvalidSignature, v)
	}
	copy(sc.sig[:], sig)
	sc.sig[64] = v - 27
	pub, err := crypto.Ecrecover(digest, sc.sig[:])
	if err != nil || len(pub) != 65 {
		return common.Address{}, fmt.Errorf("%w: recovery failed", ErrInvalidSignature)
	}
	sc.kh.Reset()
	sc.kh.Write(pub[1:])
	sc.kh.Read(sc.pubKH[:])
	return common.BytesToAddress(sc.pubKH[12:]), nil
}
