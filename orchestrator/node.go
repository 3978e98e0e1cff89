package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/chain"
	"byoc/internal/defaults"
	"byoc/internal/node"
	"byoc/internal/nodefiles"
	"byoc/internal/serve"
	"byoc/ledger"
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
	// TicketSeeds is where ticket params' seeds come from (default
	// crypto/rand). Tests give a fixed one to make the node send the same
	// params again, as a recipient may.
	TicketSeeds io.Reader
	// SweepInterval is how often idle holds are released (default 15 s).
	SweepInterval time.Duration
	// ForgetSessionsEvery is how often the seen nonces of ticket sessions
	// expired for forgetSessionsMargin blocks are dropped (default 5 min).
	ForgetSessionsEvery time.Duration
	// Clock drives the ledger and the offchain block numbers (default: wall clock).
	Clock ledger.Clock
	// Limits bound slow clients on both servers (serve.Limits' defaults).
	Limits serve.Limits
	// Chain puts the node on chain (onchain.go); nil: offchain.
	Chain *OnChain
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
	// On chain only (onchain.go): the chain's state and the redeemer.
	Chain    *chain.State
	Redeemer *chain.Redeemer

	node *node.Node
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
	defaults.Set(&cfg.ForgetSessionsEvery, 5*time.Minute)
	u, err := url.Parse(cfg.Listen)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("orchestrator: listen address %q must look like https://host:port or http://host:port", cfg.Listen)
	}
	// Trickle publishers hold their requests open for a segment's data:
	// the trickle server bounds them, not the upload limits.
	base, err := node.Open(ctx, node.Config{Role: "orchestrator", DataDir: cfg.DataDir, LedgerDSN: cfg.LedgerDSN,
		Listen: u.Host, AdminListen: cfg.AdminListen, Clock: cfg.Clock, Logger: cfg.Orchestrator.Logger,
		Limits: cfg.Limits.WithStreaming(ChannelsBasePath), SweepInterval: cfg.SweepInterval})
	if err != nil {
		return nil, err
	}
	n := &Node{node: base, Ledger: base.Ledger, Store: base.Store}
	if err := n.start(cfg, u); err != nil {
		base.Abandon()
		return nil, err
	}
	return n, nil
}

// start makes the orchestrator on the opened node and serves it.
func (n *Node) start(cfg NodeConfig, u *url.URL) error {
	if n.Address = cfg.Address; n.Address == (common.Address{}) {
		key, err := n.node.Key()
		if err != nil {
			return err
		}
		n.Address = key.Address()
	}
	secret, err := n.node.Secret("PM secret", nodefiles.SecretFile, pm.SecretLength)
	if err != nil {
		return err
	}
	var blocks pm.BlockSource
	if cfg.Chain != nil {
		if blocks, err = n.startChain(cfg.Chain, cmp.Or(cfg.Orchestrator.Logger, slog.Default())); err != nil {
			return err
		}
	} else if blocks, err = pm.NewOffchainBlocks(cfg.Clock.Now, 0, common.Hash{}); err != nil {
		return err
	}
	rc := pm.RecipientConfig{Address: n.Address, Blocks: blocks, TicketEV: cfg.TicketEV, MaxFaceValue: cfg.MaxFaceValue, Rand: cfg.TicketSeeds}
	if n.Chain != nil {
		rc.ValidateSender, rc.MaxFloat, rc.GasPrice = n.Chain.ValidateSender, n.Chain.MaxFloat, n.Chain.GasPrice
	}
	copy(rc.Secret[:], secret)
	if cfg.Orchestrator.Recipient, err = pm.NewRecipient(rc); err != nil {
		return fmt.Errorf("orchestrator: %w", err)
	}

	addr := n.node.Addr()
	if cfg.ServiceAddr == "" {
		if host, _, _ := net.SplitHostPort(addr.String()); net.ParseIP(host).IsUnspecified() {
			return fmt.Errorf("orchestrator: listening on %s: give the address gateways should use (--service-addr)", addr)
		}
		cfg.ServiceAddr = u.Scheme + "://" + addr.String()
	}
	n.URL = strings.TrimSuffix(cfg.ServiceAddr, "/")
	oc := cfg.Orchestrator
	oc.ServiceAddr, oc.Ledger = n.URL, n.Ledger
	if n.Orchestrator, err = New(oc); err != nil {
		return err
	}
	run := node.Run{Handler: n.Handler(), Background: []func(context.Context){func(ctx context.Context) {
		n.forgetSessions(ctx, blocks, cfg.ForgetSessionsEvery)
	}, n.RunStreams}}
	if n.Chain != nil {
		run.Background = append(run.Background, func(ctx context.Context) { n.runChain(ctx, cfg.Chain.Poll) })
	}
	if u.Scheme == "https" {
		host := u.Hostname()
		if su, err := url.Parse(cfg.ServiceAddr); err == nil {
			host = su.Hostname()
		}
		if run.TLS, err = n.node.TLS(host); err != nil {
			return err
		}
	}
	if aaddr := n.node.AdminAddr(); aaddr != nil {
		if n.AdminToken = cfg.AdminToken; n.AdminToken == "" {
			if n.AdminToken, err = n.node.Token("admin token", "admin.token"); err != nil {
				return err
			}
		}
		n.AdminURL = "http://" + aaddr.String()
		run.Admin = n.AdminHandler(n.AdminToken)
		if n.Redeemer != nil {
			run.Admin = n.chainAdmin(n.AdminToken, run.Admin)
		}
	}
	if err := n.node.Serve(run); err != nil {
		return err
	}
	n.log.Info("orchestrator listening", "service_addr", n.URL, "admin", n.AdminURL, "address", n.Address.Hex(), "ledger", n.node.Where)
	return nil
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

// Close closes the streams' channels, cuts short the workers' stop calls
// the settlement batch left running, stops the listeners (letting running
// jobs finish for up to 10 s), the sweeper and the ledger, and releases
// the data directory.
func (n *Node) Close() error {
	if n.Orchestrator != nil {
		n.closeChannels()
		n.endStops()
	}
	return n.node.Close()
}
