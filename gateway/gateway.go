package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"

	"byoc/ethsig"
	"byoc/internal/defaults"
	"byoc/internal/lazylog"
	"byoc/ledger"
	"byoc/pm"
	"byoc/wire"
)

// Defaults of Config.
const (
	DefaultMinCompute    = 60 * time.Second
	DefaultSearchTimeout = time.Second
	DefaultRespTimeout   = 500 * time.Millisecond
	DefaultMaxAttempts   = 3
	DefaultMaxBodyBytes  = 10 << 20
	DefaultMaxTimeout    = time.Hour
	DefaultHoldTTLMargin = 2 * time.Minute
	DefaultSettleTime    = 2 * time.Second
	DefaultTokenReuse    = 2 * time.Second
	DefaultJobMargin     = 10 * time.Second
	// MaxSearchTimeout bounds what a client may ask for in
	// Livepeer-Orch-Search-Timeout.
	MaxSearchTimeout = 30 * time.Second
)

// Config configures a Gateway. Zero values take the defaults.
type Config struct {
	// Discovery lists the orchestrators; required.
	Discovery *Discovery
	// Ledger keeps the gateway's books (the mirror of what it holds at each
	// orchestrator); required. It must not be an orchestrator's ledger.
	Ledger *ledger.Ledger
	// Remote, if set, signs jobs and pays through a remote signer instead
	// of Signer (which must then be nil): the gateway holds no key.
	Remote *RemoteSigner
	// Signer signs jobs and tickets. Nil runs offchain: requests are
	// unsigned and only free capabilities can be used.
	Signer ethsig.Signer
	// MaxPrice, if set, is the highest price in wei per second the gateway
	// pays; dearer orchestrators are skipped.
	MaxPrice *big.Rat
	// MinCompute is how much compute an orchestrator demands a job's hold
	// cover before it admits the job (default 60 s, go-livepeer's rule and
	// byoc orchestrator's default). The gateway pays so that the hold
	// reaches max(timeout, MinCompute) of compute.
	MinCompute time.Duration
	// SearchTimeout and RespTimeout are the defaults of the client headers
	// Livepeer-Orch-Search-Timeout (how long to collect tokens, default 1 s)
	// and Livepeer-Orch-Search-Resp-Timeout (how long one token request may
	// take, default 500 ms).
	SearchTimeout, RespTimeout time.Duration
	// MaxAttempts is how many orchestrators one job is sent to at most
	// (default 3).
	MaxAttempts int
	// MaxTimeout bounds a job's timeout_seconds (default 1 h).
	MaxTimeout time.Duration
	// MaxBodyBytes bounds a job's request body (default 10 MiB).
	MaxBodyBytes int64
	// JobMargin is how much longer than a job's timeout_seconds the gateway
	// waits for an orchestrator's answer, headers and body (default 10 s:
	// go-livepeer waits 5 s more for the headers, 10 s more for a stream).
	// Without headers by then the client gets 504 and the books charge
	// the job what the orchestrator may be entitled to: timeout_seconds at
	// its price, at most the hold.
	JobMargin time.Duration
	// AllowForeignServiceAddr accepts tokens whose service_addr names
	// another host than the orchestrator's URL they were asked from. By
	// default they are refused (the job's body and tickets go only to the
	// host the gateway chose); operators who front orchestrators with
	// another host for tokens set this.
	AllowForeignServiceAddr bool
	// HoldTTLMargin is added to a job's timeout to get the idle TTL of its
	// hold in the gateway's books (default 2 min).
	HoldTTLMargin time.Duration
	// SettleTime is how long after a streamed or broken job the
	// orchestrator's reported pool is not compared with the books, because
	// the orchestrator may not have closed that job's hold yet (default 2 s).
	SettleTime time.Duration
	// TokenReuse is how long an orchestrator's answer to a token request
	// serves later jobs for the same capability, instead of a request per
	// job (default 2 s; negative: never reused). See tokens.go.
	TokenReuse time.Duration
	// MaxTicketEV and MaxTotalEV bound one ticket's and one payment's EV in
	// wei (defaults: go-livepeer's 3e12 and 2e13).
	MaxTicketEV, MaxTotalEV *big.Int
	// Client calls orchestrators (default: HTTP/2 over TLS without
	// certificate verification, as go-livepeer does, or verified against
	// RootCAs).
	Client *http.Client
	// JobClient sends jobs to orchestrators; tokens, health checks and
	// streams stay on Client. Default: with the default Client, HTTP/1.1
	// over TLS with keep-alive (NewOrchestratorJobClient: ~50 µs less CPU
	// a job than HTTP/2's framing and flow control; docs/performance.md),
	// else Client. Tokens stay on HTTP/2 because a burst of new jobs opens
	// a connection each, and a token's short deadline must not wait behind
	// those handshakes.
	JobClient *http.Client
	// RootCAs, if set, is what orchestrator certificates are verified
	// against by the default Client.
	RootCAs *x509.CertPool
	// Now tells the time for latencies and settle periods (default time.Now).
	Now func() time.Time
	// Logger defaults to slog.Default(); Metrics to a new, unregistered set.
	Logger  *slog.Logger
	Metrics *Metrics

	// Streams (stream.go). Every StreamPayInterval (default 50 s) each
	// running stream whose orchestrator reports less than
	// StreamTopUpBelow of compute (default 120 s) is paid StreamTopUp of
	// it (default 70 s): go-livepeer's cadence. A refused top-up is tried
	// StreamPayRetries more times (default 2) before the client is told.
	// StreamTicker paces the rounds (default WallTicker). StreamHost is
	// the scheme and host of the URLs given to clients (default: the host
	// they asked); StreamCORS adds CORS headers to OPTIONS answers.
	StreamPayInterval, StreamTopUp, StreamTopUpBelow time.Duration
	StreamPayRetries                                 int
	StreamTicker                                     Ticker
	StreamHost                                       string
	StreamCORS                                       bool
}

// Gateway is the client entry point: it serves /process/request/, picks
// orchestrators, pays them and keeps its books. Safe for concurrent use.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	m         *Metrics
	payer     Payer
	signer    ethsig.Signer // nil offchain or remote
	remote    *RemoteSigner // nil unless a remote signer pays
	senderHdr string        // Livepeer-Eth-Address, static per key
	books     *books
	tokens    *tokenCache
	stats     *latencies
	busy      idleTracker
	streams   gwStreamTable
	stopped   stoppedStreams // the latest streams their clients stopped
}

// New checks cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Discovery == nil:
		return nil, errors.New("gateway: no discovery")
	case cfg.Ledger == nil:
		return nil, errors.New("gateway: no ledger for the gateway's books")
	case cfg.MaxPrice != nil && cfg.MaxPrice.Sign() < 0:
		return nil, errors.New("gateway: negative maximum price")
	}
	defaults.Set(&cfg.MinCompute, DefaultMinCompute)
	defaults.Set(&cfg.SearchTimeout, DefaultSearchTimeout)
	defaults.Set(&cfg.RespTimeout, DefaultRespTimeout)
	defaults.Set(&cfg.MaxAttempts, DefaultMaxAttempts)
	defaults.Set(&cfg.MaxTimeout, DefaultMaxTimeout)
	defaults.Set(&cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	defaults.Set(&cfg.HoldTTLMargin, DefaultHoldTTLMargin)
	defaults.Set(&cfg.SettleTime, DefaultSettleTime)
	defaults.Set(&cfg.JobMargin, DefaultJobMargin)
	defaults.Set(&cfg.StreamPayInterval, DefaultStreamPayInterval)
	defaults.Set(&cfg.StreamTopUp, DefaultStreamTopUp)
	defaults.Set(&cfg.StreamTopUpBelow, DefaultStreamTopUpBelow)
	if cfg.StreamPayRetries == 0 {
		cfg.StreamPayRetries = DefaultStreamPayRetries // negative: no retry
	}
	cfg.StreamPayRetries = max(cfg.StreamPayRetries, 0)
	if cfg.StreamTicker == nil {
		cfg.StreamTicker = WallTicker
	}
	if cfg.TokenReuse == 0 {
		cfg.TokenReuse = DefaultTokenReuse // negative stays: reuse off
	}
	if cfg.MaxTimeout > wire.MaxJobTimeoutSeconds*time.Second {
		cfg.MaxTimeout = wire.MaxJobTimeoutSeconds * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Each job gets its own logger (With); its attributes are formatted
	// only if it writes something.
	cfg.Logger = lazylog.Logger(cfg.Logger)
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.JobClient == nil {
		if cfg.Client == nil {
			cfg.JobClient = NewOrchestratorJobClient(cfg.RootCAs)
		} else {
			cfg.JobClient = cfg.Client
		}
	}
	if cfg.Client == nil {
		cfg.Client = NewOrchestratorClient(cfg.RootCAs)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, stats: newLatencies(cfg.Now)}
	sc := pm.SenderConfig{MaxTicketEV: cfg.MaxTicketEV, MaxTotalEV: cfg.MaxTotalEV}
	if cfg.Signer != nil {
		sc.Signer = cfg.Signer
		g.signer = cfg.Signer
	}
	g.payer = &localPayer{sender: pm.NewSender(sc), budget: pm.DefaultRefreshThreshold}
	js, err := wire.NewJobSender(g.signer)
	if err != nil {
		return nil, fmt.Errorf("gateway: signing the sender header: %w", err)
	}
	if cfg.Remote != nil {
		if cfg.Signer != nil {
			return nil, errors.New("gateway: a key and a remote signer: give one")
		}
		g.remote, g.payer, js = cfg.Remote, cfg.Remote, cfg.Remote.sender
	}
	if g.senderHdr, err = wire.EncodeJobSenderHeader(js); err != nil {
		return nil, err
	}
	g.tokens = newTokenCache(cfg.TokenReuse, cfg.Now, g.payer)
	g.books = newBooks(cfg.Ledger, g.log, g.m, cfg.Now, cfg.SettleTime)
	return g, nil
}

// NewOrchestratorClient returns the HTTP client a gateway uses to reach
// orchestrators: HTTP/2 over TLS (HTTP/1.1 for http:// orchestrators) with
// many idle connections kept, no transparent decompression (bodies are
// relayed as they come), and the certificate verified against roots, or —
// with nil roots — not verified at all, as go-livepeer gateways do for the
// self-signed certificates orchestrators serve. Payments stay safe only as
// far as the network path to the orchestrator is trusted; give roots (e.g.
// the orchestrator's own certificate) where it is not.
func NewOrchestratorClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: orchestratorTransport(roots)}
}

// NewOrchestratorJobClient is NewOrchestratorClient on HTTP/1.1 with
// keep-alive: a connection per concurrent job, kept idle (up to 256 per
// orchestrator) for the next, and TLS sessions resumed when one is opened.
func NewOrchestratorJobClient(roots *x509.CertPool) *http.Client {
	tr := orchestratorTransport(roots)
	tr.ForceAttemptHTTP2 = false
	// An empty, non-nil TLSNextProto never negotiates h2.
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(256)
	return &http.Client{Transport: tr}
}

func orchestratorTransport(roots *x509.CertPool) *http.Transport {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if roots != nil {
		tc.RootCAs = roots
	} else {
		tc.InsecureSkipVerify = true
	}
	return &http.Transport{
		Proxy:               nil, // orchestrators are dialled directly, never through $HTTPS_PROXY
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 2 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// Handler returns the client API: POST /process/request/<path>.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/process/request/", g.handleJob)
	g.streamRoutes(mux)
	return mux
}

// Metrics returns the gateway's metrics.
func (g *Gateway) Metrics() *Metrics { return g.m }

// Address is the gateway's paying address (zero offchain).
func (g *Gateway) Address() string {
	switch {
	case g.remote != nil:
		return g.remote.Address().Hex()
	case g.signer == nil:
		return wire.ZeroAddressHex
	}
	return g.signer.Address().Hex()
}

// WaitIdle blocks until no job is being handled — its answer relayed and
// its books posted (which happens right after the client has the answer)
// — or ctx ends.
func (g *Gateway) WaitIdle(ctx context.Context) error { return g.busy.wait(ctx) }

// idleTracker counts jobs in flight and wakes waiters when none is.
type idleTracker struct {
	mu      sync.Mutex
	n       int
	waiters []chan struct{}
}

func (t *idleTracker) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *idleTracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n--; t.n == 0 {
		for _, w := range t.waiters {
			close(w)
		}
		t.waiters = nil
	}
}

func (t *idleTracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	w := make(chan struct{})
	t.waiters = append(t.waiters, w)
	t.mu.Unlock()
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CloseIdleConnections closes the gateway's idle connections to
// orchestrators (an orchestrator shutting down gracefully waits for them).
func (g *Gateway) CloseIdleConnections() {
	g.cfg.Client.CloseIdleConnections()
	g.cfg.JobClient.CloseIdleConnections()
	g.trickleClient().CloseIdleConnections()
}

// Orchestrators reports what the gateway knows of each orchestrator it has
// talked to: recent latencies and failures.
func (g *Gateway) Orchestrators() []OrchestratorStatus { return g.stats.list() }

// Pools reports the gateway's books per (orchestrator, capability).
func (g *Gateway) Pools(ctx context.Context) ([]PoolStatus, error) { return g.books.pools(ctx) }
