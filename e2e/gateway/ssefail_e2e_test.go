package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"byoc/internal/testnet"
	"byoc/wire"
	"byoc/worker"
)

// A worker whose connection breaks mid-stream: the orchestrator's error
// event reaches the gateway's client after the events sent so far, and
// the gateway books the stream's charge exactly (from the balance line
// before the error event).
func TestSSEWorkerBreaksReachesClient(t *testing.T) {
	o := startOrch(t, nil)
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		io.WriteString(w, "data: {\"i\":1}\n\n")
		rc.Flush()
		conn, _, err := rc.Hijack()
		if err == nil {
			conn.Close() // mid-stream: no end of the chunked body
		}
	}))
	t.Cleanup(ws.Close)
	c := wire.ExternalCapability{Name: "sse", URL: ws.URL, Capacity: 4, PricePerUnit: 1000, PriceScaling: 1, Currency: "wei"}
	if err := worker.Register(context.Background(), o.URL, testnet.Secret, c, worker.InsecureSkipVerify()); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, keyA, []string{o.URL}, nil)
	r := submit(t, gw, jobSpec{capability: "sse", body: "{}"})
	if r.status != http.StatusOK || !strings.HasPrefix(r.body, "data: {\"i\":1}\n\n") ||
		!strings.Contains(r.body, "event: error\ndata: {\"error\":\"worker stream broke: ") {
		t.Fatalf("the client's stream: %d\n%s", r.status, r.body)
	}
	if s := agree(t, gw, o, "sse"); s.charged != 1000 || s.openJobs != 0 {
		t.Errorf("books after a broken stream: %+v, want 1000 charged", s)
	}
}
