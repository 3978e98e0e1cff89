// Package node is what every byoc role does to run: lock the data
// directory, listen, open the ledger, read or create the node's files
// (key, PM secret, tokens, TLS certificate), serve, run the background
// work (the ledger's sweeper and the role's own) and shut down. The roles
// keep their handlers and configuration; see docs/ARCHITECTURE.md.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"byoc/ethsig"
	"byoc/internal/defaults"
	"byoc/internal/nodefiles"
	"byoc/internal/serve"
	"byoc/ledger"
	"byoc/ledger/sqlite"
	"byoc/ledger/stores"
)

// Config is what Open needs.
type Config struct {
	// Role names the node in errors ("gateway: listen on …") and logs.
	Role string
	// DataDir is locked while the node runs and holds its files and, without
	// LedgerDSN, its embedded ledger; "" runs without a directory (a
	// PostgreSQL ledger and no files).
	DataDir string
	// LedgerDSN selects a PostgreSQL ledger instead of the embedded one.
	LedgerDSN string
	// Listen is host:port of the node's server; AdminListen of its admin
	// server ("" none). Port 0 picks a free port.
	Listen, AdminListen string
	// Clock drives the ledger (default: wall clock).
	Clock ledger.Clock
	// Logger receives the ledger's and the servers' logs (default slog.Default()).
	Logger *slog.Logger
	// Limits bound slow clients on both servers (serve.Limits' defaults).
	Limits serve.Limits
	// SweepInterval is how often the ledger releases expired holds
	// (default 15 s).
	SweepInterval time.Duration
	// NormalSync opens the embedded ledger with synchronous=NORMAL (see
	// sqlite.Options): for books reconciled against another's ledger.
	NormalSync bool
}

// GCPercent is the garbage collector's target every node runs with, unless
// the GOGC environment variable sets one: a node's live heap is small (tens
// of MB) and a job allocates much short-lived memory (HTTP, TLS, JSON,
// SQL), so at Go's default of 100 the collector runs often for little;
// at 400 it runs a quarter as often, for a heap at most five times the
// live one. Measured in docs/performance.md. GOMEMLIMIT, if set, still
// bounds the heap.
const GCPercent = 400

var gcOnce sync.Once

// tuneGC sets GCPercent once per process, unless GOGC is set.
func tuneGC() {
	gcOnce.Do(func() {
		if _, set := os.LookupEnv("GOGC"); !set {
			debug.SetGCPercent(GCPercent)
		}
	})
}

// Node is a node being started or running: its data directory, listeners
// and ledger.
type Node struct {
	Ledger *ledger.Ledger
	Store  ledger.Store
	// Where says where the ledger is: the SQLite file or "postgres".
	Where string

	cfg     Config
	lock    *nodefiles.DirLock // nil without a data directory
	ln, aln net.Listener       // aln nil without an admin server

	started bool
	servers serve.Group
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	drain   func(context.Context)
	closed  sync.Once
}

// Open locks the data directory, listens and opens the ledger: the start
// every role shares. Errors begin with the role's name; a failed Open
// leaves nothing behind, not even a data directory it created.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Clock == nil {
		cfg.Clock = ledger.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	defaults.Set(&cfg.SweepInterval, 15*time.Second)
	tuneGC()
	n := &Node{cfg: cfg}
	if cfg.DataDir != "" {
		lock, err := nodefiles.Lock(cfg.DataDir)
		if err != nil {
			return nil, n.errorf("%w", err)
		}
		n.lock = lock
	}
	ok := false
	defer func() {
		if !ok {
			n.Abandon()
		}
	}()
	var err error
	if n.ln, err = serve.Listen(cfg.Listen); err != nil {
		return nil, n.errorf("%w", err)
	}
	if cfg.AdminListen != "" {
		if n.aln, err = serve.Listen(cfg.AdminListen); err != nil {
			return nil, n.errorf("admin: %w", err)
		}
	}
	if n.Store, n.Ledger, n.Where, err = stores.OpenLedgerWith(ctx, cfg.DataDir, cfg.LedgerDSN, ledger.Options{Clock: cfg.Clock, Logger: cfg.Logger},
		sqlite.Options{NormalSync: cfg.NormalSync}); err != nil {
		return nil, n.errorf("%w", err)
	}
	ok = true
	return n, nil
}

func (n *Node) errorf(format string, a ...any) error {
	return fmt.Errorf(n.cfg.Role+": "+format, a...)
}

// Addr is where the node's server listens; AdminAddr the admin server's
// (nil without one).
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

func (n *Node) AdminAddr() net.Addr {
	if n.aln == nil {
		return nil
	}
	return n.aln.Addr()
}

// Key returns the node's Ethereum key from its data directory, creating
// one on first use.
func (n *Node) Key() (*ethsig.KeySigner, error) {
	k, err := nodefiles.Key(n.cfg.DataDir)
	if err != nil {
		return nil, n.errorf("node key: %w", err)
	}
	return k, nil
}

// Secret returns the size random bytes kept in the data directory as
// name, creating them on first use; what names the secret in errors.
func (n *Node) Secret(what, name string, size int) ([]byte, error) {
	s, err := nodefiles.Secret(n.cfg.DataDir, name, size)
	if err != nil {
		return nil, n.errorf("%s: %w", what, err)
	}
	return s, nil
}

// Token returns the printable token kept in the data directory as name,
// creating it on first use; what names it in errors.
func (n *Node) Token(what, name string) (string, error) {
	t, err := nodefiles.Token(n.cfg.DataDir, name)
	if err != nil {
		return "", n.errorf("%s: %w", what, err)
	}
	return t, nil
}

// TLS returns a server configuration with the node's self-signed
// certificate for hosts (LoadOrCreateCertificate).
func (n *Node) TLS(hosts ...string) (*tls.Config, error) {
	cert, err := LoadOrCreateCertificate(n.cfg.DataDir, n.cfg.Role, hosts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Run is what a started node serves and runs.
type Run struct {
	// Handler serves the node's listener, over TLS when TLS is set.
	Handler http.Handler
	TLS     *tls.Config
	// Admin serves the admin listener; required when there is one.
	Admin http.Handler
	// Background runs until Close, beside the ledger's sweeper.
	Background []func(context.Context)
	// Drain runs in Close after the servers and the background work have
	// stopped and before the ledger closes (work still posting to it).
	Drain func(context.Context)
}

// Serve starts serving and the background work; from then on Close stops
// the node. Until Serve, Abandon undoes Open.
func (n *Node) Serve(r Run) error {
	if r.Admin == nil && n.aln != nil {
		return errors.New(n.cfg.Role + ": no admin handler")
	}
	n.started = true
	n.drain = r.Drain
	errorLog := slogErrorLog(n.cfg.Logger)
	srv := n.cfg.Limits.Server(r.Handler, errorLog)
	ln := n.ln
	if r.TLS != nil {
		srv.TLSConfig = r.TLS
		n.servers.Go(n.cfg.Role, srv, func() error { return srv.ServeTLS(ln, "", "") })
	} else {
		n.servers.Go(n.cfg.Role, srv, func() error { return srv.Serve(ln) })
	}
	if aln := n.aln; aln != nil {
		asrv := n.cfg.Limits.Server(r.Admin, errorLog)
		n.servers.Go(n.cfg.Role, asrv, func() error { return asrv.Serve(aln) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	sweep := n.cfg.SweepInterval
	for _, f := range append([]func(context.Context){func(ctx context.Context) { n.Ledger.RunSweeper(ctx, sweep) }}, r.Background...) {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			f(ctx)
		}()
	}
	return nil
}

// slogErrorLog sends net/http's own error messages (TLS handshake noise
// from probes, mostly) to the structured log at debug level.
func slogErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelDebug)
}

// Abandon undoes a start that failed before Serve: it closes the
// listeners and the ledger and gives the data directory up, removing it
// if Open created it.
func (n *Node) Abandon() {
	if n.started {
		n.Close()
		return
	}
	n.closed.Do(func() {
		for _, ln := range []net.Listener{n.ln, n.aln} {
			if ln != nil {
				ln.Close()
			}
		}
		n.closeLedger()
		n.lock.Abandon()
	})
}

// Close stops the servers (letting requests in flight finish for up to
// 10 s), the background work, then Drain, the ledger, and releases the data
// directory.
func (n *Node) Close() error {
	if !n.started {
		n.Abandon()
		return nil
	}
	n.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.servers.Shutdown(ctx)
		n.cancel()
		n.wg.Wait()
		if n.drain != nil {
			n.drain(ctx)
		}
		n.closeLedger()
		n.lock.Release()
	})
	return nil
}

func (n *Node) closeLedger() {
	if n.Ledger != nil {
		n.Ledger.Close()
	}
	if n.Store != nil {
		n.Store.Close()
	}
}
