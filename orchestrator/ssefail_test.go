package orchestrator_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
)

// A worker whose connection breaks mid-stream: the client gets the events
// sent so far, then the balance line and an error event (not a stream
// that looks finished); the worker is removed, as for a plain job; the
// metric says worker_failed; the job is charged the time it ran and its
// hold closed.
func TestSSEWorkerBreaksMidStream(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		n, _, c := clockNode(t, tweak)
		r := c.Job(testnet.JobSpec{Capability: "sse", ID: "broken", Body: `{"advance_ms":2000,"break":true}`, Payment: c.Pay(c.Token("sse", ""), 6)})
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Body, "data: {\"i\":1}\n\ndata: {\"i\":2}\n\n") {
			t.Fatalf("stream: %d\n%s", r.Status, r.Body)
		}
		const end = "data: {\"balance\": 4000.000}\n\n\nevent: error\ndata: {\"error\":\"worker stream broke: "
		if i := strings.Index(r.Body, end); i < 0 || !strings.HasSuffix(r.Body, "\"}\n\n") || strings.Contains(r.Body, "[DONE]") {
			t.Errorf("a broken stream ends with the balance and an error event, no [DONE]:\n%s", r.Body)
		}
		if s := testnet.Statement(t, n, c.Addr(), "broken"); testnet.Amount(s.Charged) != 2000 || testnet.Amount(s.Released) != 4000 || s.Account.State != ledger.StateClosed {
			t.Errorf("broken stream: charged %s released %s state %s; want 2000 charged, the rest released", s.Charged, s.Released, s.Account.State)
		}
		if status, _ := c.TokenRaw("sse", ""); status != http.StatusNotFound {
			t.Errorf("token after the worker broke: %d, want 404 (removed)", status)
		}
		m := metrics(t, n)
		if !strings.Contains(m, jobOutcome("sse", "worker_failed")) || strings.Contains(m, `outcome="sse"`) {
			t.Errorf("jobs metric: want one worker_failed and no sse:\n%s", grepLines(m, "byoc_orchestrator_jobs_total"))
		}
		testnet.Verify(t, n)
	})
}

// A gateway that hangs up mid-stream is counted as client_gone, not as a
// stream that ended; the job is charged the time it ran and its hold
// closed at once.
func TestSSEClientGone(t *testing.T) {
	onEachStore(t, func(t *testing.T, tweak func(*orchestrator.NodeConfig)) {
		n, cw, c := clockNode(t, tweak)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan testnet.JobResult)
		go func() {
			done <- c.Job(testnet.JobSpec{Ctx: ctx, Capability: "sse", ID: "left", Body: `{"advance_ms":2000}`, Payment: c.Pay(c.Token("sse", ""), 6)})
		}()
		<-cw.got // the worker ran 2 s and streamed its events
		cancel()
		<-done
		testnet.Eventually(t, "the stream to be counted", func() bool { return strings.Contains(metrics(t, n), `byoc_orchestrator_jobs_total{capability="sse"`) })
		m := metrics(t, n)
		if !strings.Contains(m, jobOutcome("sse", "client_gone")) || strings.Contains(m, `outcome="sse"`) {
			t.Errorf("jobs metric: want one client_gone and no sse:\n%s", grepLines(m, "byoc_orchestrator_jobs_total"))
		}
		if s := testnet.Statement(t, n, c.Addr(), "left"); testnet.Amount(s.Charged) != 2000 || testnet.Amount(s.Released) != 4000 || s.Account.State != ledger.StateClosed {
			t.Errorf("stream left by its gateway: charged %s released %s state %s; want 2000 charged, the rest released", s.Charged, s.Released, s.Account.State)
		}
		testnet.Verify(t, n)
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
