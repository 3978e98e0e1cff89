package ethsig

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"golang.org/x/crypto/scrypt"
)

// ErrKeystorePassword is returned (wrapped) when a keystore's MAC does not
// match, which almost always means a wrong password.
var ErrKeystorePassword = errors.New("ethsig: could not decrypt keystore with given password")

// Bounds on key-derivation parameters, so that a hostile keystore file
// cannot make the node allocate or compute without limit. go-ethereum's
// standard scrypt parameters are N = 2^18, r = 8, p = 1.
const (
	maxScryptN      = 1 << 20
	maxScryptRP     = 1 << 10
	maxPBKDF2Rounds = 10_000_000
)

// keystoreV3 is the Web3 Secret Storage (version 3) JSON document that
// go-ethereum's keystore writes.
type keystoreV3 struct {
	Address string `json:"address"`
	Crypto  struct {
		Cipher       string `json:"cipher"`
		CipherText   string `json:"ciphertext"`
		CipherParams struct {
			IV string `json:"iv"`
		} `json:"cipherparams"`
		KDF       string          `json:"kdf"`
		KDFParams json.RawMessage `json:"kdfparams"`
		MAC       string          `json:"mac"`
	} `json:"crypto"`
	Version int `json:"version"`
}

// KeySignerFromKeystore decrypts a go-ethereum (Web3 Secret Storage version
// 3) keystore document with password: scrypt or PBKDF2-HMAC-SHA256 key
// derivation, keccak256 MAC, AES-128-CTR. A wrong password gives an error
// wrapping ErrKeystorePassword.
func KeySignerFromKeystore(keyJSON []byte, password string) (*KeySigner, error) {
	var ks keystoreV3
	if err := json.Unmarshal(keyJSON, &ks); err != nil {
		return nil, fmt.Errorf("ethsig: parsing keystore: %w", err)
	}
	if ks.Version != 3 {
		return nil, fmt.Errorf("ethsig: keystore version %d not supported", ks.Version)
	}
	if ks.Crypto.Cipher != "aes-128-ctr" {
		return nil, fmt.Errorf("ethsig: keystore cipher %q not supported", ks.Crypto.Cipher)
	}
	ct, err1 := hex.DecodeString(ks.Crypto.CipherText)
	iv, err2 := hex.DecodeString(ks.Crypto.CipherParams.IV)
	mac, err3 := hex.DecodeString(ks.Crypto.MAC)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("ethsig: keystore hex: %w", err)
	}
	if len(iv) != aes.BlockSize || len(mac) != 32 || len(ct) != 32 {
		return nil, errors.New("ethsig: keystore has wrong field lengths")
	}
	dk, err := deriveKeystoreKey(ks.Crypto.KDF, ks.Crypto.KDFParams, password)
	if err != nil {
		return nil, err
	}
	want := crypto.Keccak256(dk[16:32], ct)
	if subtle.ConstantTimeCompare(want, mac) != 1 {
		return nil, ErrKeystorePassword
	}
	block, err := aes.NewCipher(dk[:16])
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(ct))
	cipher.NewCTR(block, iv).XORKeyStream(plain, ct)
	defer clear(plain)
	key, err := crypto.ToECDSA(plain)
	if err != nil {
		return nil, fmt.Errorf("ethsig: keystore key: %w", err)
	}
	s, err := NewKeySigner(key)
	if err != nil {
		return nil, err
	}
	if ks.Address != "" {
		a := strings.TrimPrefix(strings.ToLower(ks.Address), "0x")
		if !common.IsHexAddress(a) || common.HexToAddress(a) != s.Address() {
			return nil, fmt.Errorf("ethsig: keystore address %s does not match its key (%v)", ks.Address, s.Address())
		}
	}
	return s, nil
}

func deriveKeystoreKey(kdf string, raw json.RawMessage, password string) ([]byte, error) {
	switch kdf {
	case "scrypt":
		var p struct {
			N, R, P, DKLen int
			Salt           string
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("ethsig: keystore kdfparams: %w", err)
		}
		salt, err := hex.DecodeString(p.Salt)
		if err != nil {
			return nil, fmt.Errorf("ethsig: keystore salt: %w", err)
		}
		if p.DKLen < 32 || p.DKLen > 64 || p.N <= 1 || p.N > maxScryptN || p.R <= 0 || p.P <= 0 || p.R*p.P > maxScryptRP {
			return nil, errors.New("ethsig: keystore scrypt parameters out of range")
		}
		return scrypt.Key([]byte(password), salt, p.N, p.R, p.P, p.DKLen)
	case "pbkdf2":
		var p struct {
			C     int
			DKLen int
			PRF   string
			Salt  string
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("ethsig: keystore kdfparams: %w", err)
		}
		if p.PRF != "hmac-sha256" {
			return nil, fmt.Errorf("ethsig: keystore prf %q not supported", p.PRF)
		}
		salt, err := hex.DecodeString(p.Salt)
		if err != nil {
			return nil, fmt.Errorf("ethsig: keystore salt: %w", err)
		}
		if p.DKLen < 32 || p.DKLen > 64 || p.C <= 0 || p.C > maxPBKDF2Rounds {
			return nil, errors.New("ethsig: keystore pbkdf2 parameters out of range")
		}
		return pbkdf2.Key(sha256.New, password, salt, p.C, p.DKLen)
	}
	return nil, fmt.Errorf("ethsig: keystore kdf %q not supported", kdf)
}

// LoadKeystoreSigner reads and decrypts a go-ethereum keystore file.
func LoadKeystoreSigner(path, password string) (*KeySigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ethsig: reading keystore: %w", err)
	}
	return KeySignerFromKeystore(b, password)
}
