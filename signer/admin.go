package signer

import (
	"encoding/json"
	"errors"
	"net/http"

	"byoc/internal/serve"
	"byoc/ledger"
)

// GrantRequest is the body of POST /admin/budget/grant.
type GrantRequest struct {
	Customer string `json:"customer"`
	// App, if set, grants the customer's budget for that app: a limit on
	// the customer's payments for it (each charged to both budgets).
	App    string        `json:"app,omitempty"`
	Amount ledger.Amount `json:"amount"`
	// Key makes the grant happen once, however often it is sent.
	Key string `json:"key"`
}

// BudgetRoutes adds the budget admin API to mux.
func BudgetRoutes(mux *http.ServeMux, b *Budgets) {
	mux.HandleFunc("GET /admin/budgets", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.List(r.Context())
		adminAnswer(w, v, err)
	})
	mux.HandleFunc("GET /admin/budget", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.ReadApp(r.Context(), r.URL.Query().Get("customer"), r.URL.Query().Get("app"))
		adminAnswer(w, v, err)
	})
	mux.HandleFunc("GET /admin/statement", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		st, err := b.Statement(r.Context(), q.Get("customer"), 0)
		if err != nil || q.Get("format") != "csv" {
			adminAnswer(w, st, err)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		st.WriteCSV(w)
	})
	mux.HandleFunc("POST /admin/budget/grant", func(w http.ResponseWriter, r *http.Request) {
		body, berr := serve.ReadBody(w, r, 1<<16)
		if berr != nil {
			respondError(w, fail(berr.Status, berr.Msg))
			return
		}
		var g GrantRequest
		if err := json.Unmarshal(body, &g); err != nil {
			respondError(w, fail(http.StatusBadRequest, "grant: "+err.Error()))
			return
		}
		v, err := b.GrantApp(r.Context(), g.Customer, g.App, g.Amount, g.Key)
		adminAnswer(w, v, err)
	})
}

func adminAnswer(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		respondJSON(w, http.StatusOK, v)
	case errors.Is(err, ledger.ErrInvalidInput), errors.Is(err, ledger.ErrAmountOverflow):
		respondError(w, fail(http.StatusBadRequest, err.Error()))
	case errors.Is(err, ledger.ErrIdempotencyConflict):
		respondError(w, fail(http.StatusConflict, err.Error()))
	default:
		respondError(w, &apiError{status: http.StatusServiceUnavailable, msg: err.Error(), code: CodeBillingUnavailable})
	}
}
