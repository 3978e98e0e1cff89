package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"byoc/internal/bench"
)

const benchUsage = `Usage: byoc bench [flags]

Measures what the BYOC stack adds to a job. In this one process it starts
a trivial worker (echo), an orchestrator (TLS, its own ledger) and a
gateway (its own ledger) on loopback. The worker is offered twice: "echo"
at a price per second, paid with PM tickets of --ticket-ev, and
"echo-free" at no price. Both ledgers are the journal store (the
orchestrator's synced every commit, the gateway's books not;
BYOC_LEDGER_STORE=sqlite for plain SQLite). Then --concurrency clients
send jobs back to back, in five phases:

  direct      straight to the worker
  orch-free   the free capability at the orchestrator, no gateway
  stack-free  client -> gateway -> orchestrator -> worker, free
  orch        to the orchestrator, paying as a gateway would (a token
              reused for 2 s, tickets, signed job), without a gateway
  stack       client -> gateway -> orchestrator -> worker, paid

For each it prints jobs/s, latency percentiles and the CPU time the whole
process spent per job (getrusage, so other load on the machine does not
count), then the ratios of the same run: the paid stack's jobs/s and CPU
per job against the free stack's and what paying adds at p50, each stack
against direct, the free orchestrator phase against direct; the payments
made, and whether the gateway's books agree with the orchestrator's ledger
at the end.

Example:

  byoc bench --concurrency 16 --duration 10s
  byoc bench --concurrency 1 --duration 5s --cpuprofile stack.prof   # the paid stack phase
  go tool pprof -tags stack.prof                 # CPU per node
  go tool pprof -tagfocus node=gateway stack.prof # the gateway's part
  byoc bench --duration 3s --memprofile stack.mem  # its allocations
  go tool pprof -sample_index=alloc_space -base stack.mem.base stack.mem

Flags:
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "clients sending jobs at once")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "how long each phase is measured")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "how long each phase runs before it is measured")
	fs.Int64Var(&cfg.PriceWei, "price", 1000, "the capability's price in wei per second")
	fs.BoolVar(&cfg.Free, "free", false, "only the free phases (no tickets, no ledger writes: what the hops and signatures cost alone)")
	fs.Int64Var(&cfg.TicketEV, "ticket-ev", 0, "expected value of one ticket in wei (default: 10 × --price, a ticket funds about ten jobs; --ticket-ev equal to --price makes each job pay one)")
	fs.IntVar(&cfg.BodyBytes, "body-bytes", 64, "size of each job's body")
	fs.IntVar(&cfg.TimeoutSeconds, "timeout", 10, "each job's timeout_seconds")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "where the two ledgers go (default: a temporary directory, removed after)")
	fs.BoolVar(&cfg.PlainHTTP, "plain-http", false, "serve the orchestrator over http:// instead of TLS")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the paid stack phase here (the free one with --free), labelled node=gateway|orchestrator|worker|client")
	fs.StringVar(&cfg.MemProfile, "memprofile", "", "write the allocations of the same phase here (and at its start to FILE.base: go tool pprof -sample_index=alloc_space -base FILE.base FILE)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	logFlags := logFlags{
		format: fs.String("log-format", "text", "log format of the nodes' logs: text or json"),
		level:  fs.String("log-level", "warn", "log level of the nodes' logs: debug, info, warn or error"),
	}
	fs.Usage = func() { fmt.Fprint(fs.Output(), benchUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	var err error
	if cfg.Logger, err = logFlags.logger(stderr); err != nil {
		return err
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(stdout)
	if !rep.BooksAgree || len(rep.Problems) > 0 {
		return exitError{code: 1}
	}
	return nil
}
