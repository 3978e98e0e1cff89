package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"byoc/internal/defaults"
	"byoc/internal/nodefiles"
	"byoc/internal/serve"
	"byoc/ledger"
	"byoc/ledger/stores"
)

// NodeConfig is what a running gateway needs; `byoc gateway` fills it from
// flags, `byoc bench` and tests directly.
type NodeConfig struct {
	// Listen is host:port of the client API (plain HTTP, as go-livepeer's
	// gateway); port 0 picks a free port. Default 127.0.0.1:9935.
	Listen string
	// AdminListen is host:port of /metrics and the read-only views
	// (/admin/orchestrators, /admin/pools); "" disables it.
	AdminListen string
	// DataDir holds the gateway's embedded ledger (its books). Required
	// unless LedgerDSN is set. Must not be an orchestrator's data directory.
	DataDir string
	// LedgerDSN selects a PostgreSQL ledger instead; give the gateway its
	// own database (not an orchestrator's).
	LedgerDSN string
	// Discovery configures where orchestrators come from (Logger and Client
	// default to the gateway's).
	Discovery DiscoveryConfig
	// Clock drives the ledger (default: wall clock).
	Clock ledger.Clock
	// SweepInterval is how often holds left by a crash are released
	// (default 15 s).
	SweepInterval time.Duration
	// Limits bound slow clients on both servers (serve.Limits' defaults).
	Limits serve.Limits
	// Gateway holds the remaining settings; StartNode fills in Discovery
	// and Ledger.
	Gateway Config
}

// Node is a running gateway with its listeners, books and background work.
type Node struct {
	*Gateway
	URL      string // the client API, http://host:port
	AdminURL string // "" when disabled
	Ledger   *ledger.Ledger
	Store    ledger.Store

	servers serve.Group
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  sync.Once
	lock    *nodefiles.DirLock // nil with a PostgreSQL ledger
}

// StartNode locks the data directory (when the books are there), listens,
// opens the books, starts discovery and serves until Close. A start that
// fails returns why and leaves nothing running; a data directory it
// created is removed again.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.DataDir == "" && cfg.LedgerDSN == "" {
		return nil, errors.New("gateway: no data directory for the gateway's books")
	}
	if cfg.DataDir != "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, nodefiles.SecretFile)); err == nil {
			return nil, fmt.Errorf("gateway: %s holds an orchestrator's files; give the gateway a data directory of its own so the books stay apart", cfg.DataDir)
		}
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9935"
	}
	if cfg.Clock == nil {
		cfg.Clock = ledger.SystemClock{}
	}
	defaults.Set(&cfg.SweepInterval, 15*time.Second)
	if cfg.Gateway.Logger == nil {
		cfg.Gateway.Logger = slog.Default()
	}
	var lock *nodefiles.DirLock
	if cfg.LedgerDSN == "" { // the data directory is used only for the books
		var err error
		if lock, err = nodefiles.Lock(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	n := &Node{}
	var lns []net.Listener // not yet served
	started := false
	defer func() {
		if !started {
			for _, ln := range lns {
				ln.Close()
			}
			n.Close()
			lock.Abandon()
		}
	}()
	ln, err := serve.Listen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	lns = append(lns, ln)
	var aln net.Listener
	if cfg.AdminListen != "" {
		if aln, err = serve.Listen(cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("gateway: admin: %w", err)
		}
		lns = append(lns, aln)
	}
	var where string
	if n.Store, n.Ledger, where, err = stores.OpenLedger(ctx, cfg.DataDir, cfg.LedgerDSN, ledger.Options{Clock: cfg.Clock, Logger: cfg.Gateway.Logger}); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.Discovery.Logger == nil {
		cfg.Discovery.Logger = cfg.Gateway.Logger
	}
	disc, err := NewDiscovery(cfg.Discovery)
	if err != nil {
		return nil, err
	}
	gc := cfg.Gateway
	gc.Discovery, gc.Ledger = disc, n.Ledger
	if n.Gateway, err = New(gc); err != nil {
		return nil, err
	}

	// Everything is in place: serve.
	started = true
	n.lock = lock
	n.URL = "http://" + ln.Addr().String()
	srv := cfg.Limits.Server(n.Handler(), slog.NewLogLogger(n.log.Handler(), slog.LevelDebug))
	n.servers.Go("gateway", srv, func() error { return srv.Serve(ln) })
	if aln != nil {
		n.AdminURL = "http://" + aln.Addr().String()
		asrv := cfg.Limits.Server(n.AdminHandler(), slog.NewLogLogger(n.log.Handler(), slog.LevelDebug))
		n.servers.Go("gateway", asrv, func() error { return asrv.Serve(aln) })
	}
	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.Ledger.RunSweeper(bg, cfg.SweepInterval)
	}()
	go func() {
		defer n.wg.Done()
		disc.Run(bg)
	}()
	n.log.Info("gateway listening", "url", n.URL, "admin", n.AdminURL, "address", n.Address(), "ledger", where,
		"orchestrators", len(cfg.Discovery.Static), "webhook", cfg.Discovery.WebhookURL)
	return n, nil
}

// Close stops the listeners (letting running jobs finish for up to 10 s),
// discovery, the sweeper and the books, and releases the data directory.
func (n *Node) Close() error {
	n.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.servers.Shutdown(ctx)
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.Gateway != nil {
			// Jobs whose answers went out may still be posting their books.
			if err := n.WaitIdle(ctx); err != nil {
				n.log.Error("gateway: closing with jobs' books still being posted; their holds will expire", "err", err)
			}
			n.CloseIdleConnections()
		}
		if n.Ledger != nil {
			n.Ledger.Close()
		}
		if n.Store != nil {
			n.Store.Close()
		}
		n.lock.Release()
	})
	return nil
}

// AdminHandler serves the operator's endpoints, meant for a private
// listener: GET /metrics (Prometheus), /healthz and /readyz (see Ready),
// and read-only JSON views
// /admin/orchestrators (latencies, failures) and /admin/pools (the books:
// the gateway's credit per orchestrator and capability, and the last
// comparison with the orchestrator's figure).
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.m.Handler())
	serve.Health(mux, g.Ready)
	mux.HandleFunc("GET /admin/orchestrators", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, g.Orchestrators(), nil)
	})
	mux.HandleFunc("GET /admin/pools", func(w http.ResponseWriter, r *http.Request) {
		p, err := g.Pools(r.Context())
		writeJSON(w, p, err)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
