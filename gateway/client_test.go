package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"byoc/ledger/ledgertest"
)

// A gateway with the default clients sends jobs over HTTP/1.1, one
// connection kept alive between sequential jobs, and everything else
// (tokens) over HTTP/2, to a server that offers both.
func TestDefaultClientsJobsHTTP1TokensHTTP2(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	g := testGateway(t, false)
	defer g.CloseIdleConnections()
	get := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for range 3 {
		if p := get(g.cfg.JobClient); p != "HTTP/1.1" {
			t.Errorf("a job went over %s, want HTTP/1.1", p)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential jobs, want 1 kept alive", n)
	}
	if p := get(g.cfg.Client); p != "HTTP/2.0" {
		t.Errorf("a token request went over %s, want HTTP/2.0", p)
	}
}

// A caller's own Client carries the jobs too unless JobClient is given.
func TestCustomClientCarriesJobs(t *testing.T) {
	c := &http.Client{}
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	d, _ := NewDiscovery(DiscoveryConfig{Static: []string{"https://127.0.0.1:1"}})
	g, err := New(Config{Discovery: d, Ledger: env.Ledger, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if g.cfg.JobClient != c {
		t.Error("JobClient is not the caller's Client")
	}
}
