package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/google/uuid"

	"byoc/internal/nodefiles"
)

func TestKeysNewShow(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "key.json")
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := byoc(t, "keys", "new", "--keystore", ks, "--password-file", pw, "--light-kdf")
	if code != 0 {
		t.Fatalf("new: %d %s", code, errs)
	}
	addr := strings.TrimSpace(out)
	st, err := os.Stat(ks)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keystore mode: %v %v", st, err)
	}
	doc, _ := os.ReadFile(ks)
	k, err := keystore.DecryptKey(doc, "s3cret") // the newline is not part of the password
	if err != nil || k.Address.Hex() != addr {
		t.Fatalf("go-ethereum reads %v, %v; byoc printed %s", k, err, addr)
	}

	// Never overwritten.
	if code, _, errs := byoc(t, "keys", "new", "--keystore", ks, "--password-file", pw, "--light-kdf"); code != 1 || !strings.Contains(errs, "not overwriting") {
		t.Fatalf("second new: %d %s", code, errs)
	}
	if again, _ := os.ReadFile(ks); !bytes.Equal(again, doc) {
		t.Fatal("keystore changed")
	}

	// show: the address without a password; with one, the password checked.
	if code, out, errs := byoc(t, "keys", "show", "--keystore", ks); code != 0 || strings.TrimSpace(out) != addr {
		t.Fatalf("show: %d %q %s", code, out, errs)
	}
	if code, out, errs := byoc(t, "keys", "show", "--keystore", ks, "--password-file", pw); code != 0 || strings.TrimSpace(out) != addr || !strings.Contains(errs, "decrypts") {
		t.Fatalf("show with password: %d %q %s", code, out, errs)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("nope"), 0o600)
	if code, _, errs := byoc(t, "keys", "show", "--keystore", ks, "--password-file", bad); code != 1 || !strings.Contains(errs, "wrong password") {
		t.Fatalf("wrong password: %d %s", code, errs)
	}

	// The nodes' --eth-keystore loads it.
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	kf := registerKeyFlags(fs)
	if err := fs.Parse([]string{"--eth-keystore", ks, "--eth-password-file", pw}); err != nil {
		t.Fatal(err)
	}
	if s, err := kf.signer(); err != nil || s.Address().Hex() != addr {
		t.Fatalf("--eth-keystore: %v %v", s, err)
	}
}

// A file go-ethereum wrote (as geth, clef and go-livepeer do) shows here.
func TestKeysShowGethFile(t *testing.T) {
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	addr := crypto.PubkeyToAddress(key.PublicKey)
	doc, err := keystore.EncryptKey(&keystore.Key{Id: uuid.New(), Address: addr, PrivateKey: key}, "pw", keystore.LightScryptN, keystore.LightScryptP)
	if err != nil {
		t.Fatal(err)
	}
	ks, pw := filepath.Join(dir, "UTC--geth"), filepath.Join(dir, "pw")
	os.WriteFile(ks, doc, 0o600)
	os.WriteFile(pw, []byte("pw"), 0o600)
	if code, out, errs := byoc(t, "keys", "show", "--keystore", ks, "--password-file", pw); code != 0 || strings.TrimSpace(out) != addr.Hex() {
		t.Fatalf("show: %d %q %s", code, out, errs)
	}
}

func TestKeysRefusals(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "key.json")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	notKey := filepath.Join(dir, "notkey.json")
	os.WriteFile(notKey, []byte(`{"address":"x"}`), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"new", "--keystore", ks}, "--password-file is required"},
		{[]string{"new", "--keystore", ks, "--password-file", empty}, "is empty"},
		{[]string{"new", "--keystore", ks, "--password-file", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"new", "--password-file", empty}, "--keystore is required"},
		{[]string{"show", "--keystore", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"show", "--keystore", notKey}, "not an address"},
		{[]string{"rotate", "--keystore", ks}, `unknown action "rotate"`},
	} {
		code, _, errs := byoc(t, append([]string{"keys"}, tc.args...)...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: %d %q, want %q", tc.args, code, errs, tc.want)
		}
	}
	if _, err := os.Stat(ks); !os.IsNotExist(err) {
		t.Error("a refused new left a file")
	}
	if code, out, _ := byoc(t, "keys", "-h"); code != 0 || !strings.Contains(out, "Usage: byoc keys") {
		t.Errorf("help: %d %q", code, out)
	}
}

// TestKeysShowNodeKey: a data directory's raw node.key shows the address
// the node uses; a password for it is refused, and a file that is neither
// still says why it is not a keystore.
func TestKeysShowNodeKey(t *testing.T) {
	dir := t.TempDir()
	k, err := nodefiles.Key(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, nodefiles.KeyFile)
	code, out, errs := byoc(t, "keys", "show", "--keystore", path)
	if code != 0 || strings.TrimSpace(out) != k.Address().Hex() {
		t.Fatalf("show node.key: %d %q %s; want %s", code, out, errs, k.Address().Hex())
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := byoc(t, "keys", "show", "--keystore", path, "--password-file", pw); code != 1 || out != "" || !strings.Contains(errs, "has no password") {
		t.Fatalf("show node.key with a password: %d %q %s", code, out, errs)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := byoc(t, "keys", "show", "--keystore", junk); code != 1 || out != "" || !strings.Contains(errs, "keystore") {
		t.Fatalf("show junk: %d %q %s", code, out, errs)
	}
}
