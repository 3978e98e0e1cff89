package worker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"byoc/wire"
)

// DefaultAddr is where Start listens when given no address: loopback, on a
// port the system picks.
const DefaultAddr = "127.0.0.1:0"

// Server serves a Handler over plain HTTP/1.1 (what an orchestrator speaks
// to workers, docs/protocol.md §1) on its own listener.
type Server struct {
	handler  *Handler
	listener net.Listener
	srv      *http.Server
	url      string
	// cancel ends every request's context (Close and Crash).
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed

	// conns are the open connections, kept so Crash can reset them.
	conns struct {
		sync.Mutex
		set map[net.Conn]struct{}
	}
}

// Start listens on addr (DefaultAddr when "") and serves a Handler built
// from cfg until Shutdown, Close or Crash.
func Start(addr string, cfg Config) (*Server, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Serve(ln, cfg), nil
}

// Serve serves a Handler built from cfg on ln, which the Server then owns.
func Serve(ln net.Listener, cfg Config) *Server {
	baseCtx, cancel := context.WithCancel(context.Background())
	s := &Server{
		handler:  NewHandler(cfg),
		listener: ln,
		url:      "http://" + ln.Addr().String(),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	s.conns.set = map[net.Conn]struct{}{}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ConnState:         s.trackConn,
		ErrorLog:          slog.NewLogLogger(s.handler.log.Handler(), slog.LevelWarn),
	}
	go func() {
		err := s.srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
		close(s.done)
	}()
	return s
}

// URL is the server's base URL, e.g. http://127.0.0.1:40123.
func (s *Server) URL() string { return s.url }

// CapabilityURL is the URL to register for a capability name:
// URL() + "/" + name.
func (s *Server) CapabilityURL(name string) string { return s.url + "/" + name }

// Capability returns a registration for the named capability served here:
// its URL, its description, the Config's token, capacity 4 and a price of 0
// wei (scaling 1). Adjust the fields before registering as needed.
func (s *Server) Capability(name string) wire.ExternalCapability {
	return wire.ExternalCapability{
		Name:         name,
		Description:  Describe(name),
		URL:          s.CapabilityURL(name),
		Capacity:     4,
		PriceScaling: 1,
		Currency:     "wei",
		Token:        s.handler.token,
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Handler is the server's handler, for Stats and WaitFor.
func (s *Server) Handler() *Handler { return s.handler }

// Done is closed when the server has stopped accepting connections.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why the server stopped on its own (a listener failure); nil while
// it runs and after Shutdown, Close or Crash.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Shutdown stops accepting connections and waits for the requests in flight
// to finish, or for ctx to end; then it cancels and closes whatever is left
// and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.handler.StopStreams()
	if err != nil {
		s.Close()
	}
	<-s.done
	return err
}

// Close stops the server at once: it closes the listener and every
// connection and cancels the requests in flight.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.handler.StopStreams()
	s.cancel() // after the connections are gone, so no handler can still answer
	<-s.done
	return err
}

// Crash stops the server the way a killed process would: the listener
// closes, so new connections are refused, and every open connection is
// reset (TCP RST, no response, no graceful close).
func (s *Server) Crash() {
	s.conns.Lock()
	for c := range s.conns.set {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // close sends RST instead of FIN
		}
	}
	s.conns.Unlock()
	s.handler.crashStreams()
	s.Close()
}

func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.conns.Lock()
	defer s.conns.Unlock()
	switch state {
	case http.StateNew:
		s.conns.set[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns.set, c)
	}
}
