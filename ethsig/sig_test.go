package ethsig

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// vectorKeys are the keys of the PM vectors, which pm's tests replay.
type vectorKeys struct {
	RecipientAddress string `json:"recipient_address"`
	SenderAddress    string `json:"sender_address"`
	SenderKey        string `json:"sender_private_key"`
}

func loadKeys(t *testing.T) vectorKeys {
	t.Helper()
	b, err := os.ReadFile("../pm/testdata/pm-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Keys vectorKeys `json:"keys"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.Keys
}

func TestSignRecoverVerify(t *testing.T) {
	k := loadKeys(t)
	s, err := KeySignerFromHex(k.SenderKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.Address().Hex() != k.SenderAddress {
		t.Fatalf("address %v, want %s", s.Address(), k.SenderAddress)
	}
	msg := []byte("byoc")
	// The digest is EIP-191's, computed here from its definition.
	if d := PersonalDigest(msg); d != crypto.Keccak256Hash([]byte("\x19Ethereum Signed Message:\n4byoc")) {
		t.Fatalf("digest %v", d)
	}
	h := crypto.Keccak256Hash(msg)
	if d := PersonalDigest(h[:]); d != crypto.Keccak256Hash([]byte(PersonalPrefix32), h[:]) {
		t.Fatalf("32-byte digest %v", d)
	}
	sig, err := s.SignPersonal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != SignatureLength || (sig[64] != 27 && sig[64] != 28) {
		t.Fatalf("signature shape %x", sig)
	}
	if again, _ := s.SignPersonal(msg); !bytes.Equal(again, sig) {
		t.Fatal("signatures are not deterministic")
	}
	if got, err := Recover(msg, sig); err != nil || got != s.Address() {
		t.Fatalf("recover: %v %v", got, err)
	}
	if err := Verify(s.Address(), msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := Verify(common.HexToAddress(k.RecipientAddress), msg, sig); !errors.Is(err, ErrInvalidSignature) || !strings.Contains(err.Error(), "signed by") {
		t.Fatalf("other address: %v", err)
	}
	if err := Verify(s.Address(), []byte("byoC"), sig); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("other message: %v", err)
	}

	// The malleated twin (N−s, flipped v) recovers the same key with
	// go-ethereum's raw recovery, but has a high s and is refused.
	high := append([]byte(nil), sig...)
	new(big.Int).Sub(crypto.S256().Params().N, new(big.Int).SetBytes(sig[32:64])).FillBytes(high[32:64])
	high[64] = 55 - high[64] // 27 <-> 28
	raw := append([]byte(nil), high...)
	raw[64] -= 27
	d := PersonalDigest(msg)
	if pub, err := crypto.SigToPub(d[:], raw); err != nil || crypto.PubkeyToAddress(*pub) != s.Address() {
		t.Fatalf("the malleated twin should recover the key without the low-s rule: %v", err)
	}
	for name, bad := range map[string][]byte{
		"empty":    nil,
		"64 bytes": sig[:64],
		"66 bytes": append(append([]byte(nil), sig...), 0),
		"v = 0/1":  append(append([]byte(nil), sig[:64]...), sig[64]-27),
		"v = 29":   append(append([]byte(nil), sig[:64]...), 29),
		"high s":   high,
		"zero r":   append(make([]byte, 32), sig[32:]...),
		"all 0xff": bytes.Repeat([]byte{0xff}, 65),
	} {
		if _, err := Recover(msg, bad); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Recover(msg, high); err == nil || !strings.Contains(err.Error(), "s value too high") {
		t.Errorf("high s: %v", err)
	}
	// s exactly N/2 is still low.
	half := new(big.Int).Rsh(crypto.S256().Params().N, 1)
	if !bytes.Equal(half.FillBytes(make([]byte, 32)), halfN) {
		t.Fatal("halfN is not N/2")
	}
}

func TestKeystores(t *testing.T) {
	v := struct{ Keys vectorKeys }{loadKeys(t)}
	cases := []struct{ file, addr string }{
		{"testdata/sender-scrypt.json", v.Keys.SenderAddress},       // written by go-ethereum's keystore
		{"testdata/recipient-pbkdf2.json", v.Keys.RecipientAddress}, // checked with go-ethereum's DecryptKey
	}
	for _, tc := range cases {
		s, err := LoadKeystoreSigner(tc.file, "byoc-test-password")
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if s.Address().Hex() != tc.addr {
			t.Errorf("%s: address %v", tc.file, s.Address())
		}
		if _, err := LoadKeystoreSigner(tc.file, "wrong"); !errors.Is(err, ErrKeystorePassword) {
			t.Errorf("%s wrong password: %v", tc.file, err)
		}
	}
	// The scrypt key signs exactly like the raw key.
	ks, _ := LoadKeystoreSigner("testdata/sender-scrypt.json", "byoc-test-password")
	raw, _ := KeySignerFromHex(v.Keys.SenderKey)
	a, _ := ks.SignPersonal([]byte("x"))
	b, _ := raw.SignPersonal([]byte("x"))
	if !bytes.Equal(a, b) {
		t.Error("keystore key differs from the raw key")
	}
	js, _ := os.ReadFile("testdata/sender-scrypt.json")
	for name, doc := range map[string]string{
		"not json":       "{",
		"version 1":      strings.Replace(string(js), `"version":3`, `"version":1`, 1),
		"huge scrypt N":  strings.Replace(string(js), `"n":4096`, `"n":1073741824`, 1),
		"unknown kdf":    strings.Replace(string(js), `"kdf":"scrypt"`, `"kdf":"argon2"`, 1),
		"wrong address":  strings.Replace(string(js), "2c7536e3", "2c7536e4", 1),
		"unknown cipher": strings.Replace(string(js), "aes-128-ctr", "aes-256-gcm", 1),
	} {
		if _, err := KeySignerFromKeystore([]byte(doc), "byoc-test-password"); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := LoadKeystoreSigner(filepath.Join(t.TempDir(), "missing.json"), ""); err == nil {
		t.Error("missing file")
	}
	if _, err := KeySignerFromHex("0xzz"); err == nil {
		t.Error("bad hex key")
	}
	if _, err := NewKeySigner(nil); err == nil {
		t.Error("nil key")
	}
}

func TestHexMatchesAddressHex(t *testing.T) {
	for i := 0; i < 3*hexCacheSize; i++ {
		var a common.Address
		a[0], a[1], a[19] = byte(i), byte(i>>8), 0xab
		for range 2 { // a miss, then (usually) a hit
			if got, want := Hex(a), a.Hex(); got != want {
				t.Fatalf("Hex(%x) = %s, want %s", a, got, want)
			}
		}
	}
}

// TestHexConcurrent: Hex from many goroutines while the cache fills and
// starts again (run with -race).
func TestHexConcurrent(t *testing.T) {
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range hexCacheSize {
				var a common.Address
				a[0], a[1], a[2] = byte(g), byte(i), byte(i>>8)
				if Hex(a) != a.Hex() {
					t.Errorf("Hex(%x) differs from Address.Hex", a)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
