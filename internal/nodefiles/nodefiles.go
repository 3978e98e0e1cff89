// Package nodefiles keeps a node's small secrets in its data directory: the
// node's Ethereum key (when no keystore is given), the PM recipient secret
// and generated tokens. Each is created once with mode 0600 and read back
// on every start, so ticket params, identities and tokens survive restarts.
// Lock keeps one node at a time on a directory.
package nodefiles

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
)

// File names in the data directory.
const (
	KeyFile    = "node.key"  // hex secp256k1 private key
	SecretFile = "pm.secret" // hex 32-byte recipientRand HMAC key
)

// Secret returns the hex secret of n random bytes stored in dir/name,
// creating it on first use.
func Secret(dir, name string, n int) ([]byte, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		v, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(v) != n {
			return nil, fmt.Errorf("%s: want %d hex bytes", path, n)
		}
		return v, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	v := make([]byte, n)
	if _, err := rand.Read(v); err != nil {
		return nil, err
	}
	if err := write(path, hex.EncodeToString(v)); err != nil {
		return nil, err
	}
	return v, nil
}

// Token returns a printable random token stored in dir/name, creating it on
// first use.
func Token(dir, name string) (string, error) {
	v, err := Secret(dir, name, 24)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(v), nil
}

// Key returns the node key stored in dir, creating one on first use.
func Key(dir string) (*ethsig.KeySigner, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ethsig.KeySignerFromHex(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := write(path, hex.EncodeToString(crypto.FromECDSA(key))); err != nil {
		return nil, err
	}
	return ethsig.NewKeySigner(key)
}

// write creates path with mode 0600, failing if it exists (two nodes
// starting on one directory must not overwrite each other's secret).
func write(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
