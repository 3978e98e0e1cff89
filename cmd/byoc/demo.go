package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"byoc/demo"
)

const demoUsage = `Usage: byoc demo [flags]

Runs the whole system in this process, on loopback, with nothing to set up:
an orchestrator with an embedded ledger, the sample worker (reverse, sse,
sleep at 0.2 gwei per second), and a gateway with its own key and books. It
sends jobs through the gateway paid with real PM tickets — a first job, a job
on prepaid credit, two concurrent jobs of one sender, a server-sent-events
job — and prints, per job, what was paid, reserved, charged and released and
the pool before and after, each with where it comes from (in gwei), then
checks every invariant of both ledgers. With --keep-running it prints the
URLs of both nodes' web consoles and commands to try. With --chain the
orchestrator runs on a local chain (go-ethereum's simulated backend with
byoc's test TicketBroker), the gateway is a funded sender, (nearly) every
ticket wins, and the demo ends once each winner is redeemed on that chain.

With --signer it runs the remote-signer scenario instead: a byoc signer holds
the only key, with budgets for two customers, alice and bob, each behind a
gateway without a key; bob's budget cannot pay his first job (483) until a
top-up, while alice's jobs go on; per customer, what the signer charged is
what the orchestrator credited that customer's pool, to the wei.

Flags:
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "keep the nodes' data here (default: a temporary directory, removed at the end)")
	onChain := fs.Bool("chain", false, "run the orchestrator on a local in-process chain (byoc's test TicketBroker) and redeem its winning tickets there")
	keep := fs.Bool("keep-running", false, "leave the servers up after the jobs and print their addresses and curl examples (Ctrl-C ends)")
	withSigner := fs.Bool("signer", false, "run the remote-signer scenario: two customers paying through one byoc signer")
	verbose := fs.Bool("verbose", false, "print the nodes' logs to stderr (at --log-level, in --log-format)")
	logFlags := registerLogFlags(fs, "debug, info, warn or error (with --verbose)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), demoUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	opts := demo.Options{DataDir: *dataDir, KeepRunning: *keep, Out: stdout, Command: selfCommand(), Chain: *onChain}
	log, err := logFlags.logger(stderr)
	if err != nil {
		return err
	}
	if *verbose {
		opts.Logger = log
	}
	if *withSigner {
		if *keep {
			return fmt.Errorf("--keep-running is not available with --signer")
		}
		_, err = demo.RunSigner(ctx, opts)
		return err
	}
	_, err = demo.Run(ctx, opts)
	return err
}

// selfCommand is how to run this binary again in the commands the demo
// prints: "go run ./cmd/byoc" when `go run` built it into a temporary
// directory (which is gone by the time the reader types the command),
// else the name it was started by.
func selfCommand() string {
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/byoc"
	}
	if len(os.Args) > 0 && strings.ContainsRune(os.Args[0], filepath.Separator) {
		return os.Args[0]
	}
	return "byoc"
}
