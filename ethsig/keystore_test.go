package ethsig

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/google/uuid"
)

// A key byoc encrypts decrypts with go-ethereum's DecryptKey, and a key
// go-ethereum's EncryptKey writes loads here: geth, clef and go-livepeer
// files work both ways.
func TestKeystoreRoundTrip(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	addr := crypto.PubkeyToAddress(key.PublicKey)

	ours, err := EncryptKeystore(key, "pw", KDFLight)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keystore.DecryptKey(ours, "pw")
	if err != nil {
		t.Fatalf("go-ethereum cannot read our file: %v", err)
	}
	if k.Address != addr || k.PrivateKey.D.Cmp(key.D) != 0 {
		t.Fatalf("go-ethereum read %v, want %v", k.Address, addr)
	}
	if a, err := KeystoreAddress(ours); err != nil || a != addr {
		t.Fatalf("KeystoreAddress = %v, %v; want %v", a, err, addr)
	}
	if _, err := KeySignerFromKeystore(ours, "other"); !errors.Is(err, ErrKeystorePassword) {
		t.Fatalf("wrong password: %v", err)
	}

	theirs, err := keystore.EncryptKey(&keystore.Key{Id: uuid.New(), Address: addr, PrivateKey: key}, "pw", keystore.LightScryptN, keystore.LightScryptP)
	if err != nil {
		t.Fatal(err)
	}
	s, err := KeySignerFromKeystore(theirs, "pw")
	if err != nil {
		t.Fatalf("cannot read go-ethereum's file: %v", err)
	}
	if s.Address() != addr {
		t.Fatalf("read %v, want %v", s.Address(), addr)
	}
	if _, err := EncryptKeystore(nil, "pw", KDFLight); err == nil {
		t.Fatal("nil key encrypted")
	}
}

// mutate returns the sender test keystore with its document changed by f.
func mutate(t *testing.T, f func(doc map[string]any, kdf map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/sender-scrypt.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc["crypto"].(map[string]any)
	f(doc, c["kdfparams"].(map[string]any))
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Files that would make go-ethereum's DecryptKey allocate gigabytes, spend
// minutes, or panic (it type-asserts the kdfparams and slices the derived
// key) are refused before it sees them.
func TestKeystoreParameterBounds(t *testing.T) {
	crypt := func(doc map[string]any) map[string]any { return doc["crypto"].(map[string]any) }
	toPBKDF2 := func(doc map[string]any, kdf map[string]any) {
		crypt(doc)["kdf"] = "pbkdf2"
		delete(kdf, "n")
		delete(kdf, "r")
		delete(kdf, "p")
		kdf["c"] = 262144
		kdf["prf"] = "hmac-sha256"
	}
	for name, f := range map[string]func(doc, kdf map[string]any){
		"scrypt n 2^30 (128 GiB)":   func(_, k map[string]any) { k["n"] = 1 << 30 },
		"scrypt n 2^20 r 8 (1 GiB)": func(_, k map[string]any) { k["n"], k["r"] = 1<<20, 8 },
		"scrypt r 2^20":             func(_, k map[string]any) { k["r"] = 1 << 20 },
		"scrypt p 2^20 (minutes)":   func(_, k map[string]any) { k["p"] = 1 << 20 },
		"scrypt n·r·p 8 × standard": func(_, k map[string]any) { k["n"], k["r"], k["p"] = 1<<18, 8, 8 },
		"scrypt n not power of two": func(_, k map[string]any) { k["n"] = 4097 },
		"scrypt n 1e30":             func(_, k map[string]any) { k["n"] = 1e30 },
		"scrypt n fraction":         func(_, k map[string]any) { k["n"] = 4096.5 },
		"scrypt n string":           func(_, k map[string]any) { k["n"] = "4096" },
		"scrypt n missing":          func(_, k map[string]any) { delete(k, "n") },
		"scrypt N upper case":       func(_, k map[string]any) { k["N"] = k["n"]; delete(k, "n") },
		"scrypt r zero":             func(_, k map[string]any) { k["r"] = 0 },
		"scrypt p negative":         func(_, k map[string]any) { k["p"] = -1 },
		"dklen 16":                  func(_, k map[string]any) { k["dklen"] = 16 },
		"dklen missing":             func(_, k map[string]any) { delete(k, "dklen") },
		"salt missing":              func(_, k map[string]any) { delete(k, "salt") },
		"salt number":               func(_, k map[string]any) { k["salt"] = 7 },
		"salt not hex":              func(_, k map[string]any) { k["salt"] = "zz" },
		"kdfparams missing":         func(d, _ map[string]any) { delete(crypt(d), "kdfparams") },
		"iv 8 bytes":                func(d, _ map[string]any) { crypt(d)["cipherparams"] = map[string]any{"iv": "0011223344556677"} },
		"iv missing":                func(d, _ map[string]any) { delete(crypt(d), "cipherparams") },
		"id missing":                func(d, _ map[string]any) { delete(d, "id") },
		"version string 3":          func(d, _ map[string]any) { d["version"] = "3" },
		"version 1":                 func(d, _ map[string]any) { d["version"] = "1" },
		"kdf argon2":                func(d, _ map[string]any) { crypt(d)["kdf"] = "argon2" },
		"pbkdf2 c 2^30 (minutes)": func(d, k map[string]any) {
			toPBKDF2(d, k)
			k["c"] = 1 << 30
		},
		"pbkdf2 c missing": func(d, k map[string]any) {
			toPBKDF2(d, k)
			delete(k, "c")
		},
		"pbkdf2 prf missing": func(d, k map[string]any) {
			toPBKDF2(d, k)
			delete(k, "prf")
		},
		"pbkdf2 prf sha512": func(d, k map[string]any) {
			toPBKDF2(d, k)
			k["prf"] = "hmac-sha512"
		},
	} {
		if _, err := KeySignerFromKeystore(mutate(t, f), "byoc-test-password"); err == nil || errors.Is(err, ErrKeystorePassword) {
			t.Errorf("%s: %v, want a refusal before decryption", name, err)
		}
	}

	// The parameters geth, clef and go-livepeer write pass the check.
	for name, f := range map[string]func(doc, kdf map[string]any){
		"scrypt standard": func(_, k map[string]any) {
			k["n"], k["r"], k["p"] = keystore.StandardScryptN, 8, keystore.StandardScryptP
		},
		"scrypt light":       func(_, k map[string]any) { k["n"], k["r"], k["p"] = keystore.LightScryptN, 8, keystore.LightScryptP },
		"scrypt 2^19 (ours)": func(_, k map[string]any) { k["n"], k["r"], k["p"] = 1<<19, 8, 2 },
		"pbkdf2 262144":      toPBKDF2,
	} {
		var doc keystoreDoc
		if err := json.Unmarshal(mutate(t, f), &doc); err != nil {
			t.Fatal(err)
		}
		if err := checkKeystore(&doc); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

func TestKeystoreAddress(t *testing.T) {
	b, _ := os.ReadFile("testdata/recipient-pbkdf2.json")
	a, err := KeystoreAddress(b)
	if err != nil || a != common.HexToAddress(loadKeys(t).RecipientAddress) {
		t.Fatalf("KeystoreAddress = %v, %v", a, err)
	}
	for _, doc := range []string{"{", `{"address":"xyz"}`, `{}`} {
		if _, err := KeystoreAddress([]byte(doc)); err == nil {
			t.Errorf("%s accepted", doc)
		}
	}
}

// Whatever a keystore file holds, loading it returns an error or a signer,
// never a panic.
func FuzzKeySignerFromKeystore(f *testing.F) {
	for _, p := range []string{"testdata/sender-scrypt.json", "testdata/recipient-pbkdf2.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add([]byte(strings.Replace(string(b), `"dklen":32`, `"dklen":16`, 1)))
		f.Add([]byte(strings.Replace(string(b), `"iv":"`, `"iv":"00`, 1)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = KeySignerFromKeystore(b, "byoc-test-password")
	})
}
