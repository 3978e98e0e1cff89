package ethsig

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

// SignatureLength is the length of a personal-sign signature: r (32) ‖
// s (32) ‖ v (1), with v = 27 or 28.
const SignatureLength = 65

// ErrInvalidSignature is wrapped by every error Recover, RecoverDigest and
// Verify return.
var ErrInvalidSignature = errors.New("invalid signature")

// halfN is secp256k1's group order divided by two; a signature with a larger
// s is refused (EIP-2's low-s rule, which go-livepeer and OpenZeppelin
// apply too).
var halfN = common.FromHex("0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")

// PersonalPrefix32 is the EIP-191 prefix of a 32-byte message, for hot paths
// that hash prefix and message into their own buffers.
const PersonalPrefix32 = "\x19Ethereum Signed Message:\n32"

// PersonalDigest returns the EIP-191 personal-sign digest of msg:
// keccak256("\x19Ethereum Signed Message:\n" + decimal len(msg) + msg).
func PersonalDigest(msg []byte) common.Hash {
	prefix := "\x19Ethereum Signed Message:\n" + strconv.Itoa(len(msg))
	return crypto.Keccak256Hash([]byte(prefix), msg)
}

// Signer produces personal-sign signatures. Implementations return 65 bytes
// r‖s‖v with low s and v = 27 or 28, and are safe for concurrent use.
type Signer interface {
	// Address returns the signer's ETH address.
	Address() common.Address
	// SignPersonal signs PersonalDigest(msg).
	SignPersonal(msg []byte) ([]byte, error)
}

// KeySigner is a Signer holding a secp256k1 private key in memory. Its
// signatures are deterministic (RFC 6979), so they can be compared with a
// reference implementation's byte for byte.
type KeySigner struct {
	key  *ecdsa.PrivateKey
	addr common.Address
}

// NewKeySigner returns a signer for key.
func NewKeySigner(key *ecdsa.PrivateKey) (*KeySigner, error) {
	if key == nil || key.D == nil {
		return nil, errors.New("ethsig: nil private key")
	}
	return &KeySigner{key: key, addr: crypto.PubkeyToAddress(key.PublicKey)}, nil
}

// KeySignerFromHex parses a raw hex private key (with or without 0x), for
// development setups.
func KeySignerFromHex(s string) (*KeySigner, error) {
	key, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil {
		return nil, fmt.Errorf("ethsig: parsing hex key: %w", err)
	}
	return NewKeySigner(key)
}

// Address returns the signer's address.
func (s *KeySigner) Address() common.Address { return s.addr }

// SignPersonal signs PersonalDigest(msg) and returns r‖s‖v with v = 27 or
// 28.
func (s *KeySigner) SignPersonal(msg []byte) ([]byte, error) {
	d := PersonalDigest(msg)
	sig, err := crypto.Sign(d[:], s.key)
	if err != nil {
		return nil, fmt.Errorf("ethsig: signing: %w", err)
	}
	sig[64] += 27
	return sig, nil
}

// Recover returns the address whose key made sig, a personal-sign signature
// over msg.
func Recover(msg, sig []byte) (common.Address, error) {
	d := PersonalDigest(msg)
	return RecoverDigest(d[:], sig)
}

// Verify checks that sig is addr's personal-sign signature over msg.
func Verify(addr common.Address, msg, sig []byte) error {
	got, err := Recover(msg, sig)
	if err != nil {
		return err
	}
	if got != addr {
		return fmt.Errorf("%w: signed by %s, not %s", ErrInvalidSignature, got.Hex(), addr.Hex())
	}
	return nil
}

var recovererPool = sync.Pool{New: func() any { return NewRecoverer() }}

// RecoverDigest returns the address that signed a 32-byte digest (already
// prefixed and hashed).
func RecoverDigest(digest, sig []byte) (common.Address, error) {
	r := recovererPool.Get().(*Recoverer)
	defer recovererPool.Put(r)
	return r.RecoverDigest(digest, sig)
}

// Recoverer holds the buffers of signature recovery, so that a hot path can
// keep one and recover without allocating them each time. It is not safe for
// concurrent use.
type Recoverer struct {
	kh  crypto.KeccakState
	sig [SignatureLength]byte
	h   common.Hash
}

// NewRecoverer returns a Recoverer.
func NewRecoverer() *Recoverer { return &Recoverer{kh: crypto.NewKeccakState()} }

// RecoverDigest checks sig's shape (65 bytes, low s, v = 27 or 28) and
// returns the address that signed digest.
func (r *Recoverer) RecoverDigest(digest, sig []byte) (common.Address, error) {
	if len(sig) != SignatureLength {
		return common.Address{}, fmt.Errorf("%w: length %d, want %d", ErrInvalidSignature, len(sig), SignatureLength)
	}
	if bytes.Compare(sig[32:64], halfN) > 0 {
		return common.Address{}, fmt.Errorf("%w: s value too high", ErrInvalidSignature)
	}
	v := sig[64]
	if v != 27 && v != 28 {
		return common.Address{}, fmt.Errorf("%w: v = %d", ErrInvalidSignature, v)
	}
	copy(r.sig[:], sig)
	r.sig[64] = v - 27
	pub, err := crypto.Ecrecover(digest, r.sig[:])
	if err != nil || len(pub) != 65 {
		return common.Address{}, fmt.Errorf("%w: recovery failed", ErrInvalidSignature)
	}
	r.kh.Reset()
	r.kh.Write(pub[1:])
	r.kh.Read(r.h[:])
	return common.BytesToAddress(r.h[12:]), nil
}
