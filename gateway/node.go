package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"byoc/internal/console"
	"byoc/internal/node"
	"byoc/internal/nodefiles"
	"byoc/internal/serve"
	"byoc/ledger"
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

	node *node.Node
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
	if cfg.Gateway.Logger == nil {
		cfg.Gateway.Logger = slog.Default()
	}
	// Trickle publishers hold their requests open for a segment's data:
	// the trickle server bounds them, not the upload limits.
	nc := node.Config{Role: "gateway", DataDir: cfg.DataDir, LedgerDSN: cfg.LedgerDSN, Listen: cfg.Listen,
		AdminListen: cfg.AdminListen, Clock: cfg.Clock, Logger: cfg.Gateway.Logger, Limits: cfg.Limits.WithStreaming(mediaBasePath),
		SweepInterval: cfg.SweepInterval, NormalSync: true} // the books: docs/gateway.md, "Durability"
	if cfg.LedgerDSN != "" {
		nc.DataDir = "" // the data directory is used only for the books
	}
	base, err := node.Open(ctx, nc)
	if err != nil {
		return nil, err
	}
	n := &Node{node: base, Ledger: base.Ledger, Store: base.Store}
	if err := n.start(cfg); err != nil {
		base.Abandon()
		return nil, err
	}
	return n, nil
}

// start makes the gateway on the opened node and serves it.
func (n *Node) start(cfg NodeConfig) error {
	if cfg.Discovery.Logger == nil {
		cfg.Discovery.Logger = cfg.Gateway.Logger
	}
	disc, err := NewDiscovery(cfg.Discovery)
	if err != nil {
		return err
	}
	gc := cfg.Gateway
	gc.Discovery, gc.Ledger = disc, n.Ledger
	if n.Gateway, err = New(gc); err != nil {
		return err
	}
	run := node.Run{Handler: n.Handler(), Background: []func(context.Context){disc.Run, n.RunStreams}, Drain: n.drain}
	n.URL = "http://" + n.node.Addr().String()
	n.streams.self = n.URL // the gateway's own trickle channels, for its relays
	if aaddr := n.node.AdminAddr(); aaddr != nil {
		n.AdminURL = "http://" + aaddr.String()
		run.Admin = n.AdminHandler()
	}
	if err := n.node.Serve(run); err != nil {
		return err
	}
	n.log.Info("gateway listening", "url", n.URL, "admin", n.AdminURL, "address", n.Address(), "ledger", n.node.Where,
		"orchestrators", len(cfg.Discovery.Static), "webhook", cfg.Discovery.WebhookURL)
	return nil
}

// drain waits, once the servers have stopped, for the books of jobs whose
// answers went out.
func (n *Node) drain(ctx context.Context) {
	if err := n.WaitIdle(ctx); err != nil {
		n.log.Error("gateway: closing with jobs' books still being posted; their holds will expire", "err", err)
	}
	n.CloseIdleConnections()
}

// Close stops the listeners (letting running jobs finish for up to 10 s),
// discovery, the sweeper and the books, and releases the data directory.
func (n *Node) Close() error { return n.node.Close() }

// AdminHandler serves the operator's endpoints, meant for a private
// listener: GET /metrics (Prometheus), /healthz and /readyz (see Ready),
// and read-only JSON views
// /admin/orchestrators (latencies, failures), /admin/pools (the books:
// the gateway's credit per orchestrator and capability, and the last
// comparison with the orchestrator's figure) and /admin/streams (Streams:
// state, hold in the books, what it owes now, last event), and /console/, the web
// console over the same data (docs/console.md): the gateway has no admin
// token, so the console answers on loopback only.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.m.Handler())
	serve.Health(mux, g.Ready)
	mux.Handle(console.Prefix, console.Handler(console.Config{Role: "gateway", Views: g.consoleViews()}))
	mux.HandleFunc("GET /admin/orchestrators", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, g.Orchestrators(), nil)
	})
	mux.HandleFunc("GET /admin/pools", func(w http.ResponseWriter, r *http.Request) {
		p, err := g.Pools(r.Context())
		writeJSON(w, p, err)
	})
	mux.HandleFunc("GET /admin/streams", func(w http.ResponseWriter, r *http.Request) {
		ss := g.Streams()
		if ss == nil {
			ss = []StreamStatus{}
		}
		writeJSON(w, ss, nil)
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
