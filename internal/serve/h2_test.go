package serve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Over HTTP/2 (the orchestrator's TLS listener speaks it) a trickled body
// is bounded too.
func TestBodyTimeoutHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(Limits{BodyTimeout: 300 * time.Millisecond}.Handler(readAll))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 50 {
			<-tick.C
			if _, err := pw.Write([]byte("x")); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/job", pr)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "not received within") {
		t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, b)
	}
}
