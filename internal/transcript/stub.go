package transcript

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// maxStubBody bounds the request body a StubWorker reads and keeps.
const maxStubBody = 16 << 20

// Received is a request a StubWorker received.
type Received struct {
	Method string
	// Path is the path with query, as received.
	Path   string
	Header http.Header
	Body   []byte
	// Recorded is the recorded exchange the request was matched with, nil
	// if none was left for its method and path.
	Recorded *Exchange
}

// StubWorker is a worker that replays recorded orchestrator->worker
// responses. Each incoming request is matched, by method and path with
// query, with the first recorded exchange of that method and path it has
// not used yet, and answered with that exchange's status, headers (except
// Content-Length and Date) and body. A request with no recording left gets
// 501 and is reported by Compare. A recorded exchange without a status
// (transport error) is answered by closing the connection.
type StubWorker struct {
	// URL is the worker's base URL, http://127.0.0.1:<port>; register
	// capabilities with it.
	URL string

	srv    *httptest.Server
	timing bool

	mu       sync.Mutex
	script   []Exchange
	used     []bool
	received []Received
}

// StubOption configures a StubWorker.
type StubOption func(*StubWorker)

// WithTiming makes the stub send streamed (chunked) responses with the
// recorded delays between chunks instead of all at once.
func WithTiming() StubOption { return func(w *StubWorker) { w.timing = true } }

// NewStubWorker starts a stub worker on 127.0.0.1 that answers with the
// scenario's orchestrator->worker exchanges. It is closed when the test
// ends.
func NewStubWorker(t testing.TB, s Scenario, opts ...StubOption) *StubWorker {
	t.Helper()
	return NewStubWorkerFor(t, s.Hop(HopOrchestratorWorker), opts...)
}

// NewStubWorkerFor starts a stub worker that answers with the given
// recorded exchanges (e.g. the orchestrator->worker exchanges of several
// scenarios for one worker, selected by Exchange.Host).
func NewStubWorkerFor(t testing.TB, exchanges []Exchange, opts ...StubOption) *StubWorker {
	t.Helper()
	w := &StubWorker{script: append([]Exchange(nil), exchanges...)}
	w.used = make([]bool, len(w.script))
	for _, o := range opts {
		o(w)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("transcript: stub worker: %v", err)
	}
	w.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(w.serve)}}
	w.srv.Start()
	w.URL = w.srv.URL
	t.Cleanup(w.Close)
	return w
}

// Close stops the stub. It is safe to call more than once.
func (w *StubWorker) Close() { w.srv.Close() }

// Received returns the requests received so far, in order.
func (w *StubWorker) Received() []Received {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Received(nil), w.received...)
}

// Unused returns the recorded exchanges no request was matched with yet.
func (w *StubWorker) Unused() []Exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Exchange
	for i, u := range w.used {
		if !u {
			out = append(out, w.script[i])
		}
	}
	return out
}

// Compare compares every received request with the recorded request it
// was matched with (CompareRequestParts), and reports requests that matched
// nothing (DiffUnexpected) and recorded requests that never came
// (DiffMissing).
func (w *StubWorker) Compare() Diffs {
	var ds Diffs
	for _, r := range w.Received() {
		if r.Recorded == nil {
			ds = append(ds, Diff{Kind: DiffUnexpected, Where: "request", Want: "no request", Got: r.Method + " " + r.Path})
			continue
		}
		ds = append(ds, CompareRequestParts(*r.Recorded, r.Method, r.Path, r.Header, r.Body, nil)...)
	}
	for _, e := range w.Unused() {
		ds = append(ds, Diff{Kind: DiffMissing, Where: "request", Want: e.Method + " " + e.Path, Got: "no request", Seq: e.Seq})
	}
	return ds
}

// match records r and returns the recorded exchange it matches, if any.
func (w *StubWorker) match(r *http.Request, body []byte) *Exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := Received{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body}
	for i := range w.script {
		if !w.used[i] && w.script[i].Method == rec.Method && w.script[i].Path == rec.Path {
			w.used[i] = true
			e := w.script[i]
			rec.Recorded = &e
			break
		}
	}
	w.received = append(w.received, rec)
	return rec.Recorded
}

func (w *StubWorker) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxStubBody))
	e := w.match(r, body)
	if e == nil {
		http.Error(rw, "transcript stub worker: no recorded exchange left for "+r.Method+" "+r.URL.RequestURI(), http.StatusNotImplemented)
		return
	}
	if e.Status == nil {
		// No response was recorded: drop the connection.
		panic(http.ErrAbortHandler)
	}
	h := rw.Header()
	for k, vs := range e.ResponseHeaders {
		ck := http.CanonicalHeaderKey(k)
		if ck == "Content-Length" || ck == "Date" {
			continue
		}
		h[ck] = append([]string(nil), vs...)
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // the recording has none: do not sniff one
	}
	rw.WriteHeader(*e.Status)
	if len(e.ResponseChunks) == 0 {
		_, _ = io.WriteString(rw, e.ResponseBody)
		return
	}
	flusher, _ := rw.(http.Flusher)
	start := time.Now()
	for _, c := range e.ResponseChunks {
		if w.timing {
			if d := time.Until(start.Add(time.Duration(c.Ms) * time.Millisecond)); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
		}
		if _, err := io.WriteString(rw, c.Data); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}
