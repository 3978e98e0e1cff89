package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"byoc/internal/defaults"
	"byoc/internal/lazylog"
	"byoc/ledger"
	"byoc/orchestrator/meter"
	"byoc/pm"
	"byoc/pmledger"
)

// Config configures an Orchestrator. Zero values take the defaults.
type Config struct {
	// ServiceAddr is the absolute base URL gateways reach us at
	// (https://host:port); it goes into every token. Required.
	ServiceAddr string
	// Secret authorizes workers to register; required, compared in constant time.
	Secret string
	// Ledger keeps the money; required.
	Ledger *ledger.Ledger
	// Recipient issues ticket params and validates tickets; required, also
	// offchain (ticket params are always sent, docs/protocol.md §5.3).
	Recipient *pm.Recipient
	// MaxNonces is the per-session nonce cap (default pm.DefaultMaxNoncesPerSession).
	MaxNonces int
	// MinCompute is how much compute a job's hold must cover to be admitted
	// (default 60 s, go-livepeer's rule).
	MinCompute time.Duration
	// HoldTTLMargin is added to a job's timeout to get its hold's idle TTL
	// (default 2 min): a hold idle that long is released to its pool.
	HoldTTLMargin time.Duration
	// DurableJobs answers a job only once all its ledger changes are
	// durable (meter.Config.DurableJobs; default: those that credit no
	// tickets are durable once written, synced within milliseconds).
	DurableJobs bool
	// MaxOpenJobsPerSender bounds the jobs one sender has running (default 64).
	MaxOpenJobsPerSender int
	// MaxBodyBytes bounds a job's request body (default 10 MiB) and
	// MaxResponseBytes a plain worker response (default 64 MiB).
	MaxBodyBytes, MaxResponseBytes int64
	// MaxTimeout bounds timeout_seconds (default 1 h).
	MaxTimeout time.Duration
	// RequireBoundJobs refuses signed job requests without a byoc_job
	// binding (wire.Bind): go-livepeer gateways' requests can be replayed
	// (docs/protocol.md, D8), so an operator serving only byoc gateways can close
	// that hole. Off by default, for compatibility.
	RequireBoundJobs bool
	// ChargeInterval is how often a running SSE job is charged (default 5 s).
	ChargeInterval time.Duration
	// Ticker paces those charges (default meter.WallTicker); tests tick
	// by hand, with the ledger on a manual clock.
	Ticker meter.Ticker
	// WorkerClient calls workers (default: a client with sane timeouts).
	WorkerClient *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics defaults to a new, unregistered set.
	Metrics *Metrics

	// Streams (stream.go). Channels hosts their trickle channels (default:
	// a trickle server under /ai/trickle/). StreamSettleInterval
	// is how often every stream is settled in one batch (default 23 s,
	// go-livepeer's debit cadence); StreamGrace how long a stream that
	// ran dry keeps running before it is stopped (default 30 s);
	// StreamSettlers how many settlements run at once (default 64);
	// StreamTicker paces the batches (default meter.WallTicker; tests
	// tick by hand, with the ledger on a manual clock).
	Channels             StreamChannels
	StreamTicker         meter.Ticker
	StreamSettleInterval time.Duration
	StreamGrace          time.Duration
	StreamSettlers       int
}

// Orchestrator serves the BYOC orchestrator API.
type Orchestrator struct {
	cfg     Config
	reg     *registry
	meter   *meter.Meter
	senders senderCache
	log     *slog.Logger
	m       *Metrics
	streams streamTable
	ended   endedStreams // the latest stopped streams, for the console
	stops   stopCalls    // the worker side of stops made by the settlement batch

	open struct {
		sync.Mutex
		bySender map[string]int // running jobs per sender
	}
}

// New checks cfg and returns an Orchestrator.
func New(cfg Config) (*Orchestrator, error) {
	switch {
	case cfg.Ledger == nil:
		return nil, errors.New("orchestrator: no ledger")
	case cfg.Recipient == nil:
		return nil, errors.New("orchestrator: no PM recipient")
	case cfg.Secret == "":
		return nil, errors.New("orchestrator: an empty secret would let anyone register workers")
	case !strings.HasPrefix(cfg.ServiceAddr, "https://") && !strings.HasPrefix(cfg.ServiceAddr, "http://"):
		return nil, fmt.Errorf("orchestrator: service address %q must be an absolute http(s) URL", cfg.ServiceAddr)
	}
	cfg.ServiceAddr = strings.TrimSuffix(cfg.ServiceAddr, "/")
	defaults.Set(&cfg.MinCompute, 60*time.Second)
	defaults.Set(&cfg.HoldTTLMargin, 2*time.Minute)
	defaults.Set(&cfg.MaxOpenJobsPerSender, 64)
	defaults.Set(&cfg.MaxBodyBytes, 10<<20)
	defaults.Set(&cfg.MaxResponseBytes, 64<<20)
	defaults.Set(&cfg.MaxTimeout, time.Hour)
	defaults.Set(&cfg.ChargeInterval, 5*time.Second)
	defaults.Set(&cfg.StreamSettleInterval, 23*time.Second)
	defaults.Set(&cfg.StreamGrace, 30*time.Second)
	defaults.Set(&cfg.StreamSettlers, 64)
	if cfg.StreamTicker == nil {
		cfg.StreamTicker = meter.WallTicker
	}
	if cfg.WorkerClient == nil {
		cfg.WorkerClient = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 0,
		}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Each job gets its own logger (With); its attributes are formatted
	// only if it writes something.
	cfg.Logger = lazylog.Logger(cfg.Logger)
	if cfg.Channels == nil {
		cfg.Channels = NewTrickleChannels(cfg.Logger)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	mt, err := meter.New(meter.Config{Ledger: cfg.Ledger, MinCompute: cfg.MinCompute, HoldTTLMargin: cfg.HoldTTLMargin,
		Receiver: &pmledger.Receiver{Recipient: cfg.Recipient, Ledger: cfg.Ledger, MaxNonces: cfg.MaxNonces},
		Ticker:   cfg.Ticker, Recorder: meterMetrics{cfg.Metrics}, DurableJobs: cfg.DurableJobs, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	o := &Orchestrator{cfg: cfg, reg: newRegistry(), log: cfg.Logger, m: cfg.Metrics, meter: mt}
	o.open.bySender = map[string]int{}
	o.stops.slots = make(chan struct{}, maxStopCalls)
	o.stops.ctx, o.stops.cancel = context.WithCancel(context.Background())
	return o, nil
}

// Handler returns the BYOC API: worker registration, tokens and jobs.
func (o *Orchestrator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/capability/register", o.handleRegister)
	mux.HandleFunc("/capability/unregister", o.handleUnregister)
	mux.HandleFunc("/process/token", o.handleToken)
	mux.HandleFunc("/process/request/", o.handleJob)
	o.streamRoutes(mux)
	return mux
}

// httpError writes msg as go-livepeer's handlers do (http.Error: text/plain,
// nosniff, message plus newline).
func httpError(w http.ResponseWriter, msg string, status int) {
	http.Error(w, msg, status)
}

// tryOpen counts a running job against its sender's limit.
func (o *Orchestrator) tryOpen(sender string) bool {
	o.open.Lock()
	defer o.open.Unlock()
	if o.open.bySender[sender] >= o.cfg.MaxOpenJobsPerSender {
		return false
	}
	o.open.bySender[sender]++
	return true
}

func (o *Orchestrator) done(sender string) {
	o.open.Lock()
	defer o.open.Unlock()
	if o.open.bySender[sender]--; o.open.bySender[sender] <= 0 {
		delete(o.open.bySender, sender)
	}
}
