package ethsig

import (
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/google/uuid"
)

// ErrKeystorePassword is returned (wrapped) when a keystore's MAC does not
// match, which almost always means a wrong password.
var ErrKeystorePassword = errors.New("ethsig: could not decrypt keystore with given password")

// Bounds on a keystore's key-derivation parameters, checked before the file
// goes to go-ethereum's DecryptKey, which derives the key with whatever the
// file says. scrypt needs 128·n·r bytes of memory and time in proportion to
// n·r·p; go-ethereum, clef and go-livepeer write n = 2^18, r = 8, p = 1
// (256 MiB, about a second). We accept up to twice that memory (512 MiB)
// and four times that work, so a hostile or corrupt file cannot make the
// node allocate gigabytes or spend minutes before it can even say "wrong
// password". PBKDF2 files (c = 262144 is the common choice) may have up to
// eight times that many rounds.
const (
	maxScryptNR     = 1 << 22 // n·r: 128·n·r bytes ≤ 512 MiB
	maxScryptNRP    = 1 << 23 // n·r·p: 4 × the standard work
	maxPBKDF2Rounds = 1 << 21 // 2,097,152 HMAC-SHA256 rounds
)

// KDF strengths for EncryptKeystore: Standard is what go-ethereum's own
// keystore writes (scrypt n = 2^18, p = 1: 256 MiB, about a second); Light
// (n = 2^12, p = 6: 4 MiB, milliseconds) is for tests only.
const (
	KDFStandard = iota
	KDFLight
)

// keystoreDoc is the part of a Web3 Secret Storage (version 3) document
// checked before decryption; field names match as go-ethereum matches them.
type keystoreDoc struct {
	Address string `json:"address"`
	Crypto  struct {
		Cipher       string `json:"cipher"`
		CipherParams struct {
			IV string `json:"iv"`
		} `json:"cipherparams"`
		KDF       string                     `json:"kdf"`
		KDFParams map[string]json.RawMessage `json:"kdfparams"`
	} `json:"crypto"`
	ID      string `json:"id"`
	Version any    `json:"version"`
}

// checkKeystore refuses a document go-ethereum's DecryptKey would choke on
// (it type-asserts kdfparams and panics on a missing or non-numeric one,
// and on an IV that is not 16 bytes) or that would cost too much to try.
func checkKeystore(doc *keystoreDoc) error {
	if v, ok := doc.Version.(float64); !ok || v != 3 {
		return fmt.Errorf("ethsig: keystore version %v not supported (want 3)", doc.Version)
	}
	if _, err := uuid.Parse(doc.ID); err != nil {
		return fmt.Errorf("ethsig: keystore id %q: %w", doc.ID, err)
	}
	c := doc.Crypto
	if c.Cipher != "aes-128-ctr" {
		return fmt.Errorf("ethsig: keystore cipher %q not supported", c.Cipher)
	}
	if iv, err := hex.DecodeString(c.CipherParams.IV); err != nil || len(iv) != 16 {
		return errors.New("ethsig: keystore iv is not 16 bytes of hex")
	}
	p := c.KDFParams
	intParam := func(name string, lo, hi int64) (int64, error) {
		var v int64
		if err := json.Unmarshal(p[name], &v); err != nil || v < lo || v > hi {
			return 0, fmt.Errorf("ethsig: keystore %s parameter %s = %s: want an integer from %d to %d", c.KDF, name, p[name], lo, hi)
		}
		return v, nil
	}
	var salt string
	if err := json.Unmarshal(p["salt"], &salt); err != nil {
		return errors.New("ethsig: keystore kdfparams has no salt string")
	}
	if _, err := hex.DecodeString(salt); err != nil {
		return fmt.Errorf("ethsig: keystore salt: %w", err)
	}
	// DecryptKey slices the derived key at [16:32].
	if _, err := intParam("dklen", 32, 64); err != nil {
		return err
	}
	switch c.KDF {
	case "scrypt":
		n, err1 := intParam("n", 2, maxScryptNR)
		r, err2 := intParam("r", 1, maxScryptNR)
		pp, err3 := intParam("p", 1, maxScryptNRP)
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		if n&(n-1) != 0 {
			return fmt.Errorf("ethsig: keystore scrypt n = %d is not a power of two", n)
		}
		if n*r > maxScryptNR {
			return fmt.Errorf("ethsig: keystore scrypt n·r = %d needs %d MiB (limit %d MiB)", n*r, n*r>>13, maxScryptNR>>13)
		}
		if n*r*pp > maxScryptNRP {
			return fmt.Errorf("ethsig: keystore scrypt n·r·p = %d is more than %d (4 × go-ethereum's standard work)", n*r*pp, maxScryptNRP)
		}
	case "pbkdf2":
		if _, err := intParam("c", 1, maxPBKDF2Rounds); err != nil {
			return err
		}
		var prf string
		if err := json.Unmarshal(p["prf"], &prf); err != nil || prf != "hmac-sha256" {
			return fmt.Errorf("ethsig: keystore prf %s not supported", p["prf"])
		}
	default:
		return fmt.Errorf("ethsig: keystore kdf %q not supported", c.KDF)
	}
	return nil
}

// KeystoreAddress reads the address a keystore document records, without
// the password (and so without proof that the key matches it).
func KeystoreAddress(keyJSON []byte) (common.Address, error) {
	var doc keystoreDoc
	if err := json.Unmarshal(keyJSON, &doc); err != nil {
		return common.Address{}, fmt.Errorf("ethsig: parsing keystore: %w", err)
	}
	a := strings.TrimPrefix(strings.ToLower(doc.Address), "0x")
	if !common.IsHexAddress(a) {
		return common.Address{}, fmt.Errorf("ethsig: keystore address %q is not an address", doc.Address)
	}
	return common.HexToAddress(a), nil
}

// KeySignerFromKeystore decrypts a go-ethereum (Web3 Secret Storage version
// 3) keystore document with password, using go-ethereum's keystore after
// checking the document's parameters (see checkKeystore). A wrong password
// gives an error wrapping ErrKeystorePassword.
func KeySignerFromKeystore(keyJSON []byte, password string) (*KeySigner, error) {
	var doc keystoreDoc
	if err := json.Unmarshal(keyJSON, &doc); err != nil {
		return nil, fmt.Errorf("ethsig: parsing keystore: %w", err)
	}
	if err := checkKeystore(&doc); err != nil {
		return nil, err
	}
	key, err := keystore.DecryptKey(keyJSON, password)
	if errors.Is(err, keystore.ErrDecrypt) {
		return nil, ErrKeystorePassword
	} else if err != nil {
		return nil, fmt.Errorf("ethsig: keystore: %w", err)
	}
	s, err := NewKeySigner(key.PrivateKey)
	if err != nil {
		return nil, err
	}
	if doc.Address != "" {
		a := strings.TrimPrefix(strings.ToLower(doc.Address), "0x")
		if !common.IsHexAddress(a) || common.HexToAddress(a) != s.Address() {
			return nil, fmt.Errorf("ethsig: keystore address %s does not match its key (%v)", doc.Address, s.Address())
		}
	}
	return s, nil
}

// EncryptKeystore encrypts key with password into a go-ethereum keystore
// document (version 3, scrypt, AES-128-CTR) that geth, clef and go-livepeer
// read; strength is KDFStandard, or KDFLight for tests.
func EncryptKeystore(key *ecdsa.PrivateKey, password string, strength int) ([]byte, error) {
	if key == nil || key.D == nil {
		return nil, errors.New("ethsig: no key to encrypt")
	}
	n, p := keystore.StandardScryptN, keystore.StandardScryptP
	if strength == KDFLight {
		n, p = keystore.LightScryptN, keystore.LightScryptP
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, err
	}
	k := &keystore.Key{Id: id, Address: crypto.PubkeyToAddress(key.PublicKey), PrivateKey: key}
	return keystore.EncryptKey(k, password, n, p)
}

// LoadKeystoreSigner reads and decrypts a go-ethereum keystore file.
func LoadKeystoreSigner(path, password string) (*KeySigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ethsig: reading keystore: %w", err)
	}
	return KeySignerFromKeystore(b, password)
}
