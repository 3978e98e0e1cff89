package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"time"

	"byoc/gateway"
)

const gatewayUsage = `Usage: byoc gateway --orch-addr URL[,URL...] [--dev-key KEY | --eth-keystore FILE] [flags]

Runs a BYOC gateway: clients send it jobs the way they send them to a
go-livepeer gateway (POST /process/request/<path> with a base64 JSON
"Livepeer" header); it asks the orchestrators it knows for a job token,
picks the cheapest that has capacity (then the fastest), pays it with PM
tickets, forwards the job and relays the answer — plain or server-sent
events — with X-Orchestrator-Url, Livepeer-Balance and Livepeer-Job-Id.
If an orchestrator fails before the worker produced any output it tries
the next one; a 4xx is final.

It keeps its own books: a ledger in --data-dir with the gateway's credit
at each orchestrator, and a hold per job, compared with what the
orchestrator reports (see docs/gateway.md). Without a key it runs
offchain and can only use free capabilities.

Example, on one machine (three terminals; the dev key is a throwaway
test key, never fund it):

  byoc orchestrator --secret s3cret --data-dir orch-data --listen https://127.0.0.1:8935
  byoc worker --orchestrator https://127.0.0.1:8935 --secret s3cret --insecure \
    --capabilities reverse --price-per-unit 1000
  byoc gateway --orch-addr https://127.0.0.1:8935 --data-dir gateway-data \
    --dev-key 0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318

  # then submit a job (timeout_seconds is required; request and
  # parameters are JSON texts; an optional "id" names the job):
  curl -s -D - http://127.0.0.1:9935/process/request/ \
    -H "Livepeer: $(printf '%s' '{"capability":"reverse","request":"{}","parameters":"{}","timeout_seconds":30}' | base64 -w0)" \
    -H 'Content-Type: application/json' -d '{"text":"hello"}'

  # what the gateway holds at each orchestrator, and its metrics:
  curl -s http://127.0.0.1:9936/admin/pools
  curl -s http://127.0.0.1:9936/metrics | grep byoc_gateway
  byoc ledger pools --data-dir gateway-data

Client headers it honours: Livepeer-Orch-Search-Timeout (how long to collect
tokens, default --search-timeout) and Livepeer-Orch-Search-Resp-Timeout (how
long one orchestrator may take, default --resp-timeout), as Go durations.

Flags:
`

func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	if os.Getenv("BYOC_DATA_DIR") == "" {
		// Not an orchestrator's default directory: the books stay apart.
		sf.dataDir = "byoc-gateway-data"
		fs.Lookup("data-dir").DefValue = sf.dataDir
	}
	var cfg gateway.NodeConfig
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9935", "host:port of the client API (plain HTTP, like a go-livepeer gateway's -httpAddr)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "127.0.0.1:9936", "host:port of /metrics, /healthz, /readyz and the read-only /admin/pools and /admin/orchestrators (empty: off)")
	keyFlags := registerKeyFlags(fs)
	remoteSigner := fs.String("remote-signer", "", "byoc signer URL that signs the jobs and pays for them (instead of a key; see docs/signer.md)")
	var remoteHeaders headerList
	fs.Var(&remoteHeaders, "remote-signer-header", "header sent to the remote signer, 'Name: value' (repeatable; e.g. the customer's API key)")
	orchAddr := fs.String("orch-addr", os.Getenv("BYOC_ORCH_ADDR"), "orchestrators, comma-separated: https://host:port, host:port (https is assumed) or host (port 8935); env BYOC_ORCH_ADDR")
	fs.StringVar(&cfg.Discovery.WebhookURL, "orch-webhook-url", "", "URL answering a JSON list of {\"address\": url} (go-livepeer's -orchWebhookUrl format), asked at start and every --orch-webhook-refresh")
	fs.DurationVar(&cfg.Discovery.Refresh, "orch-webhook-refresh", time.Minute, "how often the webhook is asked again")
	fs.BoolVar(&cfg.Gateway.AllowForeignServiceAddr, "allow-foreign-service-addr", false, "accept tokens whose service_addr names another host than the orchestrator address they came from (an orchestrator fronted by another host); by default they are refused and logged, so a job's body and tickets go only to the hosts discovery named (the port may differ; https never drops to http)")
	caFile := fs.String("orch-ca", "", "PEM certificates to verify orchestrators' TLS against (default: not verified, as go-livepeer gateways do with orchestrators' self-signed certificates)")
	maxPrice := fs.String("max-price", "", "highest price paid, in wei per second of compute: an integer, a decimal or a fraction such as 1/3 (default: no limit)")
	fs.DurationVar(&cfg.Gateway.MinCompute, "min-compute", gateway.DefaultMinCompute, "how much compute orchestrators demand a job's hold cover (go-livepeer and byoc orchestrators: 60s); jobs are paid up to max(timeout, this)")
	fs.DurationVar(&cfg.Gateway.SearchTimeout, "search-timeout", gateway.DefaultSearchTimeout, "default time to collect tokens for a job (client header Livepeer-Orch-Search-Timeout)")
	fs.DurationVar(&cfg.Gateway.RespTimeout, "resp-timeout", gateway.DefaultRespTimeout, "default time one orchestrator may take to answer a token request (client header Livepeer-Orch-Search-Resp-Timeout)")
	tokenReuse := fs.Duration("token-reuse", gateway.DefaultTokenReuse, "how long an orchestrator's token (price, ticket params) serves later jobs for the same capability; 0 asks for one per job")
	fs.IntVar(&cfg.Gateway.MaxAttempts, "max-attempts", gateway.DefaultMaxAttempts, "most orchestrators one job is sent to")
	fs.DurationVar(&cfg.Gateway.MaxTimeout, "max-timeout", gateway.DefaultMaxTimeout, "largest timeout_seconds a job may ask for")
	fs.Int64Var(&cfg.Gateway.MaxBodyBytes, "max-body", gateway.DefaultMaxBodyBytes, "largest job request body in bytes")
	fs.DurationVar(&cfg.Gateway.HoldTTLMargin, "hold-ttl-margin", gateway.DefaultHoldTTLMargin, "a job's hold in the books is released after its timeout plus this much idle time (a crash mid-job)")
	fs.DurationVar(&cfg.Gateway.StreamPayInterval, "stream-pay-interval", gateway.DefaultStreamPayInterval, "how often each running stream's orchestrator is asked for its balance and topped up (go-livepeer: 50s)")
	fs.DurationVar(&cfg.Gateway.StreamTopUpBelow, "stream-top-up-below", gateway.DefaultStreamTopUpBelow, "a stream is topped up when its orchestrator reports less than this much compute (go-livepeer: 120s)")
	fs.DurationVar(&cfg.Gateway.StreamTopUp, "stream-top-up", gateway.DefaultStreamTopUp, "how much compute one top-up pays (go-livepeer: 70s)")
	fs.DurationVar(&cfg.SweepInterval, "sweep-interval", 15*time.Second, "how often holds left in the books by a crash (a job or stream whose TTL passed) are released")
	maxTicketEV := fs.String("max-ticket-ev", "", "largest expected value of one ticket, in wei (default 3000000000000)")
	maxTotalEV := fs.String("max-total-ev", "", "largest expected value of one payment, in wei (default 20000000000000)")
	limits := registerLimitFlags(fs, &cfg.Limits)
	logFlags := registerLogFlags(fs, "debug, info (one line per job), warn or error")
	fs.Usage = func() { io.WriteString(fs.Output(), gatewayUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := limits.check(); err != nil {
		return err
	}
	switch {
	case *tokenReuse < 0:
		return fmt.Errorf("--token-reuse %s: must be 0 (off) or positive", *tokenReuse)
	case *tokenReuse == 0:
		cfg.Gateway.TokenReuse = -1 // off
	default:
		cfg.Gateway.TokenReuse = *tokenReuse
	}
	var err error
	if cfg.Discovery.Static, err = gateway.ParseOrchestratorList(*orchAddr); err != nil {
		return fmt.Errorf("--orch-addr: %w", err)
	}
	if len(cfg.Discovery.Static) == 0 && cfg.Discovery.WebhookURL == "" {
		return fmt.Errorf("give the orchestrators to use: --orch-addr and/or --orch-webhook-url")
	}
	if *maxPrice != "" {
		p, ok := new(big.Rat).SetString(*maxPrice)
		if !ok || p.Sign() < 0 {
			return fmt.Errorf("--max-price %q: want a non-negative number of wei per second (e.g. 1000, 0.5 or 1/3)", *maxPrice)
		}
		cfg.Gateway.MaxPrice = p
	}
	for name, dst := range map[string]**big.Int{*maxTicketEV: &cfg.Gateway.MaxTicketEV, *maxTotalEV: &cfg.Gateway.MaxTotalEV} {
		if name == "" {
			continue
		}
		v, ok := new(big.Int).SetString(name, 10)
		if !ok || v.Sign() <= 0 {
			return fmt.Errorf("--max-ticket-ev / --max-total-ev %q: want a positive integer number of wei", name)
		}
		*dst = v
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("--orch-ca: %w", err)
		}
		cfg.Gateway.RootCAs = x509.NewCertPool()
		if !cfg.Gateway.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--orch-ca %s: no PEM certificate in it", *caFile)
		}
	}
	if cfg.Gateway.Logger, err = logFlags.logger(stderr); err != nil {
		return err
	}
	signer, err := keyFlags.signer()
	if err != nil {
		return err
	}
	if signer != nil {
		cfg.Gateway.Signer = signer
	}
	if *remoteSigner != "" {
		if signer != nil {
			return errors.New("give a key or --remote-signer, not both")
		}
		if cfg.Gateway.Remote, err = gateway.NewRemoteSigner(ctx, *remoteSigner, remoteHeaders.m, nil); err != nil {
			return err
		}
	}
	cfg.DataDir, cfg.LedgerDSN = sf.dataDir, sf.dsn
	node, err := gateway.StartNode(ctx, cfg)
	if err != nil {
		return startError("gateway", err)
	}
	who := "offchain (no key: free capabilities only)"
	switch {
	case signer != nil:
		who = "paying as " + signer.Address().Hex()
	case cfg.Gateway.Remote != nil:
		who = "paying as " + cfg.Gateway.Remote.Address().Hex() + " through " + *remoteSigner
	}
	fmt.Fprintf(stdout, "gateway serving %s (admin %s), %s, orchestrators: %s\n", node.URL, node.AdminURL, who,
		orchestratorsText(cfg.Discovery))
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return node.Close()
}

func orchestratorsText(d gateway.DiscoveryConfig) string {
	parts := append([]string(nil), d.Static...)
	if d.WebhookURL != "" {
		parts = append(parts, "webhook "+d.WebhookURL)
	}
	return strings.Join(parts, ", ")
}
