package orchestrator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/internal/defaults"
	"byoc/internal/nodefiles"
	"byoc/internal/serve"
	"byoc/ledger"
	"byoc/ledger/stores"
	"byoc/pm"
)

// NodeConfig is what a running orchestrator node needs; `byoc orchestrator`
// fills it from flags, `byoc demo` and tests directly.
type NodeConfig struct {
	// Listen is where the BYOC API listens: https://host:port (TLS with a
	// self-signed certificate kept in DataDir, what go-livepeer gateways
	// dial) or http://host:port. Port 0 picks a free port.
	Listen string
	// ServiceAddr is the URL gateways are told to use; default: Listen as bound.
	ServiceAddr string
	// AdminListen is host:port of the admin API and /metrics; "" disables it.
	AdminListen string
	// AdminToken guards the admin API; "" generates one in DataDir (admin.token).
	AdminToken string
	// DataDir holds the embedded ledger, the node key, the PM secret and the
	// certificate. Required.
	DataDir string
	// LedgerDSN selects a PostgreSQL ledger instead of the embedded one.
	LedgerDSN string
	// Address is the PM recipient address (the node's Ethereum account);
	// zero uses the key in DataDir, created on first start.
	Address common.Address
	// TicketEV is the expected value of one ticket in wei (default pm.DefaultTicketEV).
	TicketEV *big.Int
	// MaxFaceValue caps a ticket's face value (0: none). A face value close
	// to TicketEV makes tickets win often (tests, demos).
	MaxFaceValue *big.Int
	// SweepInterval is how often idle holds are released (default 15 s).
	SweepInterval time.Duration
	// ForgetSessionsEvery is how often the seen nonces of ticket sessions
	// expired for forgetSessionsMargin blocks are dropped (default 5 min).
	ForgetSessionsEvery time.Duration
	// Clock drives the ledger and the offchain block numbers (default: wall clock).
	Clock ledger.Clock
	// Limits bound slow clients on both servers (serve.Limits' defaults).
	Limits serve.Limits
	// Orchestrator holds the remaining settings (Secret is required);
	// StartNode fills in ServiceAddr, Ledger and Recipient.
	Orchestrator Config
}

// Node is a running orchestrator with its listeners, ledger and sweeper.
type Node struct {
	*Orchestrator
	URL        string // the service address
	AdminURL   string // "" when disabled
	AdminToken string
	Address    common.Address
	Ledger     *ledger.Ledger
	Store      ledger.Store

	servers serve.Group
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  sync.Once
	lock    *nodefiles.DirLock
}

// StartNode locks the data directory, listens, opens the ledger and serves
// until Close. A start that fails returns why and leaves nothing running;
// a data directory it created is removed again.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("orchestrator: no data directory")
	}
	if cfg.Listen == "" {
		cfg.Listen = "https://127.0.0.1:8935"
	}
	if cfg.Clock == nil {
		cfg.Clock = ledger.SystemClock{}
	}
	defaults.Set(&cfg.SweepInterval, 15*time.Second)
	defaults.Set(&cfg.ForgetSessionsEvery, 5*time.Minute)
	u, err := url.Parse(cfg.Listen)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("orchestrator: listen address %q must look like https://host:port or http://host:port", cfg.Listen)
	}
	lock, err := nodefiles.Lock(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: %w", err)
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
	ln, err := serve.Listen(u.Host)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: %w", err)
	}
	lns = append(lns, ln)
	var aln net.Listener
	if cfg.AdminListen != "" {
		if aln, err = serve.Listen(cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("orchestrator: admin: %w", err)
		}
		lns = append(lns, aln)
	}
	var where string
	if n.Store, n.Ledger, where, err = stores.OpenLedger(ctx, cfg.DataDir, cfg.LedgerDSN, ledger.Options{Clock: cfg.Clock, Logger: cfg.Orchestrator.Logger}); err != nil {
		return nil, fmt.Errorf("orchestrator: %w", err)
	}
	if n.Address = cfg.Address; n.Address == (common.Address{}) {
		key, err := nodefiles.Key(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("orchestrator: node key: %w", err)
		}
		n.Address = key.Address()
	}
	secret, err := nodefiles.Secret(cfg.DataDir, nodefiles.SecretFile, pm.SecretLength)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: PM secret: %w", err)
	}
	blocks, err := pm.NewOffchainBlocks(cfg.Clock.Now, 0, common.Hash{})
	if err != nil {
		return nil, err
	}
	rc := pm.RecipientConfig{Address: n.Address, Blocks: blocks, TicketEV: cfg.TicketEV, MaxFaceValue: cfg.MaxFaceValue}
	copy(rc.Secret[:], secret)
	if cfg.Orchestrator.Recipient, err = pm.NewRecipient(rc); err != nil {
		return nil, fmt.Errorf("orchestrator: %w", err)
	}

	bound := u.Scheme + "://" + ln.Addr().String()
	if cfg.ServiceAddr == "" {
		if host, _, _ := net.SplitHostPort(ln.Addr().String()); net.ParseIP(host).IsUnspecified() {
			return nil, fmt.Errorf("orchestrator: listening on %s: give the address gateways should use (--service-addr)", ln.Addr())
		}
		cfg.ServiceAddr = bound
	}
	n.URL = strings.TrimSuffix(cfg.ServiceAddr, "/")
	oc := cfg.Orchestrator
	oc.ServiceAddr, oc.Ledger = n.URL, n.Ledger
	if n.Orchestrator, err = New(oc); err != nil {
		return nil, err
	}
	srv := cfg.Limits.Server(n.Handler(), slogErrorLog(n.log))
	if u.Scheme == "https" {
		host := u.Hostname()
		if su, err := url.Parse(cfg.ServiceAddr); err == nil {
			host = su.Hostname()
		}
		cert, err := LoadOrCreateCertificate(cfg.DataDir, []string{host})
		if err != nil {
			return nil, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	var asrv *http.Server
	if aln != nil {
		if n.AdminToken = cfg.AdminToken; n.AdminToken == "" {
			if n.AdminToken, err = nodefiles.Token(cfg.DataDir, "admin.token"); err != nil {
				return nil, fmt.Errorf("orchestrator: admin token: %w", err)
			}
		}
		n.AdminURL = "http://" + aln.Addr().String()
		asrv = cfg.Limits.Server(n.AdminHandler(n.AdminToken), slogErrorLog(n.log))
	}

	// Everything is in place: serve.
	started = true
	n.lock = lock
	if srv.TLSConfig != nil {
		n.servers.Go("orchestrator", srv, func() error { return srv.ServeTLS(ln, "", "") })
	} else {
		n.servers.Go("orchestrator", srv, func() error { return srv.Serve(ln) })
	}
	if asrv != nil {
		n.servers.Go("orchestrator", asrv, func() error { return asrv.Serve(aln) })
	}
	sctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.Ledger.RunSweeper(sctx, cfg.SweepInterval)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.forgetSessions(sctx, blocks, cfg.ForgetSessionsEvery)
	}()
	n.log.Info("orchestrator listening", "service_addr", n.URL, "admin", n.AdminURL, "address", n.Address.Hex(), "ledger", where)
	return n, nil
}

// forgetSessionsMargin is how many blocks past its expiry a ticket
// session's nonces are kept (offchain, 100 blocks are 20 minutes): tickets
// on expired params earn nothing, so forgetting them cannot let one be
// credited, and the margin covers a clock or chain that steps back.
const forgetSessionsMargin = 100

// forgetSessions drops the seen nonces of expired ticket sessions every
// period, so the replay table stays bounded by the sessions still valid.
func (n *Node) forgetSessions(ctx context.Context, blocks pm.BlockSource, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last := blocks.LastSeenL1Block()
		if !last.IsInt64() || last.Int64() <= forgetSessionsMargin {
			continue
		}
		if k, err := n.Ledger.ForgetSessions(ctx, last.Int64()-forgetSessionsMargin); err != nil && ctx.Err() == nil {
			n.log.Error("forget expired ticket sessions", "err", err)
		} else if k > 0 {
			n.log.Info("forgot expired ticket sessions", "sessions", k)
		}
	}
}

// Close stops the listeners (letting running jobs finish for up to 10 s),
// the sweeper and the ledger, and releases the data directory.
func (n *Node) Close() error {
	n.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.servers.Shutdown(ctx)
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
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
