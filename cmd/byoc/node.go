package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"byoc/ethsig"
	"byoc/internal/serve"
)

// parseFlags parses args; -h prints the usage to stdout and ends the command.
// actionUsage gives fs, the flags of a command with actions (keys,
// ledger: "byoc CMD ACTION [flags]"), usage as its help text; with no
// action, or a help word where the action goes, it prints that help to
// stdout and returns flag.ErrHelp.
func actionUsage(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) error {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	return nil
}

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

// signer returns the key the flags give, or nil: then an orchestrator uses
// the key in its data directory and a gateway runs keyless (offchain).
func (k *keyFlags) signer() (*ethsig.KeySigner, error) {
	switch {
	case *k.keystore != "" && *k.devKey != "":
		return nil, errors.New("give --eth-keystore or --dev-key, not both")
	case *k.keystore != "":
		if *k.passwordFile == "" {
			return nil, errors.New("--eth-keystore needs --eth-password-file")
		}
		pw, err := os.ReadFile(*k.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--eth-password-file: %w", err)
		}
		s, err := ethsig.LoadKeystoreSigner(*k.keystore, strings.TrimRight(string(pw), "\r\n"))
		if errors.Is(err, ethsig.ErrKeystorePassword) {
			return nil, fmt.Errorf("--eth-keystore %s: wrong password (in %s)", *k.keystore, *k.passwordFile)
		} else if err != nil {
			return nil, fmt.Errorf("--eth-keystore %s: %w", *k.keystore, err)
		}
		return s, nil
	case *k.devKey != "":
		s, err := ethsig.KeySignerFromHex(*k.devKey)
		if err != nil {
			return nil, fmt.Errorf("--dev-key: %w", err)
		}
		return s, nil
	}
	return nil, nil
}

// limitFlags bound what slow clients can hold of a node's servers.
type limitFlags struct{ l *serve.Limits }

func registerLimitFlags(fs *flag.FlagSet, l *serve.Limits) limitFlags {
	fs.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", serve.DefaultReadHeaderTimeout, "longest a client may take to send a request's headers")
	fs.DurationVar(&l.BodyTimeout, "body-timeout", serve.DefaultBodyTimeout, "longest a client may take to send a request's body (408 and the connection closed after)")
	fs.DurationVar(&l.IdleTimeout, "idle-timeout", serve.DefaultIdleTimeout, "longest a kept-alive connection waits for its next request")
	fs.IntVar(&l.MaxUploads, "max-uploads", serve.DefaultMaxUploads, "most request bodies read at once (503 beyond)")
	return limitFlags{l}
}

func (f limitFlags) check() error {
	for name, d := range map[string]time.Duration{"read-header-timeout": f.l.ReadHeaderTimeout, "body-timeout": f.l.BodyTimeout, "idle-timeout": f.l.IdleTimeout} {
		if d <= 0 {
			return fmt.Errorf("--%s %s: must be positive", name, d)
		}
	}
	if f.l.MaxUploads <= 0 {
		return fmt.Errorf("--max-uploads %d: must be positive", f.l.MaxUploads)
	}
	return nil
}

// startError drops the role's prefix from a StartNode error: the command's
// name says it already ("byoc gateway: listen on …", not "byoc gateway:
// gateway: listen on …").
func startError(role string, err error) error {
	if msg, ok := strings.CutPrefix(err.Error(), role+": "); ok {
		return errors.New(msg)
	}
	return err
}
