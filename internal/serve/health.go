package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// ReadyTimeout bounds one readiness check.
const ReadyTimeout = 2 * time.Second

// Health adds to mux, for an admin listener and without a token:
//
//	GET /healthz  200 {"status":"ok"} while the process serves
//	GET /readyz   200 {"status":"ready"} when ready(ctx) returns nil within
//	              ReadyTimeout, else 503 {"status":"not ready","reason":…}
func Health(mux *http.ServeMux, ready func(context.Context) error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeHealth(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeHealth(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func writeHealth(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
