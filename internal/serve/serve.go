// Package serve runs a node's HTTP servers and stops them together.
package serve

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
)

// Group is a set of running http.Servers. The zero value is ready.
type Group struct {
	mu      sync.Mutex // guards servers
	servers []*http.Server
	wg      sync.WaitGroup
}

// Go runs srv with run (srv.Serve or srv.ServeTLS on its listener) until
// Shutdown; an error other than http.ErrServerClosed is logged with name.
func (g *Group) Go(name string, srv *http.Server, run func() error) {
	g.mu.Lock()
	g.servers = append(g.servers, srv)
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error(name+" server", "err", err)
		}
	}()
}

// Shutdown stops every server, letting requests in flight finish until ctx
// ends, and waits for them.
func (g *Group) Shutdown(ctx context.Context) {
	g.mu.Lock()
	servers := g.servers
	g.mu.Unlock()
	for _, s := range servers {
		s.Shutdown(ctx)
	}
	g.wg.Wait()
}
