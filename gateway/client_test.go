package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// The orchestrator client speaks HTTP/1.1 even to a server offering
// HTTP/2, and keeps the connection alive between jobs.
func TestOrchestratorClientHTTP1KeepAlive(t *testing.T) {
	var conns, h2 atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 {
			h2.Add(1)
		}
		io.WriteString(w, "ok")
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	c := NewOrchestratorClient(nil)
	defer c.CloseIdleConnections()
	for range 3 {
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Proto != "HTTP/1.1" {
			t.Errorf("proto %s", resp.Proto)
		}
	}
	if h2.Load() != 0 || conns.Load() != 1 {
		t.Errorf("%d HTTP/2 requests, %d connections for 3 sequential jobs", h2.Load(), conns.Load())
	}
}
