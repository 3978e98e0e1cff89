package orchestrator

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"byoc/chain"
	"byoc/internal/defaults"
	"byoc/internal/serve"
	"byoc/ledger"
)

// OnChain puts an orchestrator node on chain (docs/chain.md): ticket params
// carry the chain's last initialized round and its block hash, senders are
// checked against the TicketBroker before their tickets are credited, and
// winning tickets are redeemed by a chain.Redeemer. Without it (NodeConfig.
// Chain nil) the node runs offchain, as before.
type OnChain struct {
	// Client reaches the TicketBroker and the RoundsManager; required.
	Client *chain.Client
	// Signer is the orchestrator's key (the tickets' recipient); nil uses
	// the node's key in its data directory.
	Signer chain.TxSigner
	// Gas prices redemptions; Confirmations finalises them (chain.Redeemer).
	Gas           chain.GasPolicy
	Confirmations uint64
	// MaxFloatPerSender caps one sender's unredeemed winning value.
	MaxFloatPerSender *big.Int
	// Poll is how often the head is checked (default 5 s).
	Poll time.Duration
	// Manual starts with automatic redemption off.
	Manual bool
}

// startChain builds the chain state and the redeemer of a node on chain.
func (n *Node) startChain(oc *OnChain, log *slog.Logger) (*chain.State, error) {
	if oc.Client == nil {
		return nil, errors.New("orchestrator: on chain without a client")
	}
	signer := oc.Signer
	if signer == nil {
		key, err := n.node.Key()
		if err != nil {
			return nil, err
		}
		signer = key
	}
	n.Address = signer.Address()
	n.Chain = &chain.State{Client: oc.Client, Me: n.Address, Ledger: n.Ledger, MaxFloatPerSender: oc.MaxFloatPerSender}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Chain.Refresh(ctx); err != nil {
		return nil, errors.New("orchestrator: reading the chain: " + err.Error())
	}
	n.Redeemer = &chain.Redeemer{Ledger: n.Ledger, Client: oc.Client, Signer: signer, Gas: oc.Gas,
		Confirmations: oc.Confirmations, Log: log}
	n.Redeemer.SetAuto(!oc.Manual)
	return n.Chain, nil
}

// runChain refreshes the chain state and runs the redeemer on every new
// head, until ctx ends.
func (n *Node) runChain(ctx context.Context, poll time.Duration) {
	defaults.Set(&poll, 5*time.Second)
	t := time.NewTicker(poll)
	defer t.Stop()
	ticks := make(chan time.Time)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if err := n.Chain.Refresh(ctx); err != nil && ctx.Err() == nil {
					n.log.Warn("chain: refresh", "err", err)
					continue
				}
				select {
				case ticks <- now:
				default: // the redeemer is busy: it sees the head next time
				}
			}
		}
	}()
	n.Redeemer.Run(ctx, ticks)
}

// chainAdmin adds the ticket endpoints of a node on chain to its admin API:
//
//	GET  /admin/tickets[?state=]          winning tickets with state, payout, last error, tx, last valid round
//	POST /admin/tickets/redeem            {"keys":[...]} (none: all queued) redeem now
//	POST /admin/tickets/auto              {"on":bool} automatic redemption on or off
//	GET  /admin/tickets/auto              {"on":bool}
//	POST /admin/tickets/prune             prune expired tickets and follow sent ones now
func (n *Node) chainAdmin(token string, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", next)
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				httpError(w, "admin token required", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	views := func(w http.ResponseWriter, r *http.Request, ws []ledger.Winner, err error) {
		if err != nil {
			writeResult(w, nil, err)
			return
		}
		vs, err := n.Redeemer.Views(r.Context(), ws)
		if err != nil {
			httpError(w, "chain: "+err.Error(), http.StatusBadGateway)
			return
		}
		writeJSON(w, vs)
	}
	mux.HandleFunc("GET /admin/tickets", guard(func(w http.ResponseWriter, r *http.Request) {
		state, ok := winnerState(w, r, "")
		if !ok {
			return
		}
		ws, err := n.Ledger.Winners(r.Context(), state, 0)
		views(w, r, ws, err)
	}))
	mux.HandleFunc("POST /admin/tickets/redeem", guard(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Keys []string `json:"keys"`
		}
		body, berr := serve.ReadBody(w, r, 1<<20)
		if berr != nil {
			httpError(w, berr.Error(), berr.Status)
			return
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				httpError(w, "bad request: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		if len(req.Keys) == 0 {
			ws, err := n.Ledger.Winners(r.Context(), ledger.WinnerQueued, 0)
			if err != nil {
				writeResult(w, nil, err)
				return
			}
			for _, x := range ws {
				req.Keys = append(req.Keys, x.Key)
			}
		}
		if len(req.Keys) == 0 {
			writeJSON(w, []chain.TicketView{})
			return
		}
		ws, err := n.Redeemer.RedeemNow(r.Context(), req.Keys)
		views(w, r, ws, err)
	}))
	auto := func(w http.ResponseWriter) { writeJSON(w, map[string]bool{"on": n.Redeemer.Auto()}) }
	mux.HandleFunc("GET /admin/tickets/auto", guard(func(w http.ResponseWriter, r *http.Request) { auto(w) }))
	mux.HandleFunc("POST /admin/tickets/auto", guard(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			On *bool `json:"on"`
		}
		body, berr := serve.ReadBody(w, r, 1<<10)
		if berr != nil {
			httpError(w, berr.Error(), berr.Status)
			return
		}
		if err := json.Unmarshal(body, &req); err != nil || req.On == nil {
			httpError(w, `bad request: want {"on":true} or {"on":false}`, http.StatusBadRequest)
			return
		}
		n.Redeemer.SetAuto(*req.On)
		auto(w)
	}))
	mux.HandleFunc("POST /admin/tickets/prune", guard(func(w http.ResponseWriter, r *http.Request) {
		if err := n.Redeemer.Prune(r.Context()); err != nil {
			httpError(w, "chain: "+err.Error(), http.StatusBadGateway)
			return
		}
		ws, err := n.Ledger.Winners(r.Context(), ledger.WinnerDead, 0)
		views(w, r, ws, err)
	}))
	return mux
}
