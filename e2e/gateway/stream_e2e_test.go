package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
)

// e2eStreamWorker answers a stream's worker calls and counts them by path;
// with failStart it answers every /stream/start 500.
type e2eStreamWorker struct {
	mu        sync.Mutex
	calls     map[string]int
	failStart bool
}

func (sw *e2eStreamWorker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	sw.mu.Lock()
	if sw.calls == nil {
		sw.calls = map[string]int{}
	}
	sw.calls[r.URL.Path+" "+r.Header.Get(wire.HeaderStreamID)]++
	fail := sw.failStart
	sw.mu.Unlock()
	if fail && strings.HasSuffix(r.URL.Path, "/stream/start") {
		http.Error(w, "no GPU", http.StatusInternalServerError)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/stop") {
		io.WriteString(w, `{"stopped":true}`)
	}
}

func (sw *e2eStreamWorker) count(path, id string) int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.calls[path+" "+id]
}

// A byoc gateway runs a stream on a byoc orchestrator: the client gets its
// URLs at once; the start is paid and reaches the worker; the gateway's
// top-up round pays the stream's own hold when the orchestrator reports it
// below 120 s; a stream the orchestrator stopped for want of money makes
// the next top-up fail, retried, and the client is told in the status; a
// client stop reaches the worker and answers 200 with its body.
func TestStreamThroughGateway(t *testing.T) {
	clock := ledger.NewManualClock(time.Now())
	o := startOrch(t, func(c *orchestrator.NodeConfig) {
		c.Clock = clock
		c.Orchestrator.StreamGrace = time.Second
		c.Orchestrator.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	})
	sw := liveWorker(t, o, 4)
	gw := startGateway(t, testnet.KeyA, []string{o.URL}, func(c *gateway.NodeConfig) {
		c.Gateway.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
		c.Gateway.StreamHost = "https://gw.example"
		c.Clock = clock // the books' time: what the gateway estimates a stream ran
	})
	client := gwClient(t, context.Background(), gw)
	status, out := client(http.MethodPost, "/process/stream/start", `{"stream_name":"cam","params":"{\"prompt\":\"hi\"}"}`,
		&wire.JobRequest{Request: `{"run":"live"}`, Parameters: "{}", Capability: "live", TimeoutSeconds: 10})
	var urls wire.StreamURLs
	if status != http.StatusOK || json.Unmarshal([]byte(out), &urls) != nil || !strings.HasPrefix(urls.StreamID, "cam-") ||
		urls.StopURL != "https://gw.example/process/stream/"+urls.StreamID+"/stop" || urls.DataURL != "" {
		t.Fatalf("start: %d %s", status, out)
	}
	id := urls.StreamID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if st := gw.StreamState(ctx, id); st != "running" {
		_, s := client(http.MethodGet, "/process/stream/"+id+"/status", "", nil)
		t.Fatalf("stream %s: %s\n%s", id, st, s)
	}
	if sw.count("/stream/start", id) != 1 {
		t.Fatalf("the worker did not get the start")
	}
	hold := ledger.JobKey{Sender: gw.Address(), JobID: id}.Ref()
	held := testnet.Balance(t, o, hold)
	if held != 10000 {
		t.Errorf("the stream's hold at the orchestrator: %d, want 10 s at 1000 wei", held)
	}

	gwHold := ledger.JobKey{Sender: o.Address.Hex(), JobID: "~stream-" + id}.Ref()
	if st, err := gw.Ledger.Statement(ctx, gwHold, 0); err != nil || amount(t, st.Credited) != 10000 {
		t.Errorf("the gateway's books of the stream: %+v %v; want its start payment, 10000", st, err)
	}

	// A second stream, stopped by the client 3 s in: both books charge
	// what the orchestrator charged (Livepeer-Job-Charged) and release
	// the rest.
	status, out = client(http.MethodPost, "/process/stream/start", `{"stream_id":"short","params":"{}"}`,
		&wire.JobRequest{Request: `{}`, Parameters: "{}", Capability: "live", TimeoutSeconds: 10})
	if status != http.StatusOK || gw.StreamState(ctx, "short") != "running" {
		t.Fatalf("start short: %d %s", status, out)
	}
	clock.Advance(3 * time.Second)
	if status, out = client(http.MethodPost, "/process/stream/short/stop", "bye", nil); status != http.StatusOK || out != `{"stopped":true}` {
		t.Errorf("stop short: %d %q", status, out)
	}
	orchShort := statement(t, o, gw.Address(), "short")
	gwShort, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: o.Address.Hex(), JobID: "~stream-short"}.Ref(), 0)
	if err != nil || amount(t, orchShort.Charged) != 3000 || amount(t, gwShort.Charged) != 3000 || gwShort.Account.State != ledger.StateClosed {
		t.Errorf("short stopped at 3 s: orchestrator charged %s, gateway charged %s (%s, %v); want 3000 each, closed",
			orchShort.Charged, gwShort.Charged, gwShort.Account.State, err)
	}

	// 4 s in, it holds 6 s: below 120 s, so the round pays 70 s.
	clock.Advance(time.Second)
	if paid, failed := gw.PayStreams(ctx); paid != 1 || failed != 0 {
		t.Fatalf("top-up round: paid %d failed %d", paid, failed)
	}
	if got := testnet.Balance(t, o, hold); got < 6000+70000 {
		t.Errorf("hold after the top-up: %d, want at least 76000 (4000 charged, 70 s paid)", got)
	}

	// Run it dry at the orchestrator: the next top-up is refused
	// (retried), and the client is told.
	clock.Advance(100 * time.Second)
	o.SettleStreams(ctx) // dry
	clock.Advance(2 * time.Second)
	if st := o.SettleStreams(ctx); st.Stopped != 1 {
		t.Fatalf("the orchestrator did not stop the dry stream: %+v", st)
	}
	if err := o.WaitStreamStops(ctx); err != nil { // the worker is told after the batch
		t.Fatal(err)
	}
	if sw.count("/stream/stop", id) != 1 {
		t.Errorf("the worker was not told to stop")
	}
	// The gateway learns it from the stream's last event or, at the
	// latest, from the next top-up (404): either way, once the round is
	// over, the stream is lost and the client told.
	if paid, _ := gw.PayStreams(ctx); paid != 0 {
		t.Errorf("a top-up of a stopped stream was paid")
	}
	status, out = client(http.MethodGet, "/process/stream/"+id+"/status", "", nil)
	if status != http.StatusOK || !strings.Contains(out, `"stream_lost"`) || !strings.Contains(out, `"error_message"`) || !strings.Contains(out, `"state":"lost"`) {
		t.Errorf("status after the orchestrator stopped the stream: %d %s", status, out)
	}
	// Both books: 80000 in (10 s at the start, 70 s topped up), all of it
	// charged (the orchestrator charged what the hold held when it ran dry).
	orchSt := statement(t, o, gw.Address(), id)
	gwSt, err := gw.Ledger.Statement(ctx, gwHold, 0)
	if err != nil || amount(t, orchSt.Charged) != 80000 || amount(t, gwSt.Credited) != 80000 || amount(t, gwSt.Charged) != 80000 || gwSt.Account.State != ledger.StateClosed {
		t.Errorf("the dry stream: orchestrator charged %s; gateway credited %s charged %s (%s, %v); want 80000 each, closed",
			orchSt.Charged, gwSt.Credited, gwSt.Charged, gwSt.Account.State, err)
	}

	status, out = client(http.MethodPost, "/process/stream/"+id+"/stop", "", nil)
	if status != http.StatusOK {
		t.Errorf("stop: %d %q", status, out)
	}
	if status, _ = client(http.MethodGet, "/process/stream/"+id+"/status", "", nil); status != http.StatusNotFound {
		t.Errorf("status after stop: %d, want 404", status)
	}
	if status, _ = client(http.MethodPost, "/process/stream/nope/stop", "", nil); status != http.StatusNotFound {
		t.Errorf("stop of an unknown stream: %d, want 404", status)
	}
	if status, _ = client(http.MethodOptions, "/process/stream/x/start", "", nil); status != http.StatusNoContent {
		t.Errorf("OPTIONS: %d, want 204", status)
	}
	if st := statement(t, o, gw.Address(), id); st.Account.State != ledger.StateClosed {
		t.Errorf("the stream's hold: %s, want closed", st.Account.State)
	}
}
