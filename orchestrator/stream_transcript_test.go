package orchestrator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"byoc/internal/testnet"
	"byoc/internal/transcript"
	"byoc/orchestrator"
	"byoc/wire"
)

// go-livepeer's recorded stream exchanges (offchain: direct_stream_start,
// _payment, _update, _stop), replayed at our orchestrator with a stub
// worker answering as the recorded one did: the same statuses, header
// names, header values (after the ports) and bodies, and the worker gets
// the same requests (method, path, header names, body).
func TestStreamTranscriptReplay(t *testing.T) {
	file := transcript.Offchain()
	var work []transcript.Exchange
	var calls []transcript.Exchange
	for _, name := range []string{"direct_stream_start", "direct_stream_payment", "direct_stream_update", "direct_stream_stop"} {
		s, ok := file.Scenario(name)
		if !ok {
			t.Fatalf("no scenario %s", name)
		}
		work = append(work, s.Hop(transcript.HopOrchestratorWorker)...)
		calls = append(calls, s.Hop(transcript.HopGatewayOrchestrator)...)
	}
	stub := transcript.NewStubWorkerFor(t, work)
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Orchestrator.Channels = &memChannels{} })
	first, err := wire.DecodeJobRequestHeader(calls[0].RequestHeaders.Get(wire.HeaderJobRequest))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(wire.ExternalCapability{Name: first.Capability, URL: stub.URL, Capacity: 2, Currency: "wei", Token: "worker-token-abc"})
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/capability/register", bytes.NewReader(body))
	req.Header.Set("Authorization", testnet.Secret)
	if resp, err := testnet.Insecure.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("register %s: %v %v", first.Capability, resp, err)
	}
	for _, e := range calls {
		req, err := e.Request(n.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := testnet.Insecure.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Livepeer-Balance: go-livepeer reports 0 offchain, so do we (a
		// free capability).
		if d := transcript.CompareResponse(t, e, resp, b); len(d) > 0 {
			t.Errorf("%s %s: %v", e.Method, e.Path, d)
		}
	}
	if d := stub.Compare(); len(d) > 0 {
		t.Errorf("what the worker got: %v", d)
	}
	if got := len(stub.Received()); got != len(work) {
		t.Errorf("the worker got %d calls, want the recorded %d", got, len(work))
	}
}
