package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"byoc/wire"
	"byoc/worker"
)

const workerUsage = `Usage: byoc worker [flags]

Runs the sample BYOC worker: an HTTP service offering five capabilities, each
under its own path (http://127.0.0.1:8900/reverse, /echo, ...). Given
--orchestrator and --secret, it registers them with the orchestrator when it
starts and unregisters them when it stops (Ctrl-C or SIGTERM).

Capabilities (POST; the orchestrator forwards the job body unchanged):
  reverse  {"text":"hello"} -> {"original":"hello","reversed":"olleh"}; a plain-text body -> the text reversed
  echo     answers the body back with its Content-Type
  sse      server-sent events, then "data: [DONE]"; optional {"text":"hi","events":5,"interval_ms":100}
  sleep    {"duration_ms":1500} or {"duration":"1.5s"}: waits, then answers (compute charging, timeouts)
  fail     {"status":503,"message":"busy"}: answers that status; {"close_connection":true} hangs up

Examples:

  # Serve only, then try it:
  byoc worker
  curl -H 'Content-Type: application/json' -d '{"text":"hello"}' http://127.0.0.1:8900/reverse

  # Register reverse and sse as demo-reverse and demo-sse with a local
  # orchestrator (self-signed certificate, hence --insecure), at 1000 wei per
  # second, and require the orchestrator to send a bearer token:
  byoc worker --orchestrator https://127.0.0.1:8935 --secret s3cret --insecure \
    --capabilities reverse,sse --name-prefix demo- --price-per-unit 1000 --token t0ken

Flags:
`

// workerConfig is what the flags of byoc worker ask for.
type workerConfig struct {
	listen, advertiseURL     string
	orchestrators            []string
	secret, secretFile       string
	secretGiven              bool // --secret was on the command line
	capabilities, namePrefix string
	capacity                 int
	pricePerUnit             int64
	priceScaling             int64
	currency, token          string
	insecure                 bool
	caFile                   string
	reregisterEvery          time.Duration
	maxBodyBytes             int64
	maxSleep                 time.Duration
	logFormat, logLevel      string
}

// workerStopTimeout bounds unregistering and draining requests on exit.
const workerStopTimeout = 10 * time.Second

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c workerConfig
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8900", "host:port to serve on (port 0: any free port)")
	fs.StringVar(&c.advertiseURL, "advertise-url", "",
		"base URL the orchestrator reaches this worker at (default: http://<listen address>; required when listening on all interfaces)")
	fs.Func("orchestrator", "orchestrator URL to register with, e.g. https://127.0.0.1:8935; repeat or comma-separate for several",
		func(s string) error {
			for part := range strings.SplitSeq(s, ",") {
				u, err := wire.NormalizeOrchestratorURL(part)
				if err != nil {
					return err
				}
				c.orchestrators = append(c.orchestrators, u)
			}
			return nil
		})
	fs.StringVar(&c.secret, "secret", "", "the orchestrator's secret, sent when registering; env BYOC_ORCH_SECRET")
	fs.StringVar(&c.secretFile, "secret-file", "", "file holding the orchestrator's secret (instead of --secret)")
	fs.StringVar(&c.capabilities, "capabilities", strings.Join(worker.Names(), ","), "which capabilities to register, comma-separated")
	fs.StringVar(&c.namePrefix, "name-prefix", "", "prefix of the registered capability names (e.g. demo- registers demo-reverse)")
	fs.IntVar(&c.capacity, "capacity", 4, "jobs each capability takes at once")
	fs.Int64Var(&c.pricePerUnit, "price-per-unit", 0, "price per second of compute, numerator (in --currency)")
	fs.Int64Var(&c.priceScaling, "price-scaling", 1, "price denominator: the price is price-per-unit/price-scaling per second")
	fs.StringVar(&c.currency, "currency", "wei", "currency of the price: wei or eth")
	fs.StringVar(&c.token, "token", "",
		"bearer token: registered with each capability and required on every job (401 without it); env BYOC_WORKER_TOKEN")
	fs.BoolVar(&c.insecure, "insecure", false,
		"accept the orchestrator's TLS certificate without verifying it (self-signed orchestrators on a trusted network only)")
	fs.StringVar(&c.caFile, "orchestrator-ca", "", "PEM file of certificates to trust for the orchestrator (e.g. its self-signed certificate)")
	fs.DurationVar(&c.reregisterEvery, "reregister-every", 0,
		"register again at this interval, so a restarted orchestrator gets the capabilities back (0: only at start)")
	fs.Int64Var(&c.maxBodyBytes, "max-body", worker.DefaultMaxBodyBytes, "largest request body in bytes (413 above)")
	fs.DurationVar(&c.maxSleep, "max-sleep", worker.DefaultMaxSleep, "longest a sleep or sse job may take")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug (one line per request), info, warn or error")
	fs.Usage = func() { fmt.Fprint(fs.Output(), workerUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) { c.secretGiven = c.secretGiven || f.Name == "secret" })
	// Secrets from the environment are read here, not used as flag defaults,
	// so that -h never prints them.
	if !c.secretGiven && c.secretFile == "" {
		c.secret = os.Getenv("BYOC_ORCH_SECRET")
	}
	if c.token == "" {
		c.token = os.Getenv("BYOC_WORKER_TOKEN")
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	names, err := c.capabilityNames()
	if err != nil {
		return err
	}
	if err := c.checkRegistration(); err != nil {
		return err
	}
	opts, err := c.registerOptions()
	if err != nil {
		return err
	}

	srv, err := worker.Start(c.listen, worker.Config{
		Token: c.token, MaxBodyBytes: c.maxBodyBytes, MaxSleep: c.maxSleep, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	stopServer := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), workerStopTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("requests still running at shutdown were cut off", "err", err)
		}
	}
	base, err := c.baseURL(srv.Addr())
	if err != nil {
		stopServer()
		return err
	}
	log.Info("worker serving", "url", srv.URL(), "token_required", c.token != "")

	caps := make([]wire.ExternalCapability, len(names))
	for i, n := range names {
		caps[i] = wire.ExternalCapability{
			Name: c.namePrefix + n, Description: worker.Describe(n), URL: base + "/" + n,
			Capacity: c.capacity, PricePerUnit: c.pricePerUnit, PriceScaling: c.priceScaling,
			Currency: c.currency, Token: c.token,
		}
	}
	var registered []worker.Registration
	unregisterAll := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), workerStopTimeout)
		defer cancel()
		for _, r := range registered {
			if err := r.Unregister(ctx); err != nil {
				log.Warn("unregistering failed", "orchestrator", r.Orchestrator, "err", err)
			} else {
				log.Info("unregistered", "orchestrator", r.Orchestrator, "capabilities", len(r.Capabilities))
			}
		}
	}
	for _, orch := range c.orchestrators {
		r := worker.Registration{Orchestrator: orch, Secret: c.secret, Capabilities: caps, Options: opts}
		if err := r.Register(ctx); err != nil {
			unregisterAll()
			stopServer()
			return err
		}
		registered = append(registered, r)
		for _, cp := range caps {
			log.Info("registered", "orchestrator", orch, "capability", cp.Name, "url", cp.URL,
				"capacity", cp.Capacity, "price", fmt.Sprintf("%d/%d %s per second", cp.PricePerUnit, cp.PriceScaling, cp.Currency))
		}
	}

	runCtx, stopKeepAlive := context.WithCancel(ctx)
	defer stopKeepAlive()
	var keepAlive sync.WaitGroup
	if c.reregisterEvery > 0 {
		for _, r := range registered {
			keepAlive.Go(func() {
				r.KeepAlive(runCtx, c.reregisterEvery, func(err error) {
					if err != nil {
						log.Warn("re-registering failed; will try again", "orchestrator", r.Orchestrator, "err", err)
					} else {
						log.Debug("re-registered", "orchestrator", r.Orchestrator)
					}
				})
			})
		}
	}

	select {
	case <-ctx.Done():
		log.Info("stopping: unregistering, then letting requests in flight finish")
	case <-srv.Done():
		err = fmt.Errorf("worker server stopped: %w", srv.Err())
	}
	stopKeepAlive()
	keepAlive.Wait() // no re-registration may follow the unregistration
	unregisterAll()
	stopServer()
	return err
}

func (c *workerConfig) logger(w io.Writer) (*slog.Logger, error) {
	return buildLogger(w, c.logFormat, c.logLevel)
}

// capabilityNames parses --capabilities: known names, each once.
func (c *workerConfig) capabilityNames() ([]string, error) {
	var names []string
	for n := range strings.SplitSeq(c.capabilities, ",") {
		n = strings.TrimSpace(n)
		if n == "" || slices.Contains(names, n) {
			continue
		}
		if !slices.Contains(worker.Names(), n) {
			return nil, fmt.Errorf("--capabilities: unknown capability %q (have %s)", n, strings.Join(worker.Names(), ", "))
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--capabilities is empty (have %s)", strings.Join(worker.Names(), ", "))
	}
	return names, nil
}

// checkRegistration checks the registration flags and reads --secret-file.
func (c *workerConfig) checkRegistration() error {
	if c.secretFile != "" {
		if c.secretGiven {
			return errors.New("give --secret or --secret-file, not both")
		}
		var err error
		if c.secret, err = readSecretFile(c.secretFile); err != nil {
			return err
		}
	}
	switch {
	case len(c.orchestrators) == 0 && (c.secretGiven || c.secretFile != ""):
		return errors.New("a secret without --orchestrator: nothing to register with")
	case len(c.orchestrators) > 0 && c.secret == "":
		return errors.New("--orchestrator needs --secret (or --secret-file, or env BYOC_ORCH_SECRET): the orchestrator's secret")
	case c.capacity < 1:
		return fmt.Errorf("--capacity %d: need at least 1", c.capacity)
	case c.pricePerUnit < 0:
		return fmt.Errorf("--price-per-unit %d: must not be negative", c.pricePerUnit)
	case c.priceScaling < 1:
		return fmt.Errorf("--price-scaling %d: need at least 1", c.priceScaling)
	case c.reregisterEvery < 0:
		return fmt.Errorf("--reregister-every %s: must not be negative", c.reregisterEvery)
	}
	if cur := strings.ToLower(c.currency); cur != "wei" && cur != "eth" {
		return fmt.Errorf("--currency %q: want wei or eth (other currencies need the orchestrator's price feed)", c.currency)
	}
	if c.advertiseURL != "" {
		u, err := url.Parse(c.advertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return fmt.Errorf("--advertise-url %q: want http://host:port", c.advertiseURL)
		}
	}
	return nil
}

func (c *workerConfig) registerOptions() ([]worker.Option, error) {
	var opts []worker.Option
	if c.insecure {
		opts = append(opts, worker.InsecureSkipVerify())
	}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("--orchestrator-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--orchestrator-ca %s: no PEM certificate in it", c.caFile)
		}
		opts = append(opts, worker.WithRootCAs(pool))
	}
	return opts, nil
}

// baseURL is the URL registered capabilities hang under: --advertise-url,
// or the listening address when it names one host.
func (c *workerConfig) baseURL(addr net.Addr) (string, error) {
	if c.advertiseURL != "" {
		return strings.TrimRight(c.advertiseURL, "/"), nil
	}
	tcp, ok := addr.(*net.TCPAddr)
	if ok && tcp.IP.IsUnspecified() && len(c.orchestrators) > 0 {
		return "", fmt.Errorf("--listen %s serves every interface: give --advertise-url, the URL the orchestrator reaches this worker at", c.listen)
	}
	return "http://" + addr.String(), nil
}
