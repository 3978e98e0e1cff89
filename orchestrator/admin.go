package orchestrator

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"byoc/internal/console"
	"byoc/internal/serve"
	"byoc/ledger"
)

// AdminHandler serves the operator's API, meant for a separate, private
// listener: /metrics, /healthz and /readyz (open; see serve.Health) and,
// with `Authorization: Bearer <token>`, JSON views of the ledger and the
// registry:
//
//	GET /admin/capabilities                 registered capabilities, price, capacity
//	GET /admin/pools[?sender=]              pool accounts
//	GET /admin/jobs[?sender=][&all=1]       open jobs (all: closed and expired too)
//	GET /admin/jobs/{sender}/{job}          one job's statement
//	GET /admin/winners[?state=queued|all]   winning tickets waiting for redemption
//
// An empty token disables the JSON views. /console/ is the web console
// over the same data (docs/console.md), behind the same token.
func (o *Orchestrator) AdminHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", o.m.Handler())
	serve.Health(mux, o.Ready)
	mux.Handle(console.Prefix, console.Handler(console.Config{Role: "orchestrator", Token: token, Views: o.consoleViews()}))
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
	// query wraps a list's handler: ?limit= (default 1000) must be a
	// whole number from 1 to maxAdminLimit, else 400 saying so.
	query := func(h func(w http.ResponseWriter, r *http.Request, limit int)) http.HandlerFunc {
		return guard(func(w http.ResponseWriter, r *http.Request) {
			limit := 1000
			if v := r.URL.Query().Get("limit"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n <= 0 || n > maxAdminLimit {
					httpError(w, fmt.Sprintf("limit %q: want a whole number from 1 to %d", v, maxAdminLimit), http.StatusBadRequest)
					return
				}
				limit = n
			}
			h(w, r, limit)
		})
	}
	mux.HandleFunc("GET /admin/capabilities", guard(func(w http.ResponseWriter, r *http.Request) {
		type capView struct {
			Name      string `json:"name"`
			Price     string `json:"price_wei_per_second"`
			Capacity  int    `json:"capacity"`
			Available int    `json:"available"`
			Workers   int    `json:"workers"`
		}
		out := []capView{}
		for _, c := range o.reg.list() {
			out = append(out, capView{c.name, c.price.RatString(), c.capacity, c.available, c.workers})
		}
		writeJSON(w, out)
	}))
	mux.HandleFunc("GET /admin/pools", query(func(w http.ResponseWriter, r *http.Request, limit int) {
		as, err := o.cfg.Ledger.List(r.Context(), ledger.AccountFilter{Kind: ledger.KindPool, Sender: r.URL.Query().Get("sender"), Limit: limit})
		writeResult(w, as, err)
	}))
	mux.HandleFunc("GET /admin/jobs", query(func(w http.ResponseWriter, r *http.Request, limit int) {
		f := ledger.AccountFilter{Kind: ledger.KindJob, Sender: r.URL.Query().Get("sender"), Limit: limit}
		if r.URL.Query().Get("all") == "" {
			f.State = ledger.StateOpen
		}
		as, err := o.cfg.Ledger.List(r.Context(), f)
		writeResult(w, as, err)
	}))
	mux.HandleFunc("GET /admin/jobs/{sender}/{job}", query(func(w http.ResponseWriter, r *http.Request, limit int) {
		s, err := o.cfg.Ledger.Statement(r.Context(), ledger.JobKey{Sender: r.PathValue("sender"), JobID: r.PathValue("job")}.Ref(), limit)
		writeResult(w, s, err)
	}))
	mux.HandleFunc("GET /admin/streams", guard(func(w http.ResponseWriter, r *http.Request) {
		ss, err := o.Streams(r.Context())
		if ss == nil {
			ss = []StreamInfo{}
		}
		writeResult(w, ss, err)
	}))
	mux.HandleFunc("GET /admin/winners", query(func(w http.ResponseWriter, r *http.Request, limit int) {
		state, ok := winnerState(w, r, ledger.WinnerQueued)
		if !ok {
			return
		}
		ws, err := o.cfg.Ledger.Winners(r.Context(), state, limit)
		writeResult(w, ws, err)
	}))
	return mux
}

// winnerState reads a winners list's ?state= (none: dflt; all: every
// state, ""), or answers 400 saying what it wants.
func winnerState(w http.ResponseWriter, r *http.Request, dflt string) (string, bool) {
	switch state := r.URL.Query().Get("state"); state {
	case "":
		return dflt, true
	case "all":
		return "", true
	case ledger.WinnerQueued, ledger.WinnerSubmitted, ledger.WinnerRedeemed, ledger.WinnerDead:
		return state, true
	default:
		httpError(w, fmt.Sprintf("state %q: want %s, %s, %s, %s or all", state,
			ledger.WinnerQueued, ledger.WinnerSubmitted, ledger.WinnerRedeemed, ledger.WinnerDead), http.StatusBadRequest)
		return "", false
	}
}

// maxAdminLimit bounds an admin list's ?limit=.
const maxAdminLimit = 100_000

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeResult(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, v)
	case errors.Is(err, ledger.ErrNotFound):
		httpError(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, ledger.ErrInvalidInput):
		httpError(w, err.Error(), http.StatusBadRequest)
	default:
		httpError(w, "ledger: "+err.Error(), http.StatusInternalServerError)
	}
}
