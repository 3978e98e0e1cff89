package serve

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// Defaults of Limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxUploads        = 256
)

// Limits bound what slow or stuck clients can hold of a server. Zero
// fields take the defaults. There is no write timeout: job answers and
// event streams last as long as the job.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, from when the handler
	// starts: a client that has not sent all of it by then gets 408 and
	// the connection is closed. Once the body is read to its end net/http
	// lifts the deadline, so a long answer is not cut.
	BodyTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection waits for its
	// next request.
	IdleTimeout time.Duration
	// MaxUploads bounds the requests whose bodies are being read at once;
	// one more gets 503 at once, before its body is read.
	MaxUploads int
	// Streaming are path prefixes whose request bodies are streams that
	// last as long as their channel (trickle segments, published ahead of
	// their data) and are bounded by their own handler: they take no upload
	// slot and have no body deadline.
	Streaming []string
}

func (l Limits) withDefaults() Limits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxUploads <= 0 {
		l.MaxUploads = DefaultMaxUploads
	}
	return l
}

// Server returns an http.Server serving h within the limits.
func (l Limits) Server(h http.Handler, errorLog *log.Logger) *http.Server {
	l = l.withDefaults()
	return &http.Server{Handler: l.Handler(h), ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout: l.IdleTimeout, ErrorLog: errorLog}
}

// Handler bounds the reading of request bodies for h: at most MaxUploads at
// once (503 beyond), each within BodyTimeout (408 after). A request whose
// path is not in clean form (empty, "." or ".." elements) gets 400 before
// h sees it: no route of ours has one, and a redirect to the cleaned path
// (what http.ServeMux answers) would send a job's body to a route the
// client did not name.
func (l Limits) Handler(h http.Handler) http.Handler {
	l = l.withDefaults()
	slots := make(chan struct{}, l.MaxUploads)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !clean(r.URL.Path) {
			w.Header().Set("Connection", "close") // the body is not read
			http.Error(w, fmt.Sprintf("Malformed path %q: a path may not have empty, \".\" or \"..\" elements", r.URL.Path),
				http.StatusBadRequest)
			return
		}
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || l.streaming(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			w.Header().Set("Connection", "close") // the body is not read
			http.Error(w, fmt.Sprintf("Too many request bodies being uploaded at once (%d); retry later", l.MaxUploads),
				http.StatusServiceUnavailable)
			return
		}
		u := &upload{w: w, body: r.Body, timeout: l.BodyTimeout, release: func() { <-slots }}
		defer u.done()
		// A ResponseWriter that cannot set a deadline still counts the upload.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(l.BodyTimeout))
		r.Body = u
		h.ServeHTTP(&uploadWriter{ResponseWriter: w, u: u}, r)
	})
}

// clean reports whether p is absolute and in the form path.Clean gives it
// (a trailing slash kept): the paths http.ServeMux routes without a
// redirect.
func clean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c == p
}

// WithStreaming is l with prefix added to its Streaming paths (l's own
// slice is left as it was).
func (l Limits) WithStreaming(prefix string) Limits {
	l.Streaming = append(l.Streaming[:len(l.Streaming):len(l.Streaming)], prefix)
	return l
}

// streaming reports whether path is under one of the Streaming prefixes.
func (l Limits) streaming(path string) bool {
	for _, p := range l.Streaming {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// upload is a request body being read: it holds an upload slot until it
// is read to its end or the handler returns.
type upload struct {
	w       http.ResponseWriter
	body    io.ReadCloser
	timeout time.Duration
	release func()

	mu       sync.Mutex
	finished bool // slot released, deadline lifted
	timedOut bool // 408 sent; the handler's answer is dropped
}

// errBodyTimeout is what the handler reads after the body deadline.
var errBodyTimeout = errors.New("request body not received in time")

func (u *upload) Read(p []byte) (int, error) {
	n, err := u.body.Read(p)
	switch {
	case err == io.EOF:
		u.finish(false)
	case err != nil && isTimeout(err):
		u.finish(true)
		return n, fmt.Errorf("%w (%s): %w", errBodyTimeout, u.timeout, err)
	}
	return n, err
}

func (u *upload) Close() error { return u.body.Close() }

// finish releases the slot once; timedOut answers 408 first (the rest of
// the body is never read, so the connection ends).
func (u *upload) finish(timedOut bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.finished {
		return
	}
	u.finished = true
	if timedOut {
		u.timedOut = true
		u.w.Header().Set("Connection", "close")
		http.Error(u.w, fmt.Sprintf("Request body not received within %s", u.timeout), http.StatusRequestTimeout)
	}
	u.release()
}

// done ends the upload when the handler returns without reading it all.
func (u *upload) done() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.finished {
		u.finished = true
		u.release()
	}
}

func (u *upload) dropped() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.timedOut
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// uploadWriter drops the handler's answer after a body timeout was
// answered with 408.
type uploadWriter struct {
	http.ResponseWriter
	u *upload
}

func (w *uploadWriter) WriteHeader(code int) {
	if !w.u.dropped() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *uploadWriter) Write(p []byte) (int, error) {
	if w.u.dropped() {
		return 0, errBodyTimeout
	}
	return w.ResponseWriter.Write(p)
}

func (w *uploadWriter) Flush() {
	if !w.u.dropped() {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *uploadWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Listen listens on addr (host:port) for TCP, with an error that names the
// address and the cause ("listen on 127.0.0.1:8935: address already in use").
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var oe *net.OpError
		cause := err
		if errors.As(err, &oe) {
			cause = oe.Err
			var se *os.SyscallError
			if errors.As(cause, &se) {
				cause = se.Err
			}
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, cause)
	}
	return ln, nil
}
