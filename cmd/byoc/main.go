// Command byoc is a node for "bring your own container" compute jobs that
// speaks Livepeer's BYOC protocol and keeps its money in a durable ledger.
// One binary, one subcommand per role.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "run orchestrator, worker and gateway in one process and watch paid jobs go through", runDemo},
		{"orchestrator", "run an orchestrator: workers register capabilities, gateways send paid jobs", runOrchestrator},
		{"worker", "run the sample worker and register it with orchestrators", runWorker},
		{"gateway", "run a gateway: clients send it jobs, it picks orchestrators, pays them and keeps its books", runGateway},
		{"signer", "run a remote signer: sign PM tickets for gateways that hold no key, with customers' budgets", runSigner},
		{"bench", "measure what the gateway and orchestrator add to a job (in-process, payments on)", runBench},
		{"ledger", "inspect and verify a ledger (pools, jobs, statements, invariants)", runLedger},
		{"tickets", "list, redeem and prune a running orchestrator's winning tickets on chain", runTickets},
		{"sender", "read and fund a sender's deposit and reserve on the TicketBroker", runSender},
		{"keys", "make a node key (go-ethereum keystore) or show a keystore's address", runKeys},
		{"version", "print the version of this binary", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries a process exit status other than 1.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ee exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ee):
			return ee.code
		default:
			fmt.Fprintf(stderr, "byoc %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "byoc: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "byoc — a BYOC compute node whose payment accounting is a durable ledger.")
	fmt.Fprintln(w, "\nUsage: byoc <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'byoc <command> -h' for a command's flags.")
}
