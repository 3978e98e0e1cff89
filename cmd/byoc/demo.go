package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"byoc/demo"
)

const demoUsage = `Usage: byoc demo [flags]

Runs the whole system in this process, on loopback, with nothing to set up:
an orchestrator with an embedded ledger, the sample worker (reverse, sse,
sleep at 0.2 gwei per second), and a gateway with its own key and books. It
sends jobs through the gateway paid with real PM tickets — a first job, a job
on prepaid credit, two concurrent jobs of one sender, a server-sent-events
job — and prints, per job, what was paid, reserved, charged and released and
the pool before and after, then checks every invariant of both ledgers.

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
	keep := fs.Bool("keep-running", false, "leave the servers up after the jobs and print their addresses and curl examples (Ctrl-C ends)")
	withSigner := fs.Bool("signer", false, "run the remote-signer scenario: two customers paying through one byoc signer")
	verbose := fs.Bool("verbose", false, "print the nodes' logs to stderr (at --log-level, in --log-format)")
	logFlags := registerLogFlags(fs, "debug, info, warn or error (with --verbose)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), demoUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	opts := demo.Options{DataDir: *dataDir, KeepRunning: *keep, Out: stdout}
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
