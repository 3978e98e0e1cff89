package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/internal/serve"
	"byoc/internal/tick"
	"byoc/ledger"
	"byoc/trickle"
	"byoc/wire"
)

// Streams at the gateway (docs/gateway.md, "Streams"; docs/protocol.md §9).
//
// A client starts a stream with POST /process/stream/start and gets its
// URLs at once; the gateway then finds an orchestrator, pays the start
// and calls its /ai/stream/start, trying the next offer when one refuses.
// While the stream runs, one loop for all streams (RunStreams, every
// StreamPayInterval) asks each stream's orchestrator for a token naming
// the stream and, when the balance it reports is below StreamTopUpBelow of
// compute, pays StreamTopUp of compute to /ai/stream/payment. A refused
// top-up is tried again at once (StreamPayRetries times, each with fresh
// ticket params); when all fail, the client is told in the stream's status
// and events (GET …/status) instead of the failure only being logged.
//
// The states: starting (URLs answered, no orchestrator yet) → running (an
// orchestrator started it) → stopped (the client's stop); starting →
// failed (no orchestrator would start it); running → lost (its
// orchestrator no longer runs it: a top-up answered 404).

// Defaults of the stream cadence: go-livepeer's, so a byoc gateway keeps
// a go-livepeer orchestrator (23 s debits, 60 s minimum) paid.
const (
	DefaultStreamPayInterval = 50 * time.Second
	DefaultStreamTopUp       = 70 * time.Second
	DefaultStreamTopUpBelow  = 120 * time.Second
	DefaultStreamPayRetries  = 2
)

// Ticker paces periodic work: ticks every d until stop is called.
type Ticker = tick.Ticker

// WallTicker ticks on the wall clock.
var WallTicker Ticker = tick.Wall

// startRequest is the client's body for /process/stream/start.
type startRequest struct {
	StreamName string `json:"stream_name"`
	RTMPOutput string `json:"rtmp_output"`
	StreamID   string `json:"stream_id"`
	Params     string `json:"params"`
}

// StreamEvent is something the gateway tells a stream's client (in GET
// …/status, "events").
type StreamEvent struct {
	Type    string    `json:"type"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// gwStream is one client stream.
type gwStream struct {
	id        string
	req       *wire.JobRequest // the client's (unsigned), ID = the stream's
	params    wire.JobParameters
	start     []byte // the body sent to /ai/stream/start: {"params": …}
	urls      wire.StreamURLs
	log       *slog.Logger
	cancel    context.CancelFunc // ends the stream (its ctx: streamCtx)
	streamCtx context.Context
	started   chan struct{} // closed once the start has an outcome

	mu       sync.Mutex
	state    string // starting, running, stopped, failed
	orch     *offer // the orchestrator running it
	channels http.Header
	events   []StreamEvent
	lastErr  *StreamEvent
	paid     ledger.Amount // what the top-ups were worth
	params2  []byte        // the last update's body
	book     *streamBook   // its hold in the gateway's books, once started
	hold     ledger.Ref    // the latest session's hold in the books (kept after it closed)

	lostMu     sync.Mutex         // serializes streamLost
	endSession context.CancelFunc // ends the relays of the current orchestrator's session
	swaps      []time.Time        // failovers, for the limit
	// served are the orchestrators (discovery URLs) and recipients that
	// ran a session of the stream (servedBy also those paid for a start
	// that failed): a move never goes back to one (its ledger keeps the
	// stream ID as a job ID used, ours the hold key).
	served       []string
	servedBy     []common.Address
	ownChannels  []string // the gateway's channels for its media
	publish      string   // the client's URLs of them
	subscribe    string
	workerStatus map[string]any // the worker's last "status" event
}

type gwStreamTable struct {
	mu sync.Mutex
	m  map[string]*gwStream

	// The gateway's own trickle channels (stream_media.go), and the URL
	// it serves them at (set by its Node; "" for a bare Gateway).
	mediaOnce  sync.Once
	media      *trickle.Server
	self       string
	clientOnce sync.Once
	client     *http.Client // for trickle channels
}

func (t *gwStreamTable) add(s *gwStream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*gwStream{}
	}
	if _, ok := t.m[s.id]; ok {
		return false
	}
	t.m[s.id] = s
	return true
}

func (t *gwStreamTable) get(id string) *gwStream {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

func (t *gwStreamTable) remove(s *gwStream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[s.id] != s {
		return false
	}
	delete(t.m, s.id)
	return true
}

func (t *gwStreamTable) list() []*gwStream {
	t.mu.Lock()
	out := make([]*gwStream, 0, len(t.m))
	for _, s := range t.m {
		out = append(out, s)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *gwStream) event(typ, msg string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := StreamEvent{Type: typ, Message: msg, Time: at}
	s.events = append(s.events, e)
	if len(s.events) > 32 {
		s.events = s.events[len(s.events)-32:]
	}
	if strings.HasSuffix(typ, "error") || strings.HasSuffix(typ, "failed") || strings.HasSuffix(typ, "lost") {
		s.lastErr = &e
	}
}

// streamRoutes mounts the client's stream API.
func (g *Gateway) streamRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /process/stream/start", g.handleStreamStart)
	mux.HandleFunc("POST /process/stream/{id}/update", g.handleStreamUpdate)
	mux.HandleFunc("POST /process/stream/{id}/stop", g.handleStreamStop)
	mux.HandleFunc("GET /process/stream/{id}/status", g.handleStreamStatus)
	mux.HandleFunc("GET /process/stream/{id}/data", g.handleStreamData)
	mux.Handle("/ai/trickle/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mediaServer().ServeHTTP(w, r)
	}))
	mux.HandleFunc("OPTIONS /process/stream/", func(w http.ResponseWriter, r *http.Request) {
		if g.cfg.StreamCORS {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "*")
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// streamIDSuffixes name a stream's channels: an ID ending in one could
// name another stream's channel (go-livepeer's D12).
var streamIDSuffixes = []string{"-out", "-control", "-events", "-data"}

// validStreamID: a job ID (ValidJobID) that does not end in a channel
// suffix.
func validStreamID(id string) error {
	if err := ValidJobID(id); err != nil {
		return err
	}
	for _, s := range streamIDSuffixes {
		if strings.HasSuffix(id, s) {
			return fmt.Errorf("stream id %q ends in %q, which names another stream's channel", id, s)
		}
	}
	return nil
}

// handleStreamStart checks the client's request, answers with the
// stream's URLs at once, and starts it at an orchestrator meanwhile.
func (g *Gateway) handleStreamStart(w http.ResponseWriter, r *http.Request) {
	req, err := wire.DecodeJobRequestHeader(r.Header.Get(wire.HeaderJobRequest))
	if err != nil {
		http.Error(w, fmt.Sprintf("Unable to parse job request, err=%v", err), http.StatusBadRequest)
		return
	}
	if req.Capability == "" {
		http.Error(w, "Unable to parse job request, err=no capability set with request", http.StatusBadRequest)
		return
	}
	if req.Timeout() > g.cfg.MaxTimeout {
		http.Error(w, fmt.Sprintf("timeout_seconds %d exceeds this gateway's maximum of %d", req.TimeoutSeconds, int(g.cfg.MaxTimeout/time.Second)), http.StatusBadRequest)
		return
	}
	params, err := req.Params()
	if err != nil {
		http.Error(w, fmt.Sprintf("Unable to unmarshal job parameters err=%v", unwrapJSON(err)), http.StatusBadRequest)
		return
	}
	body, berr := serve.ReadBody(w, r, g.cfg.MaxBodyBytes)
	if berr != nil {
		http.Error(w, berr.Msg, berr.Status)
		return
	}
	var sr startRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &sr); err != nil {
			http.Error(w, "Invalid request body: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	var workerParams any
	if sr.Params != "" {
		if err := json.Unmarshal([]byte(sr.Params), &workerParams); err != nil {
			http.Error(w, "Invalid params: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	id := sr.StreamID
	if id == "" {
		name := cmpOr(sr.StreamName, "stream")
		var b [4]byte
		rand.Read(b[:])
		id = name + "-" + hex.EncodeToString(b[:])
	}
	if err := validStreamID(id); err != nil {
		http.Error(w, "Invalid stream id: "+err.Error(), http.StatusBadRequest)
		return
	}
	start, _ := json.Marshal(map[string]any{"params": workerParams})
	send := *req
	send.ID = id
	ctx, cancel := context.WithCancel(context.Background())
	s := &gwStream{id: id, req: &send, params: params, start: start, cancel: cancel, streamCtx: ctx, started: make(chan struct{}), state: "starting"}
	s.log = g.log.With("stream_id", id, "capability", req.Capability)
	base := g.streamBase(r) + "/process/stream/" + id
	s.urls = wire.StreamURLs{StreamID: id, UpdateURL: base + "/update", StatusURL: base + "/status", StopURL: base + "/stop"}
	if params.EnableDataOutput {
		s.urls.DataURL = base + "/data"
	}
	s.publish, s.subscribe = clientChannels(g.streamBase(r), id, params)
	if !g.streams.add(s) {
		cancel()
		http.Error(w, "stream "+id+" already exists", http.StatusConflict)
		return
	}
	g.openMedia(s) // before the answer: the client may publish at once
	go g.runStream(ctx, s)
	if s.publish != "" {
		w.Header().Set(wire.HeaderPublishURL, s.publish) // byoc: where the client sends its media
	}
	if s.subscribe != "" {
		w.Header().Set(wire.HeaderSubscribeURL, s.subscribe)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.urls)
}

// streamBase is the scheme and host of the client URLs: StreamHost, else
// the host the client asked.
func (g *Gateway) streamBase(r *http.Request) string {
	if g.cfg.StreamHost != "" {
		return strings.TrimSuffix(g.cfg.StreamHost, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// streamJob is the job the stream's token requests and signatures go by.
func (g *Gateway) streamJob(s *gwStream) *job {
	return &job{req: s.req, id: s.id, clientID: true, timeout: s.req.Timeout(), search: g.cfg.SearchTimeout,
		resp: min(g.cfg.RespTimeout, g.cfg.SearchTimeout), filter: s.params.Orchestrators, started: g.cfg.Now()}
}

// runStream starts s at the first orchestrator that takes it.
func (g *Gateway) runStream(ctx context.Context, s *gwStream) {
	defer close(s.started)
	if !g.startSession(ctx, s) {
		g.streamFailed(s, "no orchestrator started the stream")
		g.stopMedia(s) // the channels openMedia made: nothing will read them
	}
}

// startSession starts s at the first orchestrator that takes it, other
// than those that ran it already (served: a move never goes back), at
// most MaxAttempts tried, and its relays, in a session of its own below
// ctx, the stream's. It reports whether one did.
func (g *Gateway) startSession(ctx context.Context, s *gwStream) bool {
	j := g.streamJob(s)
	s.mu.Lock()
	j.filter.Exclude = append(slices.Clone(j.filter.Exclude), s.served...)
	s.mu.Unlock()
	urls, err := g.cfg.Discovery.Orchestrators(ctx)
	if err == nil {
		urls = filterOrchestrators(urls, j.filter)
	}
	if err != nil || len(urls) == 0 {
		return false
	}
	offers, fails := g.collectOffers(ctx, j, urls)
	for _, f := range fails {
		s.event("start_error", f.Error(), g.cfg.Now())
	}
	for i, o := range offers {
		if i >= g.cfg.MaxAttempts || ctx.Err() != nil {
			break
		}
		s.mu.Lock()
		booked := slices.Contains(s.servedBy, o.recipient)
		s.mu.Unlock()
		if booked {
			// Another node of an orchestrator that ran the stream (or
			// was paid for a start that failed): its hold in our books
			// would take the same key.
			s.event("start_error", fmt.Sprintf("%s: its recipient %s ran this stream already", o.url, o.recipient.Hex()), g.cfg.Now())
			continue
		}
		hdr, err := g.startAt(ctx, s, j, o)
		if err != nil {
			s.log.Info("orchestrator did not start the stream", "orchestrator", o.url, "err", err)
			s.event("start_error", fmt.Sprintf("%s: %v", o.url, err), g.cfg.Now())
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.state, s.orch, s.channels, s.endSession = "running", o, hdr, cancel
		s.served = append(s.served, o.url)
		if !slices.Contains(s.servedBy, o.recipient) {
			s.servedBy = append(s.servedBy, o.recipient)
		}
		s.mu.Unlock()
		g.startMedia(sctx, s, o, hdr)
		s.event("started", o.service, g.cfg.Now())
		s.log.Info("stream started", "orchestrator", o.url)
		return true
	}
	return false
}

func (g *Gateway) streamFailed(s *gwStream, why string) {
	s.mu.Lock()
	if s.state == "starting" {
		s.state = "failed"
	}
	s.mu.Unlock()
	s.event("start_failed", why, g.cfg.Now())
}

// startAt pays o what the stream's start needs and calls its
// /ai/stream/start; it returns the channel URLs.
func (g *Gateway) startAt(ctx context.Context, s *gwStream, j *job, o *offer) (http.Header, error) {
	need, err := ledger.CostOf(o.price, ledger.UnitsFor(max(j.timeout, g.cfg.MinCompute), time.Second))
	if err != nil {
		return nil, err
	}
	// The stream's draw is reserved in the books' pool before it is paid
	// for, as a job's is: a job beginning meanwhile cannot count it too.
	sb, err := g.books.reserveStream(ctx, o, s.req.Capability, s.id, need)
	if err != nil {
		return nil, err
	}
	need = need.Sub(sb.pending.Drawn())
	resp, body, pay, err := g.streamCall(ctx, s, j, o, "/ai/stream/start", s.id, need, s.start)
	if err == nil && (resp.StatusCode != http.StatusOK || resp.Header.Get(wire.HeaderControlURL) == "") {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, snippet(body))
	}
	if err != nil {
		if len(pay.Credits) == 0 || resp != nil && resp.Header.Get(wire.HeaderPaymentCredited) == "" {
			// Nothing paid, or refused before its payment was taken
			// (a byoc orchestrator says what it credited; go-livepeer's
			// never does).
			g.books.startAnswered(sb, false)
			return nil, err
		}
		// Its tickets were credited (what the orchestrator says it did
		// not is written off; with no answer, all are taken as credited,
		// as for jobs), to a hold it closed at once, charged what it
		// says (Livepeer-Job-Charged) or the start's second. The books
		// do the same, so both agree.
		bctx := context.WithoutCancel(ctx)
		g.bookStreamStart(bctx, s, sb, pay, resp, max(j.timeout, g.cfg.MinCompute))
		g.bookStreamEnd(bctx, s, resp)
		s.mu.Lock()
		s.servedBy = append(s.servedBy, o.recipient) // its key is taken
		s.mu.Unlock()
		if resp == nil {
			// Unanswered: o may have started it. Ask it to stop, so that
			// it does not run, and charge the hold there, a stream no
			// client uses (what it charged is found by reconciliation).
			go g.stopLeft(bctx, s, o)
		}
		return nil, err
	}
	g.bookStreamStart(context.WithoutCancel(ctx), s, sb, pay, resp, max(j.timeout, g.cfg.MinCompute))
	h := http.Header{}
	for _, k := range []string{wire.HeaderPublishURL, wire.HeaderSubscribeURL, wire.HeaderControlURL, wire.HeaderEventsURL, wire.HeaderDataURL} {
		if v := resp.Header.Get(k); v != "" {
			if strings.HasPrefix(v, "/") {
				v = o.service + v // path-only, as go-livepeer gateways accept
			}
			h.Set(k, v)
		}
	}
	return h, nil
}

// streamCall signs a request for the stream (id as its ID, the client's
// capability), then pays need (nothing when ≤ 0) and POSTs body to path at o.
// The payment it returns is what left with the request: nothing when its
// headers were never written.
func (g *Gateway) streamCall(ctx context.Context, s *gwStream, j *job, o *offer, path, id string, need ledger.Amount, body []byte) (*http.Response, []byte, Payment, error) {
	// Signed before paying: a request that cannot be signed costs nothing.
	hdr, err := g.signedHeader(ctx, j, id)
	if err != nil {
		return nil, nil, Payment{}, err
	}
	pay, err := g.pay(ctx, j, o, id, need)
	if err != nil {
		return nil, nil, Payment{}, fmt.Errorf("payment: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.service+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, Payment{}, err
	}
	req.Header.Set(wire.HeaderJobRequest, hdr)
	req.Header.Set("Content-Type", "application/json")
	if pay.Header != "" {
		req.Header.Set(wire.PaymentHeader, pay.Header)
	}
	d := &delivery{decided: make(chan struct{})}
	resp, err := g.cfg.Client.Do(req.WithContext(httptrace.WithClientTrace(ctx, d.trace())))
	d.end()
	if err != nil {
		if !d.left() {
			pay = Payment{} // never sent
		}
		return nil, nil, pay, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if pay.Header != "" && (resp.StatusCode == http.StatusOK || resp.Header.Get(wire.HeaderPaymentCredited) != "") {
		s.mu.Lock()
		s.paid = s.paid.Add(pay.Paid().Sub(uncredited(resp, pay.Paid())))
		s.mu.Unlock()
	}
	return resp, out, pay, err
}

// streamRequest is the signed request for an update, stop or top-up of
// s: its ID, its details naming it, the client's capability.
func streamRequest(s *gwStream, parameters string, timeout int) *wire.JobRequest {
	return &wire.JobRequest{ID: s.id, Request: fmt.Sprintf(`{"stream_id":%q}`, s.id), Parameters: parameters,
		Capability: s.req.Capability, TimeoutSeconds: timeout}
}

// lookup finds the client's stream: 404 "Stream not found" otherwise.
func (g *Gateway) lookup(w http.ResponseWriter, r *http.Request) *gwStream {
	s := g.streams.get(r.PathValue("id"))
	if s == nil {
		http.Error(w, "Stream not found", http.StatusNotFound)
	}
	return s
}

// running returns the stream's orchestrator, waiting for its start's
// outcome; nil when none runs it.
func (s *gwStream) running(ctx context.Context) *offer {
	select {
	case <-s.started:
	case <-ctx.Done():
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != "running" {
		return nil
	}
	return s.orch
}

// handleStreamUpdate forwards the body to the orchestrator's
// /ai/stream/update and relays its status and body.
func (g *Gateway) handleStreamUpdate(w http.ResponseWriter, r *http.Request) {
	s := g.lookup(w, r)
	if s == nil {
		return
	}
	body, berr := serve.ReadBody(w, r, g.cfg.MaxBodyBytes)
	if berr != nil {
		http.Error(w, berr.Msg, berr.Status)
		return
	}
	o := s.running(r.Context())
	if o == nil {
		http.Error(w, "Stream is not running", http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	s.params2 = body
	s.mu.Unlock()
	j := g.streamJob(s)
	j.req = streamRequest(s, "{}", 10)
	resp, out, _, err := g.streamCall(r.Context(), s, j, o, "/ai/stream/update", s.id, ledger.Amount{}, body)
	if err != nil {
		http.Error(w, "Error sending request to orchestrator: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// handleStreamStop stops the stream at its orchestrator (/ai/stream/stop
// with the client's body) and here: 200 with the orchestrator's body.
func (g *Gateway) handleStreamStop(w http.ResponseWriter, r *http.Request) {
	s := g.lookup(w, r)
	if s == nil {
		return
	}
	body, berr := serve.ReadBody(w, r, g.cfg.MaxBodyBytes)
	if berr != nil {
		http.Error(w, berr.Msg, berr.Status)
		return
	}
	out := g.stopStream(r.Context(), s, body)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// stopStream ends s here and at its orchestrator, once; it returns the
// orchestrator's answer to the stop.
func (g *Gateway) stopStream(ctx context.Context, s *gwStream, body []byte) []byte {
	if !g.streams.remove(s) {
		return nil
	}
	s.cancel()
	<-s.started
	g.stopMedia(s)
	s.mu.Lock()
	o := s.orch
	wasRunning := s.state == "running"
	s.state = "stopped"
	s.mu.Unlock()
	if !wasRunning || o == nil {
		s.event("stopped", "stopped by the client", g.cfg.Now())
		g.stopped.add(s.status(g.cfg.Ledger.Now()))
		return nil
	}
	if len(body) == 0 {
		body = []byte("stream ended")
	}
	resp, out, err := g.stopAt(context.WithoutCancel(ctx), s, o, body)
	g.bookStreamEnd(context.WithoutCancel(ctx), s, resp)
	s.event("stopped", "stopped by the client", g.cfg.Now())
	g.stopped.add(s.status(g.cfg.Ledger.Now()))
	if err != nil {
		s.log.Warn("stop at the orchestrator", "err", err)
		return nil
	}
	s.log.Info("stream stopped")
	return out
}

// handleStreamStatus answers the stream's status JSON: the orchestrator
// running it, the last error and the gateway's events.
func (g *Gateway) handleStreamStatus(w http.ResponseWriter, r *http.Request) {
	s := g.lookup(w, r)
	if s == nil {
		return
	}
	s.mu.Lock()
	st := map[string]any{"whep_url": s.urls.WhepURL, "state": s.state, "events": append([]StreamEvent(nil), s.events...)}
	if s.orch != nil {
		st["orchestrator"] = s.orch.service
	}
	if s.publish != "" {
		st["publish_url"] = s.publish
	}
	if s.subscribe != "" {
		st["subscribe_url"] = s.subscribe
	}
	if s.workerStatus != nil {
		st["worker_status"] = s.workerStatus
	}
	if s.lastErr != nil {
		st["error"] = map[string]any{"error_message": s.lastErr.Message, "error_time": s.lastErr.Time.UnixMilli()}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// handleStreamData relays the stream's data channel as server-sent
// events; 503 when the stream has no data output.
func (g *Gateway) handleStreamData(w http.ResponseWriter, r *http.Request) {
	s := g.lookup(w, r)
	if s == nil {
		return
	}
	if !s.params.EnableDataOutput {
		http.Error(w, "Stream data not available", http.StatusServiceUnavailable)
		return
	}
	o := s.running(r.Context())
	s.mu.Lock()
	u := s.channels.Get(wire.HeaderDataURL)
	s.mu.Unlock()
	if o == nil || u == "" {
		http.Error(w, "Stream data not available", http.StatusServiceUnavailable)
		return
	}
	g.relayData(w, r, u)
}

// RunStreams tops up every running stream at each tick of one ticker
// (StreamTicker every StreamPayInterval) until ctx ends.
func (g *Gateway) RunStreams(ctx context.Context) {
	tick.Every(ctx, g.cfg.StreamTicker, g.cfg.StreamPayInterval, func(ctx context.Context) { g.PayStreams(ctx) })
}

// PayStreams runs one round of top-ups over the running streams and
// returns how many were paid and how many could not be.
func (g *Gateway) PayStreams(ctx context.Context) (paid, failed int) {
	g.mediaSweep()
	g.forgetEnded()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 16)
	for _, s := range g.streams.list() {
		s.mu.Lock()
		o := s.orch
		running := s.state == "running"
		s.mu.Unlock()
		if !running {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			did, err := g.topUp(ctx, s, o)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed++
			case did:
				paid++
			}
		}()
	}
	wg.Wait()
	return paid, failed
}

// endedKeep is how long a failed or lost stream stays listed (its status
// readable) before the gateway forgets it.
const endedKeep = 10 * time.Minute

// forgetEnded drops failed and lost streams whose last event is older than
// endedKeep.
func (g *Gateway) forgetEnded() {
	now := g.cfg.Now()
	for _, s := range g.streams.list() {
		s.mu.Lock()
		ended := s.state == "failed" || s.state == "lost"
		old := len(s.events) > 0 && now.Sub(s.events[len(s.events)-1].Time) > endedKeep
		s.mu.Unlock()
		if ended && old && g.streams.remove(s) {
			s.cancel()
			g.stopMedia(s)
		}
	}
}

// topUp asks o for the stream's balance and, below StreamTopUpBelow of
// compute, pays StreamTopUp of it: tried StreamPayRetries more times with
// fresh ticket params when refused; the client is told when all fail.
func (g *Gateway) topUp(ctx context.Context, s *gwStream, o *offer) (bool, error) {
	if o.price.Sign() == 0 {
		return false, nil
	}
	var last error
	for try := 0; try <= g.cfg.StreamPayRetries; try++ {
		did, err := g.topUpOnce(ctx, s, o)
		if err == nil {
			return did, nil
		}
		last = err
		s.log.Warn("stream top-up refused", "try", try+1, "err", err)
		if errors.Is(err, errStreamGone) {
			g.streamLost(ctx, s, o, err.Error(), false)
			return false, err
		}
	}
	if errors.Is(last, ErrTransport) {
		// Unreachable each time: it is gone (killed, or cut off).
		g.streamLost(ctx, s, o, "unreachable: "+last.Error(), true)
		return false, last
	}
	s.event("payment_error", "the orchestrator refused the stream's top-up: "+last.Error(), g.cfg.Now())
	g.m.attempts.WithLabelValues(o.url, "stream_payment", "refused").Inc()
	return false, last
}

func (g *Gateway) topUpOnce(ctx context.Context, s *gwStream, o *offer) (bool, error) {
	j := g.streamJob(s)
	j.search = max(j.search, 3*time.Second) // go-livepeer's token timeout for top-ups
	j.resp = j.search
	r := g.askToken(ctx, j, o.url, snapshot{})
	if r.err != nil {
		return false, r.err
	}
	fresh := r.offer
	bal := streamBalance(fresh.token)
	below, err := ledger.CostOf(fresh.price, ledger.UnitsFor(g.cfg.StreamTopUpBelow, time.Second))
	if err != nil {
		return false, err
	}
	if bal.Cmp(below) >= 0 {
		return false, nil
	}
	amount, err := ledger.CostOf(fresh.price, ledger.UnitsFor(g.cfg.StreamTopUp, time.Second))
	if err != nil {
		return false, err
	}
	j.req = streamRequest(s, "{}", int(g.cfg.StreamTopUp/time.Second))
	resp, body, pay, err := g.streamCall(ctx, s, j, fresh, "/ai/stream/payment", s.id, amount, nil)
	if err != nil {
		return false, err
	}
	if resp.StatusCode == http.StatusOK || resp.Header.Get(wire.HeaderPaymentCredited) != "" {
		g.bookStreamPayment(ctx, s, pay, resp)
	}
	if paid := pay.Paid(); paid.Sign() > 0 && resp.Header.Get(wire.HeaderPaymentCredited) != "" && uncredited(resp, paid).Cmp(paid) == 0 {
		// Paid and worth nothing there (tickets it had seen, or refused):
		// the stream is not topped up, whatever the status says.
		g.m.topUpsUncredited.WithLabelValues(o.url).Inc()
		s.log.Warn("the orchestrator credited nothing for the stream's top-up", "orchestrator", o.url, "paid_wei", paid.String(), "status", resp.StatusCode)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, fmt.Errorf("%w: %s", errStreamGone, snippet(body))
	}
	return false, fmt.Errorf("status %d: %s", resp.StatusCode, snippet(body))
}

// streamLost records that o, the stream's orchestrator, no longer runs
// it (why: its last event or closed channel, a top-up answered 404, or o
// unreachable): its hold in the books is closed — charged the time it ran,
// at most what it holds, as the orchestrator's was — and its session's
// relays end. The stream then moves to another orchestrator that offers
// the capability (as go-livepeer's gateway does: at most 2 moves within a
// minute), keeping the client's URLs, which are the gateway's; when none
// takes it, it is lost and the client told. Nothing happens when o no
// longer runs it (a second report of the same loss). When o may only
// look gone (unreachable, or its events channel broke: mayRun), it is
// also asked to stop the stream, in the background, so that a stream it
// still runs does not go on charging the hold there while it runs
// elsewhere.
func (g *Gateway) streamLost(ctx context.Context, s *gwStream, o *offer, why string, mayRun bool) {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	s.mu.Lock()
	current := s.state == "running" && s.orch == o
	end := s.endSession
	s.mu.Unlock()
	if !current {
		return
	}
	g.bookStreamEnd(context.WithoutCancel(ctx), s, nil)
	if end != nil {
		end()
	}
	if mayRun {
		go g.stopLeft(context.WithoutCancel(ctx), s, o)
	}
	s.event("stream_lost", o.url+": "+why, g.cfg.Now())
	s.log.Warn("the orchestrator no longer runs the stream", "orchestrator", o.url, "why", why)
	now := g.cfg.Now()
	s.mu.Lock()
	s.state = "moving"
	s.swaps = slices.DeleteFunc(s.swaps, func(t time.Time) bool { return now.Sub(t) > time.Minute })
	canMove := len(s.swaps) < 2 && s.streamCtx.Err() == nil
	if canMove {
		s.swaps = append(s.swaps, now)
	}
	s.mu.Unlock()
	if canMove && g.startSession(s.streamCtx, s) {
		s.event("moved", "to "+s.orchURL(), g.cfg.Now())
		return
	}
	s.mu.Lock()
	if s.state == "moving" {
		s.state = "lost"
	}
	s.mu.Unlock()
	s.cancel()
	g.stopMedia(s)
}

// stopAt asks o to stop s, sending body (the client's, or why), paying
// nothing.
func (g *Gateway) stopAt(ctx context.Context, s *gwStream, o *offer, body []byte) (*http.Response, []byte, error) {
	j := g.streamJob(s)
	j.req = streamRequest(s, "", 10)
	resp, out, _, err := g.streamCall(ctx, s, j, o, "/ai/stream/stop", s.id, ledger.Amount{}, body)
	return resp, out, err
}

// stopLeft asks o, an orchestrator the stream left while it may still run
// it there, to stop it; best effort, bounded by StreamLeftStopTimeout.
// Nothing is booked: the books closed the hold there when the stream left
// (what o charges after that is its claim, found by reconciliation).
func (g *Gateway) stopLeft(ctx context.Context, s *gwStream, o *offer) {
	ctx, cancel := context.WithTimeout(ctx, streamLeftStopTimeout)
	defer cancel()
	resp, _, err := g.stopAt(ctx, s, o, []byte("stream moved"))
	if err != nil {
		s.log.Info("could not stop the stream at the orchestrator it left", "orchestrator", o.url, "err", err)
		return
	}
	s.log.Info("stopped the stream at the orchestrator it left", "orchestrator", o.url, "status", resp.StatusCode)
}

// streamLeftStopTimeout bounds stopLeft.
const streamLeftStopTimeout = 10 * time.Second

// orchURL is the URL of the orchestrator running the stream ("" for none).
func (s *gwStream) orchURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orch == nil {
		return ""
	}
	return s.orch.url
}

// errStreamGone: the orchestrator no longer runs the stream (it stopped
// it, e.g. for want of money).
var errStreamGone = errors.New("the orchestrator does not run the stream")

// streamBalance is what a token says the stream has: a byoc orchestrator's
// job_balance (the stream's hold less what it owes), else go-livepeer's
// `balance` (its balance for the sender and capability).
func streamBalance(tok *wire.JobToken) ledger.Amount {
	if tok.JobBalance != "" {
		if a, err := ledger.ParseAmount(tok.JobBalance); err == nil {
			return a
		}
		if b, ok := new(big.Int).SetString(tok.JobBalance, 10); ok {
			return ledger.AmountFromBig(b)
		}
	}
	return ledger.Wei(tok.Balance)
}

// Streams lists the gateway's streams (GET /admin/streams): running ones
// and those that failed or were lost in the last 10 minutes.
func (g *Gateway) Streams() []StreamStatus {
	var out []StreamStatus
	now := g.cfg.Ledger.Now()
	for _, s := range g.streams.list() {
		out = append(out, s.status(now))
	}
	return out
}

// status is the stream as Streams lists it, at now on the books' clock.
func (s *gwStream) status(now time.Time) StreamStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StreamStatus{ID: s.id, Capability: s.req.Capability, State: s.state, Paid: s.paid, Hold: s.hold}
	if s.orch != nil {
		st.Orchestrator = s.orch.url
		if s.book != nil && s.book.open {
			o := s.book.owed(s.orch.price, now)
			st.Owed = &o
		}
	}
	if n := len(s.events); n > 0 {
		e := s.events[n-1]
		st.LastEvent = &e
	}
	if s.lastErr != nil {
		e := *s.lastErr
		st.LastError = &e
	}
	return st
}

// StreamStatus is a stream as the gateway's admin API lists it.
type StreamStatus struct {
	ID           string        `json:"id"`
	Capability   string        `json:"capability"`
	State        string        `json:"state"`
	Orchestrator string        `json:"orchestrator,omitempty"`
	Paid         ledger.Amount `json:"paid"` // what its payments were worth
	// Hold is its latest session's hold in the books (zero before one
	// opened); Owed what the books would charge it if it ended now, while
	// that hold is open (StreamBook.owed: the price of the whole seconds
	// since its start).
	Hold      ledger.Ref     `json:"hold,omitzero"`
	Owed      *ledger.Amount `json:"owed,omitempty"`
	LastEvent *StreamEvent   `json:"last_event,omitempty"`
	LastError *StreamEvent   `json:"last_error,omitempty"`
}

// stoppedKeep is how many streams their clients stopped the gateway
// remembers for the console (in memory).
const stoppedKeep = 50

// stoppedStreams are the latest streams their clients stopped, newest
// last.
type stoppedStreams struct {
	mu sync.Mutex
	l  []StreamStatus
}

func (t *stoppedStreams) add(st StreamStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.l = append(t.l, st)
	if len(t.l) > stoppedKeep {
		t.l = append(t.l[:0:0], t.l[len(t.l)-stoppedKeep:]...)
	}
}

// StoppedStreams lists the latest streams their clients stopped, newest
// first, as they were when they stopped.
func (g *Gateway) StoppedStreams() []StreamStatus {
	g.stopped.mu.Lock()
	defer g.stopped.mu.Unlock()
	out := make([]StreamStatus, 0, len(g.stopped.l))
	for i := len(g.stopped.l) - 1; i >= 0; i-- {
		out = append(out, g.stopped.l[i])
	}
	return out
}

// StreamState waits until the stream's start has an outcome (or ctx ends)
// and returns its state: running, failed or stopped; "" for an unknown
// stream.
func (g *Gateway) StreamState(ctx context.Context, id string) string {
	s := g.streams.get(id)
	if s == nil {
		return ""
	}
	select {
	case <-s.started:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}
