package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
)

const keysUsage = `Usage: byoc keys <action> [flags]

Actions:
  new    make a new Ethereum key and write it, encrypted with the password in
         --password-file, to --keystore (never overwrites; mode 0600); prints
         its address
  show   print the address a keystore file holds (no password needed); with
         --password-file, also check that the password decrypts it. Also
         reads a node's node.key (its data directory's raw key)

The files are go-ethereum keystores (version 3, scrypt): geth, clef and
go-livepeer read what this writes, and the nodes' --eth-keystore reads
theirs.

Flags:
`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("keystore", "", "the keystore JSON file")
	pwFile := fs.String("password-file", "", "file holding the password (a trailing newline is not part of it)")
	light := fs.Bool("light-kdf", false, "new: weak, fast scrypt (4 MiB instead of 256 MiB); for tests only")
	if err := actionUsage(fs, keysUsage, args, stdout); err != nil {
		return err
	}
	action := args[0]
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("--keystore is required")
	}
	switch action {
	case "new":
		if *pwFile == "" {
			return errors.New("new: --password-file is required")
		}
		pw, err := readPassword(*pwFile)
		if err != nil {
			return err
		}
		if pw == "" {
			return fmt.Errorf("new: --password-file %s is empty; a keystore needs a password", *pwFile)
		}
		key, err := crypto.GenerateKey()
		if err != nil {
			return err
		}
		strength := ethsig.KDFStandard
		if *light {
			strength = ethsig.KDFLight
		}
		doc, err := ethsig.EncryptKeystore(key, pw, strength)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(*path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("new: %s exists; not overwriting a key", *path)
		} else if err != nil {
			return fmt.Errorf("new: %w", err)
		}
		_, err = f.Write(doc)
		if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
			os.Remove(*path)
			return fmt.Errorf("new: writing %s: %w", *path, err)
		}
		fmt.Fprintln(stdout, crypto.PubkeyToAddress(key.PublicKey).Hex())
		return nil
	case "show":
		doc, err := os.ReadFile(*path)
		if err != nil {
			return fmt.Errorf("show: %w", err)
		}
		addr, err := ethsig.KeystoreAddress(doc)
		if err != nil {
			// A node's own node.key (a data directory's raw hex key) has
			// an address too: operators look for the orchestrator's.
			k, herr := ethsig.KeySignerFromHex(strings.TrimSpace(string(doc)))
			if herr != nil {
				return fmt.Errorf("show: %s: %w", *path, err)
			}
			if *pwFile != "" {
				return fmt.Errorf("show: %s is a node's raw key (node.key), not a keystore: it has no password", *path)
			}
			fmt.Fprintln(stdout, k.Address().Hex())
			return nil
		}
		if *pwFile != "" {
			pw, err := readPassword(*pwFile)
			if err != nil {
				return err
			}
			s, err := ethsig.KeySignerFromKeystore(doc, pw)
			if errors.Is(err, ethsig.ErrKeystorePassword) {
				return fmt.Errorf("show: %s: wrong password (in %s)", *path, *pwFile)
			} else if err != nil {
				return fmt.Errorf("show: %s: %w", *path, err)
			}
			addr = s.Address()
			fmt.Fprintf(stderr, "the password in %s decrypts %s\n", *pwFile, *path)
		}
		fmt.Fprintln(stdout, addr.Hex())
		return nil
	}
	return fmt.Errorf("unknown action %q (new or show)", action)
}

// readPassword reads a password file as the nodes' --eth-password-file does.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
