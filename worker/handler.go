package worker

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The capability names this worker offers; each is also its path prefix.
const (
	Reverse = "reverse"
	Echo    = "echo"
	SSE     = "sse"
	Sleep   = "sleep"
	Fail    = "fail"
)

// Defaults for Config's zero values.
const (
	DefaultMaxBodyBytes = 10 << 20
	DefaultMaxSleep     = 10 * time.Minute
)

// Names lists every capability the worker offers, in a fixed order.
func Names() []string { return []string{Reverse, Echo, SSE, Sleep, Fail} }

// Describe says in one line what a capability does (for registration
// descriptions and listings); "" for an unknown name.
func Describe(name string) string {
	switch name {
	case Reverse:
		return "reverses text (byoc sample worker)"
	case Echo:
		return "answers the request body back (byoc sample worker)"
	case SSE:
		return "streams server-sent events (byoc sample worker)"
	case Sleep:
		return "waits a requested time, then answers (byoc sample worker)"
	case Fail:
		return "answers a requested error status (byoc sample worker)"
	}
	return ""
}

// Config sets up a Handler. The zero value is usable.
type Config struct {
	// Token, when set, is required on every capability request as
	// "Authorization: Bearer <Token>"; requests without it get 401. Register
	// the capability with the same token so the orchestrator sends it.
	Token string
	// MaxBodyBytes limits a request body; larger ones get 413.
	// 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxSleep bounds how long the sleep capability, and an sse request in
	// total, may take; longer requests get 400. 0 means DefaultMaxSleep.
	MaxSleep time.Duration
	// Logger receives one debug line per request and a warning per failure.
	// nil discards them.
	Logger *slog.Logger
	// StreamEventInterval is how often a running stream writes a status
	// event. 0 means DefaultStreamEventInterval.
	StreamEventInterval time.Duration
	// StreamTicker makes the status events' ticker (tests pass one they
	// tick themselves). nil means time.NewTicker.
	StreamTicker func(d time.Duration) (ticks <-chan time.Time, stop func())
	// TrickleClient is the HTTP client of the stream's trickle channels.
	// nil means one that accepts the orchestrator's self-signed
	// certificate, as go-livepeer's trickle clients do for BYOC.
	TrickleClient *http.Client
}

// Stats are a Handler's request counts. Only requests to a capability's
// path count: not GET /, /healthz, or a 404 for a path no capability has.
type Stats struct {
	// Served counts capability requests that have finished, whatever their
	// status (including 401, 405 and 413 answers).
	Served int64
	// InFlight counts capability requests being handled now.
	InFlight int64
	// ByCapability counts finished requests per capability name.
	ByCapability map[string]int64
	// Unauthorized counts requests refused for a missing or wrong token.
	Unauthorized int64
	// ActiveStreams counts stream IDs started and not yet stopped.
	ActiveStreams int
	// StreamSegments counts stream segments transformed and published.
	StreamSegments int64
}

// Handler is the worker's http.Handler. Create it with NewHandler; it is
// safe for concurrent use.
type Handler struct {
	token        string
	maxBodyBytes int64
	maxSleep     time.Duration
	log          *slog.Logger

	trickleClient       *http.Client
	streamEventInterval time.Duration
	ticker              func(d time.Duration) (<-chan time.Time, func())
	streams             streams

	// stats guards the counters; changed is closed and replaced on every
	// change, waking WaitFor.
	stats struct {
		sync.Mutex
		served, inFlight, unauthorized int64
		streamSegments                 int64
		byCapability                   map[string]int64
		streams                        map[string]bool
		changed                        chan struct{}
	}
}

// NewHandler returns a Handler configured by cfg.
func NewHandler(cfg Config) *Handler {
	h := &Handler{
		token:        cfg.Token,
		maxBodyBytes: cfg.MaxBodyBytes,
		maxSleep:     cfg.MaxSleep,
		log:          cfg.Logger,
	}
	if h.maxBodyBytes <= 0 {
		h.maxBodyBytes = DefaultMaxBodyBytes
	}
	if h.maxSleep <= 0 {
		h.maxSleep = DefaultMaxSleep
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.trickleClient = streamHTTPClient(cfg.TrickleClient)
	h.streamEventInterval = cfg.StreamEventInterval
	if h.streamEventInterval <= 0 {
		h.streamEventInterval = DefaultStreamEventInterval
	}
	h.ticker = cfg.StreamTicker
	if h.ticker == nil {
		h.ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	h.streams.running = map[string]*streamSession{}
	h.streams.base = context.Background()
	h.stats.byCapability = map[string]int64{}
	h.stats.streams = map[string]bool{}
	h.stats.changed = make(chan struct{})
	return h
}

// Stats returns a snapshot of the request counts.
func (h *Handler) Stats() Stats {
	h.stats.Lock()
	defer h.stats.Unlock()
	return h.snapshotLocked()
}

func (h *Handler) snapshotLocked() Stats {
	s := Stats{
		Served:         h.stats.served,
		InFlight:       h.stats.inFlight,
		Unauthorized:   h.stats.unauthorized,
		ByCapability:   make(map[string]int64, len(h.stats.byCapability)),
		ActiveStreams:  len(h.stats.streams),
		StreamSegments: h.stats.streamSegments,
	}
	for k, v := range h.stats.byCapability {
		s.ByCapability[k] = v
	}
	return s
}

// WaitFor blocks until done(Stats()) is true, or ctx ends (then it returns
// ctx's error). done is called with the counts after every change.
func (h *Handler) WaitFor(ctx context.Context, done func(Stats) bool) error {
	for {
		h.stats.Lock()
		s, changed := h.snapshotLocked(), h.stats.changed
		h.stats.Unlock()
		if done(s) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for worker stats (now %+v): %w", s, context.Cause(ctx))
		}
	}
}

// update changes the counters under the lock and wakes WaitFor.
func (h *Handler) update(change func()) {
	h.stats.Lock()
	defer h.stats.Unlock()
	change()
	close(h.stats.changed)
	h.stats.changed = make(chan struct{})
}

// ServeHTTP routes /<capability>[/<suffix>] to the capability, after the
// method and token checks.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	name, suffix, _ := strings.Cut(path, "/")
	switch {
	case path == "healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		return
	case path == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.serveIndex(w)
		return
	}
	serve := h.capability(name)
	if serve == nil {
		http.Error(w, fmt.Sprintf("no capability at %q: this worker serves POST /<capability> for %s",
			r.URL.Path, strings.Join(Names(), ", ")), http.StatusNotFound)
		return
	}

	start := time.Now()
	h.update(func() { h.stats.inFlight++ })
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("worker handler panicked", "capability", name, "panic", p)
			if !rec.wroteHeader {
				http.Error(rec, "internal error in the sample worker", http.StatusInternalServerError)
			}
		}
		h.update(func() {
			h.stats.inFlight--
			h.stats.served++
			h.stats.byCapability[name]++
		})
		h.log.Debug("worker request", "capability", name, "path", r.URL.Path, "status", rec.status(),
			"duration", time.Since(start))
	}()

	if r.Method != http.MethodPost {
		rec.Header().Set("Allow", http.MethodPost)
		http.Error(rec, fmt.Sprintf("method %s not allowed: capabilities take POST", r.Method),
			http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(r) {
		h.update(func() { h.stats.unauthorized++ })
		rec.Header().Set("WWW-Authenticate", `Bearer realm="byoc-worker"`)
		http.Error(rec, "missing or wrong bearer token: this worker needs Authorization: Bearer <token>",
			http.StatusUnauthorized)
		return
	}
	switch suffix {
	case "stream/start", "stream/params", "stream/stop":
		h.serveStreamCall(rec, r, name, suffix)
	default:
		serve(rec, r)
	}
}

// capability returns the handler for a capability name, or nil.
func (h *Handler) capability(name string) http.HandlerFunc {
	switch name {
	case Reverse:
		return h.serveReverse
	case Echo:
		return h.serveEcho
	case SSE:
		return h.serveSSE
	case Sleep:
		return h.serveSleep
	case Fail:
		return h.serveFail
	}
	return nil
}

// authorized reports whether r carries the configured bearer token, or no
// token is configured. The comparison takes the same time however much of
// the token matches.
func (h *Handler) authorized(r *http.Request) bool {
	if h.token == "" {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(h.token)) == 1
}

func (h *Handler) serveIndex(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "byoc sample worker. POST to a capability's path (any suffix below it is accepted):")
	for _, n := range Names() {
		fmt.Fprintf(w, "  /%-8s %s\n", n, Describe(n))
	}
	fmt.Fprintln(w, "Each also answers the stream calls <path>/stream/start, /stream/params and /stream/stop.")
}

// readBody reads the whole request body within the size limit. On failure
// it has answered the request (413, or 400) and returns false.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > h.maxBodyBytes {
		h.bodyTooLarge(w)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.bodyTooLarge(w)
		} else {
			http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		}
		return nil, false
	}
	return body, true
}

func (h *Handler) bodyTooLarge(w http.ResponseWriter) {
	// The rest of the body is not read, so the connection cannot be reused.
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("request body too large: this worker accepts at most %d bytes", h.maxBodyBytes),
		http.StatusRequestEntityTooLarge)
}

// serveStreamCall answers the orchestrator's stream calls the way the
// reference stream worker does (docs/protocol.md §2.3), tracks which stream IDs
// are running, and runs each stream's session (stream.go): start starts
// it, params updates it, stop stops it.
func (h *Handler) serveStreamCall(w http.ResponseWriter, r *http.Request, capability, call string) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	id := r.Header.Get("X-Stream-Id")
	if id == "" {
		http.Error(w, "missing X-Stream-Id: stream calls name their stream", http.StatusBadRequest)
		return
	}
	switch call {
	case "stream/start":
		if err := h.startStream(id, capability, body); err != nil {
			http.Error(w, "stream start: "+err.Error(), http.StatusBadRequest)
			return
		}
	case "stream/params":
		if err := h.updateStream(id, body); err != nil {
			http.Error(w, "stream params: "+err.Error(), http.StatusBadRequest)
			return
		}
	case "stream/stop":
		h.stopStream(id)
	}
	w.Header().Set("Content-Type", "application/json")
	switch call {
	case "stream/start":
		h.update(func() { h.stats.streams[id] = true })
		writeJSON(w, struct {
			ReceivedBytes int  `json:"received_bytes"`
			Started       bool `json:"started"`
		}{len(body), true})
	case "stream/params":
		io.WriteString(w, `{"updated":true}`)
	case "stream/stop":
		h.update(func() { delete(h.stats.streams, id) })
		io.WriteString(w, `{"stopped":true}`)
	}
}

// statusRecorder remembers the status a handler wrote, for logging and to
// know whether a 500 can still be sent after a panic.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader && code >= 200 {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = http.StatusOK, true
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) status() int {
	if !s.wroteHeader {
		return 0
	}
	return s.code
}
