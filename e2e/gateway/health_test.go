package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/worker"
)

// health GETs path on an admin listener: the status and the JSON body.
func health(t *testing.T, adminURL, path string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(adminURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, body
}

// deadURL is an orchestrator URL nothing listens at.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "https://" + ln.Addr().String()
	ln.Close()
	return u
}

// /readyz: 503 naming the orchestrators while none answers; 200 once one
// answers a probe or answered a job within gateway.ReadyWindow, and 503
// again after the window with it gone. /healthz is 200 throughout.
func TestGatewayReadiness(t *testing.T) {
	dead := deadURL(t)
	gw := startGateway(t, "", []string{dead}, nil)
	code, body := health(t, gw.AdminURL, "/readyz")
	if code != http.StatusServiceUnavailable || body["status"] != "not ready" ||
		!strings.HasPrefix(body["reason"], "no orchestrator answers: "+dead+": ") {
		t.Errorf("readyz with no orchestrator up: %d %v", code, body)
	}
	if code, body := health(t, gw.AdminURL, "/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, body)
	}

	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Reverse, "reverse", 0, 4)
	var skew atomic.Int64
	gw = startGateway(t, "", []string{dead, o.URL}, func(cfg *gateway.NodeConfig) {
		cfg.Gateway.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	if code, body := health(t, gw.AdminURL, "/readyz"); code != http.StatusOK || body["status"] != "ready" {
		t.Errorf("readyz with one orchestrator up (probed): %d %v", code, body)
	}
	mustOK(t, submit(t, gw, jobSpec{capability: "reverse", body: `{"text":"hi"}`}))
	closeOrch(t, o, gw)
	if code, body := health(t, gw.AdminURL, "/readyz"); code != http.StatusOK {
		t.Errorf("readyz with an orchestrator that answered a job just now: %d %v", code, body)
	}
	skew.Store(int64(gateway.ReadyWindow + time.Second))
	if code, body := health(t, gw.AdminURL, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body["reason"], o.URL+": ") {
		t.Errorf("readyz after the window, the orchestrator gone: %d %v", code, body)
	}
}

// /readyz is 503 when the books' ledger does not answer.
func TestGatewayReadinessLedger(t *testing.T) {
	o := startOrch(t, nil)
	n, err := gateway.StartNode(context.Background(), gateway.NodeConfig{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(),
		Discovery: gateway.DiscoveryConfig{Static: []string{o.URL}},
		Gateway:   gateway.Config{Logger: testLogger(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if code, body := health(t, n.AdminURL, "/readyz"); code != http.StatusOK {
		t.Errorf("readyz: %d %v", code, body)
	}
	n.Store.Close()
	if code, body := health(t, n.AdminURL, "/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body["reason"], "ledger: ") {
		t.Errorf("readyz with the books' ledger closed: %d %v", code, body)
	}
	n.CloseIdleConnections()
}

// On a fresh gateway the admin lists are [], never null.
func TestGatewayAdminEmptyListsAreArrays(t *testing.T) {
	gw := startGateway(t, "", []string{deadURL(t)}, nil)
	for _, path := range []string{"/admin/pools", "/admin/orchestrators"} {
		resp, err := http.Get(gw.AdminURL + path)
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&raw)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(raw) != "[]" {
			t.Errorf("%s: %d %s %v; want 200 []", path, resp.StatusCode, raw, err)
		}
	}
}

// The books' comparison results are series from the start, at zero.
func TestGatewayMetricsPresentAtZero(t *testing.T) {
	gw := startGateway(t, "", []string{deadURL(t)}, nil)
	resp, err := http.Get(gw.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`byoc_gateway_books_comparisons_total{result="agree"} 0`,
		`byoc_gateway_books_comparisons_total{result="orchestrator_lower"} 0`,
		`byoc_gateway_books_discrepancy_wei_total{direction="orchestrator_higher"} 0`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("a fresh gateway's metrics lack %q", want)
		}
	}
}
