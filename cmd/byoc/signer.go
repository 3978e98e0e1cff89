package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"byoc/ledger"
	"byoc/signer"
)

const signerUsage = `Usage: byoc signer [flags]
       byoc signer budget grant|show|list [flags]

Runs a remote signer: it holds the paying key and signs PM ticket batches
for gateways that hold none, over go-livepeer's remote signer API
(POST /sign-orchestrator-info, POST /generate-live-payment and, with
--discover-orchestrator, GET /discover-orchestrators), so a go-livepeer
gateway started with -remoteSignerUrl pointing here is served as by
go-livepeer's signer. See docs/signer.md for the differences.

Before signing it can ask an auth webhook who the customer is
(--auth-webhook-url, go-livepeer's and the Livepeer clearinghouse's
protocol) and charge the customer's prepaid budget in its ledger
(--budgets; 483 insufficient_balance when it cannot pay, before any
ticket is signed). It refuses to listen on a non-loopback address without
a webhook unless --allow-no-auth is given.

Example:

  byoc signer --data-dir signer-data --budgets --budget-thresholds 80,100
  byoc signer budget grant --customer alice --amount 1000000000000000 --key grant-1
  byoc signer budget show --customer alice

Flags:
`

func runSigner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "budget" {
		return runSignerBudget(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("byoc signer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	if os.Getenv("BYOC_DATA_DIR") == "" {
		sf.dataDir = "byoc-signer-data"
		fs.Lookup("data-dir").DefValue = sf.dataDir
	}
	var cfg signer.NodeConfig
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7936", "host:port of the signer API (plain HTTP, as go-livepeer's)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "127.0.0.1:7937", "host:port of /healthz, /readyz, the budget admin API and the web console (empty: off)")
	keyFlags := registerKeyFlags(fs)
	webhookURL := fs.String("auth-webhook-url", "", "auth webhook asked before signing (go-livepeer's -remoteSignerWebhookUrl protocol)")
	var webhookHeaders headerList
	fs.Var(&webhookHeaders, "auth-webhook-header", "header sent to the webhook, 'Name: value' (repeatable; e.g. 'Authorization: Bearer <secret>')")
	fs.BoolVar(&cfg.AllowNoAuth, "allow-no-auth", false, "listen on a non-loopback address without an auth webhook")
	maxPrice := fs.String("max-price-per-unit", "", "highest orchestrator price accepted, wei per unit: an integer, decimal or fraction (default: none)")
	var disc discoverList
	fs.Var(&disc, "discover-orchestrator", "orchestrator to list on GET /discover-orchestrators: URL or URL#cap1,cap2 (repeatable)")
	fs.BoolVar(&cfg.SharedNonces, "shared-nonces", false, "reserve ticket nonces in the ledger, for replicas sharing one PostgreSQL ledger and key (default: on with --ledger-dsn)")
	fs.BoolVar(&cfg.Budgets, "budgets", false, "charge every payment to its customer's budget in the ledger (483 without enough)")
	thresholds := fs.String("budget-thresholds", "80,100", "shares spent, in percent, that fire a budget alert")
	alertURL := fs.String("budget-alert-url", "", "URL budget alerts are POSTed to as JSON (empty: logged only)")
	fs.StringVar(&cfg.EventsURL, "usage-events-url", "", "URL every signed payment's usage event is POSTed to, at least once, as CloudEvents (e.g. OpenMeter's /api/v1/events)")
	var eventHeaders headerList
	fs.Var(&eventHeaders, "usage-events-header", "header sent with usage events, 'Name: value' (repeatable)")
	limits := registerLimitFlags(fs, &cfg.Limits)
	logFlags := registerLogFlags(fs, "debug, info, warn or error")
	fs.Usage = func() { io.WriteString(fs.Output(), signerUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := limits.check(); err != nil {
		return err
	}
	log, err := logFlags.logger(stderr)
	if err != nil {
		return err
	}
	cfg.Signer.Logger = log
	cfg.EventHeaders = eventHeaders.m
	if *webhookURL != "" {
		if u, err := url.Parse(*webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--auth-webhook-url %q: want an http(s) URL", *webhookURL)
		}
		cfg.Signer.Webhook = &signer.Webhook{URL: *webhookURL, Headers: webhookHeaders.m}
	}
	if *maxPrice != "" {
		p, ok := new(big.Rat).SetString(*maxPrice)
		if !ok || p.Sign() <= 0 {
			return fmt.Errorf("--max-price-per-unit %q: want a positive number of wei (e.g. 1000, 0.5 or 2000/3)", *maxPrice)
		}
		cfg.Signer.MaxPrice = p
	}
	if len(disc) > 0 {
		cfg.Signer.Discovery = disc
	}
	if cfg.Budgets {
		for part := range strings.SplitSeq(*thresholds, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			t, err := strconv.Atoi(part)
			if err != nil || t <= 0 || t > 1000 {
				return fmt.Errorf("--budget-thresholds %q: want percentages such as 80,100", *thresholds)
			}
			cfg.Thresholds = append(cfg.Thresholds, t)
		}
		var poster *signer.Poster
		if *alertURL != "" {
			poster = signer.NewPoster(signer.Poster{URL: *alertURL, Logger: log}, 1024)
			cfg.Background = append(cfg.Background, poster.Run)
		}
		cfg.Alert = func(a signer.Alert) {
			log.Warn("budget threshold crossed", "customer", a.Customer, "threshold_percent", a.Threshold,
				"granted", a.Granted.String(), "spent", a.Spent.String())
			if poster != nil {
				poster.Post(a)
			}
		}
	}
	key, err := keyFlags.signer()
	if err != nil {
		return err
	}
	if key != nil {
		cfg.Signer.Key = key
	}
	cfg.DataDir, cfg.LedgerDSN = sf.dataDir, sf.dsn
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "shared-nonces" })
	if !explicit && sf.dsn != "" {
		cfg.SharedNonces = true
	}
	node, err := signer.StartNode(ctx, cfg)
	if err != nil {
		return startError("signer", err)
	}
	fmt.Fprintf(stdout, "signer serving %s (admin %s), signing as %s\n", node.URL, node.AdminURL, node.Address())
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return node.Close()
}

// headerList is a repeatable 'Name: value' flag.
type headerList struct{ m map[string]string }

func (h *headerList) String() string { return "" }
func (h *headerList) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want 'Name: value', got %q", s)
	}
	if h.m == nil {
		h.m = map[string]string{}
	}
	h.m[strings.TrimSpace(name)] = strings.TrimSpace(value)
	return nil
}

// discoverList is a repeatable URL#cap1,cap2 flag.
type discoverList signer.StaticDiscovery

func (d *discoverList) String() string { return "" }
func (d *discoverList) Set(s string) error {
	addr, caps, _ := strings.Cut(s, "#")
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return fmt.Errorf("want URL or URL#cap1,cap2, got %q", s)
	}
	o := signer.Discovered{Address: addr, Score: 1}
	for c := range strings.SplitSeq(caps, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.Capabilities = append(o.Capabilities, c)
		}
	}
	*d = append(*d, o)
	return nil
}

func (d discoverList) Orchestrators(caps []string) []signer.Discovered {
	return signer.StaticDiscovery(d).Orchestrators(caps)
}

const signerBudgetUsage = `Usage: byoc signer budget ACTION [flags]

Grants, tops up and reads customers' budgets, and their statements,
through a running signer's admin API (--admin, default
http://127.0.0.1:7937). Amounts are in wei.

  grant --customer C --amount N --key K   add N wei to C's budget; K makes the grant happen once
  show --customer C                        C's budget: granted, spent, balance
  list                                     every customer's budget
  statement --customer C [--format csv]    C's grants and spends, as JSON or CSV

Flags:
`

func runSignerBudget(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc signer budget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:7937", "the signer's admin URL")
	customer := fs.String("customer", "", "the customer (the auth ID the webhook or Signer-Auth-Id names)")
	amount := fs.String("amount", "", "wei to grant")
	key := fs.String("key", "", "idempotency key of the grant (required)")
	format := fs.String("format", "json", "statement: json or csv")
	if err := actionUsage(fs, signerBudgetUsage, args, stdout); err != nil {
		return err
	}
	action := args[0]
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var resp *http.Response
	var err error
	switch action {
	case "grant":
		a, perr := ledger.ParseAmount(*amount)
		if perr != nil || a.Sign() <= 0 {
			return fmt.Errorf("--amount %q: want a positive integer number of wei", *amount)
		}
		if *key == "" {
			return errors.New("--key is required: it makes the grant happen once however often it is sent")
		}
		body, _ := json.Marshal(signer.GrantRequest{Customer: *customer, Amount: a, Key: *key})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, *admin+"/admin/budget/grant", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err = client.Do(req)
	case "show":
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, *admin+"/admin/budget?customer="+url.QueryEscape(*customer), nil)
		resp, err = client.Do(req)
	case "statement":
		if *format != "json" && *format != "csv" {
			return fmt.Errorf("--format %q: want json or csv", *format)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
			*admin+"/admin/statement?customer="+url.QueryEscape(*customer)+"&format="+*format, nil)
		resp, err = client.Do(req)
	case "list":
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, *admin+"/admin/budgets", nil)
		resp, err = client.Do(req)
	default:
		return fmt.Errorf("unknown action %q: want grant, show, list or statement", action)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	_, err = stdout.Write(b)
	return err
}
