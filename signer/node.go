package signer

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"byoc/internal/console"
	"byoc/internal/node"
	"byoc/internal/serve"
	"byoc/ledger"
)

// NodeConfig is what a running signer needs; `byoc signer` fills it from
// flags, tests directly.
type NodeConfig struct {
	// Listen is host:port of the signer's API (plain HTTP, as
	// go-livepeer's); default 127.0.0.1:7936. AdminListen is host:port of
	// /healthz, /readyz and the budget admin API ("" none).
	Listen, AdminListen string
	// DataDir holds the key (when Signer.Key is nil) and the embedded
	// ledger; LedgerDSN selects a PostgreSQL ledger instead (shared by
	// replicas).
	DataDir, LedgerDSN string
	// Clock drives the ledger and the signer's billing; default wall clock.
	Clock ledger.Clock
	// Limits bound slow clients.
	Limits serve.Limits
	// AllowNoAuth lets the signer listen on a non-loopback address without
	// an auth webhook (go-livepeer's start rule refuses it otherwise).
	AllowNoAuth bool
	// Budgets makes every payment charge its customer's budget (483
	// without enough); without, what each payment costs is added to the
	// customer's usage tally. Either way every signed payment is in the
	// ledger. Thresholds (percent spent) fire alerts to Alert.
	Budgets    bool
	Thresholds []int
	Alert      func(Alert)
	// SharedNonces reserves ticket nonces from a counter in the ledger, so
	// replicas sharing a PostgreSQL ledger (and the key) never sign the
	// same nonce; one ledger write more per payment.
	SharedNonces bool
	// EventsURL, if set, receives every signed payment's usage event as a
	// CloudEvent, at least once, from the ledger's outbox; EventHeaders
	// are sent with each POST.
	EventsURL    string
	EventHeaders map[string]string
	// Background runs beside the signer until Close (e.g. a Poster).
	Background []func(context.Context)
	// Signer holds the remaining settings; Key defaults to the data
	// directory's node key, Clock to the node's.
	Signer Config
}

// Node is a running signer.
type Node struct {
	*Signer
	URL, AdminURL string
	Ledger        *ledger.Ledger
	Budgets       *Budgets
	Events        *EventSink // nil without EventsURL
	node          *node.Node
	alerts        alertLog // the latest alerts, for the console
}

// ErrPublicWithoutAuth is the start rule's refusal.
var ErrPublicWithoutAuth = errors.New("signer: refusing to listen on a non-loopback address without an auth webhook (--auth-webhook-url); pass --allow-no-auth to run open")

// Loopback reports whether a listen address (host:port) is loopback only.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StartNode applies the start rule, opens the ledger, and serves until Close.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7936"
	}
	if !Loopback(cfg.Listen) && cfg.Signer.Webhook == nil && !cfg.AllowNoAuth {
		return nil, ErrPublicWithoutAuth
	}
	if cfg.DataDir == "" && cfg.LedgerDSN == "" {
		return nil, errors.New("signer: no data directory")
	}
	if cfg.Signer.Logger == nil {
		cfg.Signer.Logger = slog.Default()
	}
	base, err := node.Open(ctx, node.Config{Role: "signer", DataDir: cfg.DataDir, LedgerDSN: cfg.LedgerDSN,
		Listen: cfg.Listen, AdminListen: cfg.AdminListen, Clock: cfg.Clock, Logger: cfg.Signer.Logger, Limits: cfg.Limits})
	if err != nil {
		return nil, err
	}
	n := &Node{node: base, Ledger: base.Ledger}
	if err := n.start(cfg); err != nil {
		base.Abandon()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(cfg NodeConfig) error {
	sc := cfg.Signer
	if sc.Key == nil {
		if cfg.DataDir == "" {
			return errors.New("signer: no key (give one, or a data directory to keep one in)")
		}
		k, err := n.node.Key()
		if err != nil {
			return err
		}
		sc.Key = k
	}
	if sc.Clock == nil {
		sc.Clock = n.Ledger
	}
	alert := func(a Alert) {
		n.alerts.add(firedAlert{Alert: a, At: n.Ledger.Now()})
		if cfg.Alert != nil {
			cfg.Alert(a)
		}
	}
	n.Budgets = &Budgets{Ledger: n.Ledger, Owner: sc.Key.Address().Hex(), Unlimited: !cfg.Budgets,
		Thresholds: cfg.Thresholds, Alert: alert, Events: cfg.EventsURL != ""}
	sc.Budget = n.Budgets
	if cfg.SharedNonces {
		sc.Nonces = &LedgerNonces{Ledger: n.Ledger, Owner: sc.Key.Address().Hex()}
	}
	if cfg.EventsURL != "" {
		n.Events = NewEventSink(EventSink{URL: cfg.EventsURL, Headers: cfg.EventHeaders, Ledger: n.Ledger,
			Source: "byoc-signer/" + sc.Key.Address().Hex(), Logger: sc.Logger})
		n.Budgets.Notify = n.Events.Wake
		cfg.Background = append(cfg.Background, n.Events.Run)
	}
	s, err := New(sc)
	if err != nil {
		return err
	}
	n.Signer = s
	run := node.Run{Handler: s.Handler(), Background: cfg.Background}
	n.URL = "http://" + n.node.Addr().String()
	if a := n.node.AdminAddr(); a != nil {
		n.AdminURL = "http://" + a.String()
		run.Admin = n.AdminHandler()
	}
	if err := n.node.Serve(run); err != nil {
		return err
	}
	s.log.Info("signer listening", "url", n.URL, "admin", n.AdminURL, "address", s.Address(), "budgets", cfg.Budgets,
		"webhook", sc.Webhook != nil)
	return nil
}

// Close stops the signer and closes its ledger.
func (n *Node) Close() error { return n.node.Close() }

// AdminHandler serves /healthz, /readyz and the budget API: GET
// /admin/budgets, GET /admin/budget?customer=C, GET
// /admin/statement?customer=C[&format=csv], POST /admin/budget/grant
// {"customer","amount","key"} (with budgets enforced); and /console/, the
// web console of the customers (docs/console.md), which answers on
// loopback only.
func (n *Node) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	serve.Health(mux, n.Ledger.Ready)
	mux.Handle(console.Prefix, console.Handler(console.Config{Role: "signer", Views: n.consoleViews()}))
	BudgetRoutes(mux, n.Budgets)
	return mux
}
