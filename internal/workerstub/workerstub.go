// Package workerstub is a small test worker for the orchestrator's tests and
// internal/testnet: the sample worker's capability names and answers in the
// shapes those tests read, served by an httptest server and registered with
// an orchestrator over HTTP, so that tests of one role never import another
// role's package (docs/ARCHITECTURE.md, "The rules").
//
// It is test support, not a worker to run: it trusts its input, keeps the
// sample worker's framing (plain-text and JSON reverse, echo, sleep, sse,
// fail) and nothing of its validation.
package workerstub

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/wire"
)

// The capability names the stub serves, the sample worker's; each is its
// path below the stub's URL.
const (
	Reverse = "reverse"
	Echo    = "echo"
	SSE     = "sse"
	Sleep   = "sleep"
	Fail    = "fail"
)

// Config sets up a stub; the zero value is usable.
type Config struct {
	// Token, when set, is required as "Authorization: Bearer <Token>";
	// requests without it get 401.
	Token string
}

// Stats count the capability requests.
type Stats struct {
	Served   int64 // finished, whatever their status
	InFlight int64 // being handled now
}

// Server is a running stub.
type Server struct {
	srv     *httptest.Server
	handler *Handler
}

// Handler serves the capabilities and counts the requests.
type Handler struct {
	token   string
	mu      sync.Mutex
	stats   Stats
	changed chan struct{} // closed and replaced on every change
}

// Start starts a stub on loopback; the test's cleanup closes it.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	h := &Handler{token: cfg.Token, changed: make(chan struct{})}
	s := &Server{srv: httptest.NewServer(h), handler: h}
	t.Cleanup(s.Close)
	return s
}

// URL is the stub's base URL.
func (s *Server) URL() string { return s.srv.URL }

// CapabilityURL is the URL to register for a capability name.
func (s *Server) CapabilityURL(name string) string { return s.srv.URL + "/" + name }

// Capability returns a registration for the named capability served here
// (capacity 4, free); adjust the fields before registering.
func (s *Server) Capability(name string) wire.ExternalCapability {
	return wire.ExternalCapability{Name: name, URL: s.CapabilityURL(name), Capacity: 4, PriceScaling: 1,
		Currency: "wei", Token: s.handler.token}
}

// Handler is the stub's handler, for Stats and WaitFor.
func (s *Server) Handler() *Handler { return s.handler }

// Close stops the stub and ends the requests in flight.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Crash drops every open connection at once, with no answer, and refuses
// new ones: a worker process killed mid-job.
func (s *Server) Crash() { s.Close() }

// Stats returns the request counts.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// WaitFor blocks until done holds for the counts, or ctx ends.
func (h *Handler) WaitFor(ctx context.Context, done func(Stats) bool) error {
	for {
		h.mu.Lock()
		s, changed := h.stats, h.changed
		h.mu.Unlock()
		if done(s) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the stub's counts (now %+v): %w", s, context.Cause(ctx))
		}
	}
}

func (h *Handler) count(inFlight, served int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stats.InFlight += inFlight
	h.stats.Served += served
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	if !slices.Contains([]string{Reverse, Echo, SSE, Sleep, Fail}, name) {
		http.NotFound(w, r)
		return
	}
	h.count(1, 0)
	defer h.count(-1, 1)
	if h.token != "" && r.Header.Get("Authorization") != "Bearer "+h.token {
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var req struct {
		Text       *string `json:"text"`
		DurationMS int64   `json:"duration_ms"`
		Events     *int    `json:"events"`
		IntervalMS int64   `json:"interval_ms"`
		Status     int     `json:"status"`
		Message    string  `json:"message"`
	}
	jsonBody := strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
	if jsonBody || name != Reverse && name != Echo {
		if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &req) != nil {
			http.Error(w, name+": body is not the JSON object the stub reads", http.StatusBadRequest)
			return
		}
	}
	switch name {
	case Reverse:
		if !jsonBody {
			io.WriteString(w, reverse(string(body)))
			return
		}
		if req.Text == nil {
			http.Error(w, `reverse: a JSON body needs "text"`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"original": *req.Text, "reversed": reverse(*req.Text)})
	case Echo:
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Write(body)
	case Sleep:
		if !wait(r.Context(), time.Duration(req.DurationMS)*time.Millisecond) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"slept_ms\":%d}\n", req.DurationMS)
	case SSE:
		serveSSE(w, r, req.Text, req.Events, time.Duration(req.IntervalMS)*time.Millisecond)
	case Fail:
		if req.Status == 0 {
			req.Status = http.StatusInternalServerError
		}
		http.Error(w, req.Message, req.Status)
	}
}

// serveSSE sends events one interval apart (100 ms when none is given),
// each {"i":n,"token":…} with the tokens Hello, from, SSE and the request's
// text, then data: [DONE].
func serveSSE(w http.ResponseWriter, r *http.Request, text *string, events *int, interval time.Duration) {
	tokens := []string{"Hello", "from", "SSE"}
	if text != nil && *text != "" {
		tokens = append(tokens, *text)
	}
	n := len(tokens)
	if events != nil {
		n = *events
	}
	if interval == 0 {
		interval = 100 * time.Millisecond
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i := 0; i <= n; i++ {
		if i > 0 && !wait(r.Context(), interval) {
			return
		}
		frame := "data: [DONE]\n\n"
		if i < n {
			frame = fmt.Sprintf("data: {\"i\":%d,\"token\":%q}\n\n", i, tokens[i%len(tokens)])
		}
		if _, err := io.WriteString(w, frame); err != nil || rc.Flush() != nil {
			return
		}
	}
}

// wait waits d, or less when the request ends first (then false).
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

// Register registers a capability with the orchestrator at orchURL, as a
// worker does (POST /capability/register with the orchestrator's secret);
// the orchestrator's certificate is not checked.
func Register(ctx context.Context, orchURL, secret string, c wire.ExternalCapability) error {
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(orchURL, "/")+"/capability/register", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", secret)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register %s: %d %s", c.Name, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}
