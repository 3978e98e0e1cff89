package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"byoc/ethsig"
	"byoc/internal/nodefiles"
)

// parseFlags parses args; -h prints the usage to stdout and ends the command.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// keyFlags select the node's Ethereum key.
type keyFlags struct {
	keystore, passwordFile, devKey *string
}

func registerKeyFlags(fs *flag.FlagSet) *keyFlags {
	return &keyFlags{
		keystore:     fs.String("eth-keystore", "", "Ethereum key: a keystore JSON file (with --eth-password-file)"),
		passwordFile: fs.String("eth-password-file", "", "file holding the keystore's password"),
		devKey:       fs.String("dev-key", os.Getenv("BYOC_DEV_KEY"), "Ethereum key as hex, for development only; env BYOC_DEV_KEY"),
	}
}

// signer returns the configured key. Without one: when orCreate, the key in
// the data directory (created on first start); else nil (keyless, offchain).
func (k *keyFlags) signer(dataDir string, orCreate bool) (*ethsig.KeySigner, error) {
	switch {
	case *k.keystore != "" && *k.devKey != "":
		return nil, errors.New("give --eth-keystore or --dev-key, not both")
	case *k.keystore != "":
		if *k.passwordFile == "" {
			return nil, errors.New("--eth-keystore needs --eth-password-file")
		}
		pw, err := os.ReadFile(*k.passwordFile)
		if err != nil {
			return nil, err
		}
		return ethsig.LoadKeystoreSigner(*k.keystore, strings.TrimRight(string(pw), "\r\n"))
	case *k.devKey != "":
		return ethsig.KeySignerFromHex(*k.devKey)
	case orCreate:
		return nodefiles.Key(dataDir)
	}
	return nil, nil
}
