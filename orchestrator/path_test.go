package orchestrator_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"byoc/internal/testnet"
	"byoc/internal/workerstub"
	"byoc/wire"
)

// recorder is a worker that records the request line of every job it gets,
// exactly as it came on the wire.
type recorder struct {
	mu   sync.Mutex
	uris []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	rec.mu.Lock()
	rec.uris = append(rec.uris, r.RequestURI)
	rec.mu.Unlock()
	io.WriteString(w, "ok")
}

func (rec *recorder) take() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	u := rec.uris
	rec.uris = nil
	return u
}

// The job path stays under the worker's registered URL: an encoded `/`,
// `?` or `#` reaches the worker still encoded, dot segments (however
// spelled) are refused with 400 before any worker sees them, and the query
// is dropped as go-livepeer drops it.
func TestJobPathStaysUnderWorkerURL(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	rec := &recorder{}
	ws := httptest.NewServer(rec)
	t.Cleanup(ws.Close)
	c := wire.ExternalCapability{Name: "app", URL: ws.URL + "/app/spy", Capacity: 4, PriceScaling: 1, Currency: "wei"}
	if err := workerstub.Register(context.Background(), n.URL, testnet.Secret, c); err != nil {
		t.Fatal(err)
	}
	cl := testnet.NewClient(t, n.URL, "") // a free capability: no payment needed
	for _, tc := range []struct {
		path string
		want string // what the worker sees; "" for a 400 that reaches no worker
	}{
		{"", "/app/spy"},
		{"v1/reverse", "/app/spy/v1/reverse"},
		{"a/b/c", "/app/spy/a/b/c"},
		{"a%2Fb", "/app/spy/a%2Fb"},
		{"x%3Fq=1", "/app/spy/x%3Fq=1"},
		{"x%23frag", "/app/spy/x%23frag"},
		{"x?q=1", "/app/spy/x"},
		{"v1/reverse?x=1&y=%2F", "/app/spy/v1/reverse"},
		{"a%20b", "/app/spy/a%20b"},
		{"a%2F..%2F..%2Fadmin", ""},
		{"..%2Fadmin", ""},
		{"%2e%2e/x", ""},
		{"%2E%2E/x", ""},
		{"x/%2e%2e/%2e%2e/admin", ""},
		{"x/%2e/y", ""},
		{".%2e/x", ""},
		{"x/.%2E", ""},
		{"a%2F.%2Fb", ""},
	} {
		r := cl.Job(testnet.JobSpec{Capability: "app", Path: tc.path, Body: "x"})
		got := rec.take()
		switch {
		case r.Err != nil:
			t.Errorf("%q: %v", tc.path, r.Err)
		case tc.want == "" && (r.Status != http.StatusBadRequest || len(got) != 0):
			t.Errorf("%q: %d %q, the worker saw %q; want 400 and nothing sent", tc.path, r.Status, r.Body, got)
		case tc.want != "" && (r.Status != http.StatusOK || len(got) != 1 || got[0] != tc.want):
			t.Errorf("%q: %d %q, the worker saw %q; want %q", tc.path, r.Status, r.Body, got, tc.want)
		}
	}
}
