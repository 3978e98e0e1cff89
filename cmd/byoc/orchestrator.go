package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"byoc/orchestrator"
	"byoc/pm"
)

const orchestratorUsage = `Usage: byoc orchestrator --secret-file FILE [flags]

Runs a BYOC orchestrator: workers register capabilities with it (using the
secret), gateways get job tokens from it and send it jobs paid with PM
tickets. Its ledger keeps a prepaid pool per (sender, capability) and a hold
per job; see docs/operator.md.

Example (offchain, embedded ledger in ./orch-data):

  byoc orchestrator --secret s3cret --data-dir orch-data --listen https://127.0.0.1:8935
  byoc worker --orchestrator https://127.0.0.1:8935 --secret s3cret --insecure --price-per-unit 1000

Flags:
`

func runOrchestrator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc orchestrator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	var cfg orchestrator.NodeConfig
	fs.StringVar(&cfg.Listen, "listen", "https://127.0.0.1:8935", "where to serve the BYOC API: https://host:port (self-signed TLS, what go-livepeer gateways dial) or http://host:port")
	fs.StringVar(&cfg.ServiceAddr, "service-addr", "", "the URL gateways should use (default: the listen address); required when listening on 0.0.0.0")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "127.0.0.1:8936", "host:port of the admin API, /metrics, /healthz and /readyz (empty: off)")
	fs.StringVar(&cfg.AdminToken, "admin-token", os.Getenv("BYOC_ADMIN_TOKEN"), "bearer token of the admin API (default: generated in the data directory, admin.token); env BYOC_ADMIN_TOKEN")
	secret := registerSecretFlags(fs, "BYOC_ORCH_SECRET", "secret workers must send to register (required)")
	keyFlags := registerKeyFlags(fs)
	chainFlags, redeem := registerChainFlags(fs), registerRedeemFlags(fs)
	ticketEV := fs.String("ticket-ev", "", fmt.Sprintf("expected value of one PM ticket in wei (default %d)", pm.DefaultTicketEV))
	fs.DurationVar(&cfg.Orchestrator.MinCompute, "min-compute", 60*time.Second, "a job is admitted only if its hold covers this much compute at its price")
	fs.DurationVar(&cfg.Orchestrator.HoldTTLMargin, "hold-ttl-margin", 2*time.Minute, "a job's hold is released after its timeout plus this much idle time (crashed gateway or node)")
	fs.BoolVar(&cfg.Orchestrator.DurableJobs, "durable-jobs", false, "answer a job only once all its ledger changes are synced to disk (an fsync more per job; by default what credits no tickets — a finish, a ticketless admission — is synced within ~10 ms: a killed process loses nothing, a power cut may lose the last ~10 ms of it, never a ticket's credit)")
	fs.DurationVar(&cfg.Orchestrator.StreamSettleInterval, "stream-settle-interval", 23*time.Second, "how often every running stream is charged, in one batch (go-livepeer debits streams every 23s)")
	fs.DurationVar(&cfg.Orchestrator.StreamGrace, "stream-grace", 30*time.Second, "how long a stream whose hold cannot pay keeps running before it is stopped")
	fs.IntVar(&cfg.Orchestrator.MaxOpenJobsPerSender, "max-jobs-per-sender", 64, "most jobs one sender may have running")
	fs.Int64Var(&cfg.Orchestrator.MaxBodyBytes, "max-body", 10<<20, "largest job request body in bytes")
	fs.DurationVar(&cfg.Orchestrator.MaxTimeout, "max-timeout", time.Hour, "largest timeout_seconds a job may ask for")
	fs.BoolVar(&cfg.Orchestrator.RequireBoundJobs, "require-bound-jobs", false, "refuse signed jobs without a byoc_job binding (go-livepeer gateways send none; their job headers can be replayed)")
	fs.DurationVar(&cfg.SweepInterval, "sweep-interval", 15*time.Second, "how often idle holds are released to their pools")
	limits := registerLimitFlags(fs, &cfg.Limits)
	logFlags := registerLogFlags(fs, "debug, info, warn or error")
	fs.Usage = func() { fmt.Fprint(fs.Output(), orchestratorUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := limits.check(); err != nil {
		return err
	}
	var err error
	if cfg.Orchestrator.Secret, err = secret.value(fs); err != nil {
		return err
	}
	if cfg.Orchestrator.Secret == "" {
		return fmt.Errorf("--secret-file or --secret is required: workers authenticate with it when they register")
	}
	if cfg.Orchestrator.Logger, err = logFlags.logger(stderr); err != nil {
		return err
	}
	cfg.DataDir, cfg.LedgerDSN = sf.dataDir, sf.dsn
	if *ticketEV != "" {
		ev, ok := new(big.Int).SetString(*ticketEV, 10)
		if !ok || ev.Sign() <= 0 {
			return fmt.Errorf("--ticket-ev %q: want a positive integer number of wei", *ticketEV)
		}
		cfg.TicketEV = ev
	}
	// Without --eth-keystore or --dev-key the node uses (or creates) the key
	// in its data directory, once it holds the directory's lock.
	signer, err := keyFlags.signer()
	if err != nil {
		return err
	}
	if signer != nil {
		cfg.Address = signer.Address()
	}
	if chainFlags.on() {
		if cfg.Chain, err = chainFlags.onChain(ctx, redeem, signer); err != nil {
			return err
		}
	}
	node, err := orchestrator.StartNode(ctx, cfg)
	if err != nil {
		return startError("orchestrator", err)
	}
	fmt.Fprintf(stdout, "orchestrator %s serving %s (admin %s)\n", node.Address.Hex(), node.URL, node.AdminURL)
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return node.Close()
}
