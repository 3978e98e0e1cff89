package gateway_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/orchestrator"
)

// An orchestrator that only looks gone — the gateway cannot reach it for
// a top-up, yet it still runs the stream — is asked to stop the stream
// when the gateway moves it, so it does not go on charging its hold
// there for a stream that runs elsewhere. Here the gateway reaches each
// orchestrator's token route through a proxy the test can cut; the stop
// goes to the orchestrator's service address, which stays up.
func TestStreamMovedIsStoppedWhereItLooksGone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type orch struct {
		node   *orchestrator.Node
		worker *e2eStreamWorker
		proxy  string
		cut    *atomic.Bool
	}
	var orchs []orch
	for range 2 {
		o := startOrch(t, func(c *orchestrator.NodeConfig) {
			c.Orchestrator.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
		})
		w := liveWorker(t, o, 4)
		target, _ := url.Parse(o.URL)
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		cut := new(atomic.Bool)
		px := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if cut.Load() {
				panic(http.ErrAbortHandler) // the connection breaks: unreachable
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(px.Close)
		orchs = append(orchs, orch{node: o, worker: w, proxy: px.URL, cut: cut})
	}
	gw := startGateway(t, testnet.KeyA, []string{orchs[0].proxy, orchs[1].proxy}, func(c *gateway.NodeConfig) {
		c.Gateway.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	})
	startLive(t, ctx, gw, "looks-gone")
	status := func() gateway.StreamStatus { return streamStatus(gw, "looks-gone") }
	left, other := orchs[0], orchs[1]
	if status().Orchestrator == other.proxy {
		left, other = other, left
	}
	if status().Orchestrator != left.proxy {
		t.Fatalf("the stream runs at %q, not at one of ours", status().Orchestrator)
	}
	if n := left.worker.count("/stream/start", "looks-gone"); n != 1 {
		t.Fatalf("the first orchestrator's worker got %d starts", n)
	}

	left.cut.Store(true)
	gw.PayStreams(ctx)
	testnet.Eventually(t, "the stream to move to the other orchestrator", func() bool {
		s := status()
		return s.State == "running" && s.Orchestrator == other.proxy
	})
	testnet.Eventually(t, "the orchestrator it left to stop it", func() bool {
		return left.worker.count("/stream/stop", "looks-gone") == 1
	})
	if n := other.worker.count("/stream/stop", "looks-gone"); n != 0 {
		t.Errorf("the orchestrator it moved to got %d stops", n)
	}
	testnet.Eventually(t, "the hold at the orchestrator it left to close", func() bool {
		return statement(t, left.node, gw.Address(), "looks-gone").Account.State != "open"
	})
}
