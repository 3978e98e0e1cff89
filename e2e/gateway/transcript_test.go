package gateway_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/internal/transcript"
	"byoc/wire"
)

// stubOrch plays a go-livepeer orchestrator from a recording: each request
// is answered with the first unused recorded gateway->orchestrator
// exchange of the same method and path, the token's service_addr pointing
// back at the stub. It records what it received.
type stubOrch struct {
	URL   string
	mu    sync.Mutex
	queue []transcript.Exchange
	got   []stubReq
}

type stubReq struct {
	method, path string
	header       http.Header
	body         []byte
	recorded     *transcript.Exchange
}

func newStubOrch(t *testing.T, exchanges ...transcript.Exchange) *stubOrch {
	t.Helper()
	s := &stubOrch{queue: exchanges}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *stubOrch) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	var ex *transcript.Exchange
	for i, e := range s.queue {
		if e.Method == r.Method && strings.SplitN(e.Path, "?", 2)[0] == r.URL.Path {
			ex = &e
			s.queue = append(s.queue[:i:i], s.queue[i+1:]...)
			break
		}
	}
	s.got = append(s.got, stubReq{r.Method, r.URL.RequestURI(), r.Header.Clone(), body, ex})
	s.mu.Unlock()
	if ex == nil {
		http.Error(w, "stub: no recording left for "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
		return
	}
	if ex.Status == nil {
		panic(http.ErrAbortHandler)
	}
	for k, vs := range ex.ResponseHeaders {
		if k != "Content-Length" && k != "Date" {
			w.Header()[k] = vs
		}
	}
	out := ex.ResponseBody
	if r.URL.Path == "/process/token" {
		var tok map[string]json.RawMessage
		if json.Unmarshal([]byte(out), &tok) == nil && tok["service_addr"] != nil {
			old := `"service_addr":` + string(tok["service_addr"])
			out = strings.Replace(out, old, `"service_addr":"`+s.URL+`"`, 1)
		}
	}
	w.WriteHeader(*ex.Status)
	io.WriteString(w, out)
}

func (s *stubOrch) received() []stubReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stubReq(nil), s.got...)
}

func scenario(t *testing.T, f *transcript.File, name string) transcript.Scenario {
	t.Helper()
	sc, ok := f.Scenario(name)
	if !ok {
		t.Fatalf("no scenario %s", name)
	}
	return sc
}

// replayClient sends a recorded client->gateway request to the gateway and
// returns the answer.
func replayClient(t *testing.T, gw *gateway.Node, ex transcript.Exchange) (*http.Response, []byte) {
	t.Helper()
	req, err := ex.Request(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	idle(t, gw)
	return resp, body
}

func decodeJobHeader(t *testing.T, h string) map[string]any {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// jsonKeys returns an object's keys in order.
func jsonKeys(t *testing.T, b64s string) []string {
	t.Helper()
	b, _ := base64.StdEncoding.DecodeString(b64s)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token()
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v json.RawMessage
		dec.Decode(&v)
	}
	return keys
}

// Our gateway's requests to a go-livepeer orchestrator have the recorded
// shape: the same token request (byte for byte: same key), the same
// Livepeer header keys, order and values (but our job ID, and the binding
// to it in parameters, which our signature covers), and a payment
// of the recorded params; it parses the recorded answers, and its books
// follow a go-livepeer orchestrator's balance exactly (the second job is
// covered by the first's credit, so no tickets, as recorded).
func TestTranscriptPaidJobs(t *testing.T) {
	paid := transcript.Paid()
	key := paid.MadeWith.FixedInputs.SenderPrivateKey
	s1 := scenario(t, paid, "paid_job_1_first_payment")
	s2 := scenario(t, paid, "paid_job_2_balance_already_covers")
	stub := newStubOrch(t, append(s1.Hop(transcript.HopGatewayOrchestrator), s2.Hop(transcript.HopGatewayOrchestrator)...)...)
	gw := startGateway(t, key, []string{stub.URL}, func(c *gateway.NodeConfig) { c.Gateway.MinCompute = gateway.DefaultMinCompute })

	for i, sc := range []transcript.Scenario{s1, s2} {
		client := sc.Hop(transcript.HopClientGateway)[0]
		resp, body := replayClient(t, gw, client)
		// Our answer: the recorded one, plus the job ID, with the worker's
		// Content-Type instead of the one go-livepeer sniffs (D28).
		d := transcript.CompareResponseParts(client, resp.StatusCode, resp.Header, body, nil).
			WithoutHeaders(gateway.HeaderJobIDResponse, "Content-Type", "X-Orchestrator-Url")
		if len(d) > 0 {
			t.Errorf("%s: answer differs:\n%s", sc.Name, d)
		}
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get(wire.HeaderOrchestratorURL) != stub.URL {
			t.Errorf("%s: headers %v", sc.Name, resp.Header)
		}
		got := stub.received()[2*i:]
		if len(got) != 2 {
			t.Fatalf("%s: the stub got %d requests", sc.Name, len(got))
		}
		for _, g := range got {
			d := transcript.CompareRequestParts(*g.recorded, g.method, g.path, g.header, g.body, nil).
				WithoutHeaders("Accept-Encoding", wire.HeaderJobRequest, wire.HeaderJobID)
			if len(d) > 0 {
				t.Errorf("%s %s: request differs:\n%s", sc.Name, g.path, d)
			}
		}
		job := got[1]
		want := decodeJobHeader(t, job.recorded.RequestHeaders.Get(wire.HeaderJobRequest))
		have := decodeJobHeader(t, job.header.Get(wire.HeaderJobRequest))
		if i == 0 {
			if id, _ := have["id"].(string); gateway.ValidJobID(id) != nil || len(id) != 32 {
				t.Errorf("made-up job id %q", id)
			}
		}
		// Ours differs in three keys: our job ID; parameters, which carry
		// the byoc_job binding (go-livepeer orchestrators ignore the key);
		// and so the signature, which covers them.
		for _, k := range []string{"id", "parameters", "sig"} {
			delete(want, k)
			delete(have, k)
		}
		for k, v := range want {
			if have[k] != v {
				t.Errorf("%s: Livepeer %s = %v, want %v", sc.Name, k, have[k], v)
			}
		}
		req, err := wire.DecodeJobRequestHeader(job.header.Get(wire.HeaderJobRequest))
		if err != nil {
			t.Fatal(err)
		}
		if bound, err := req.CheckBinding(time.Now()); !bound || err != nil {
			t.Errorf("%s: binding %v %v in %s", sc.Name, bound, err, req.Parameters)
		}
		var params map[string]any
		json.Unmarshal([]byte(req.Parameters), &params)
		delete(params, wire.BindingKey)
		if len(params) != 0 {
			t.Errorf("%s: parameters %s: the client's were {}", sc.Name, req.Parameters)
		}
		if addr, err := wire.VerifyJobSig(req.Sender, req); err != nil || addr.Hex() != paid.MadeWith.FixedInputs.SenderAddress {
			t.Errorf("%s: signature %v by %s", sc.Name, err, addr.Hex())
		}
		if wk, hk := jsonKeys(t, job.recorded.RequestHeaders.Get(wire.HeaderJobRequest)), jsonKeys(t, job.header.Get(wire.HeaderJobRequest)); strings.Join(wk, ",") != strings.Join(hk, ",") {
			t.Errorf("%s: Livepeer keys %v, want %v", sc.Name, hk, wk)
		}
		pay := job.header.Get(wire.PaymentHeader)
		if i == 1 {
			if pay != "" {
				t.Errorf("job 2 paid although the books cover it")
			}
			continue
		}
		p, err := wire.DecodePaymentHeader(pay)
		if err != nil {
			t.Fatal(err)
		}
		rp, _ := wire.DecodePaymentHeader(job.recorded.RequestHeaders.Get(wire.PaymentHeader))
		tok, _ := wire.DecodeJobToken([]byte(got[0].recorded.ResponseBody))
		switch {
		case len(p.TicketSenderParams) != len(rp.TicketSenderParams) || p.TicketSenderParams[0].SenderNonce != 1:
			t.Errorf("tickets %d (first nonce %d), recorded %d", len(p.TicketSenderParams), p.TicketSenderParams[0].SenderNonce, len(rp.TicketSenderParams))
		case !bytes.Equal(p.Sender, rp.Sender) || !bytes.Equal(p.ExpectedPrice.Marshal(), rp.ExpectedPrice.Marshal()):
			t.Errorf("payment sender/price %x %+v, recorded %x %+v", p.Sender, p.ExpectedPrice, rp.Sender, rp.ExpectedPrice)
		case !bytes.Equal(p.TicketParams.Marshal(), tok.TicketParams.Marshal()) || !bytes.Equal(p.ExpirationParams.Marshal(), rp.ExpirationParams.Marshal()):
			t.Errorf("payment params differ from the token's")
		}
	}
	if n := metric(t, gw, "byoc_gateway_books_comparisons_total", "result", "agree"); n < 2 {
		t.Errorf("%v comparisons with the recorded balances agreed, want ≥ 2", n)
	}
}

// go-livepeer demands 60 s of credit (paid_job_gwei_price_attempt_1: its
// own gateway sent 4 tickets for a 30 s job and was refused, D16). Ours
// pays for max(timeout, 60 s): 8 tickets. The recorded refusal is relayed
// as the final answer it is, and the tickets stay booked: go-livepeer keeps
// them in the sender's balance.
func TestTranscriptSixtySecondRule(t *testing.T) {
	paid := transcript.Paid()
	sc := scenario(t, paid, "paid_job_gwei_price_attempt_1")
	stub := newStubOrch(t, sc.Hop(transcript.HopGatewayOrchestrator)...)
	gw := startGateway(t, paid.MadeWith.FixedInputs.SenderPrivateKey, []string{stub.URL}, func(c *gateway.NodeConfig) { c.Gateway.MinCompute = gateway.DefaultMinCompute })
	resp, body := replayClient(t, gw, sc.Hop(transcript.HopClientGateway)[0])
	if resp.StatusCode != 400 || !strings.Contains(string(body), "Insufficient balance for request") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	got := stub.received()
	p, err := wire.DecodePaymentHeader(got[1].header.Get(wire.PaymentHeader))
	if err != nil || len(p.TicketSenderParams) != 8 {
		t.Fatalf("paid %d tickets (%v), want 8", len(p.TicketSenderParams), err)
	}
	if s := books(t, gw.Ledger, "0x63FaC9201494f0bd17B9892B9fae4d52fe3BD377", "reverse-paid-gwei"); s.credited < 63_999_999_000 || s.charged != 0 || s.pool != s.credited {
		t.Errorf("books %+v", s)
	}
}

// A go-livepeer stream is relayed event by event up to [DONE] — not the
// newlines the reference sends after it (D2b) — with the injected balance
// line, exactly as the recorded gateway delivered it.
func TestTranscriptSSE(t *testing.T) {
	paid := transcript.Paid()
	sc := scenario(t, paid, "paid_sse_job")
	stub := newStubOrch(t, sc.Hop(transcript.HopGatewayOrchestrator)...)
	gw := startGateway(t, paid.MadeWith.FixedInputs.SenderPrivateKey, []string{stub.URL}, nil)
	client := sc.Hop(transcript.HopClientGateway)[0]
	resp, body := replayClient(t, gw, client)
	want := client.ResponseBody // ends "data: [DONE]\n"; ours ends the event with a blank line
	if resp.StatusCode != 200 || string(body) != want+"\n" {
		t.Fatalf("%d\n%q\nwant\n%q", resp.StatusCode, body, want+"\n")
	}
	d := transcript.CompareResponseParts(client, resp.StatusCode, resp.Header, nil, nil).Without(transcript.DiffBody).
		WithoutHeaders(gateway.HeaderJobIDResponse, "X-Orchestrator-Url", wire.HeaderPaymentBalance)
	if len(d) > 0 {
		t.Errorf("headers differ:\n%s", d)
	}
}

// An on-chain gateway meeting an offchain go-livepeer orchestrator gets a
// token without ticket_params at price 0; go-livepeer's gateway panics
// there (D4, transcript mixed_signing_gateway_offchain_orchestrator_job).
// Ours runs the free job and answers.
func TestTranscriptOffchainOrchestrator(t *testing.T) {
	paid := transcript.Paid()
	sc := scenario(t, paid, "mixed_signing_gateway_offchain_orchestrator_job")
	stub := newStubOrch(t, sc.Hop(transcript.HopGatewayOrchestrator)...)
	gw := startGateway(t, paid.MadeWith.FixedInputs.SenderPrivateKey, []string{stub.URL}, nil)
	resp, body := replayClient(t, gw, sc.Hop(transcript.HopClientGateway)[0])
	if resp.StatusCode != 200 || !strings.Contains(string(body), "!COYB reepeviL ,olleH") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	got := stub.received()
	if len(got) != 2 || got[1].header.Get(wire.PaymentHeader) != "" {
		t.Fatalf("requests %+v", got)
	}
	d := transcript.CompareRequestParts(*got[1].recorded, got[1].method, got[1].path, got[1].header, got[1].body, nil).
		WithoutHeaders("Accept-Encoding", wire.HeaderJobRequest)
	if len(d) > 0 {
		t.Errorf("job request differs:\n%s", d)
	}
}

// Recorded orchestrator failures: a dead worker (500, no X-Metadata: the
// orchestrator failed before any output) counts as a failed attempt; a
// worker's 404 (with X-Metadata: the worker's own answer) is relayed as
// the job's answer; and an orchestrator that just failed ranks after the
// others.
func TestTranscriptFailureClasses(t *testing.T) {
	off := transcript.Offchain()
	token := scenario(t, off, "direct_token_sig_empty").Hop(transcript.HopGatewayOrchestrator)[0]
	dead := scenario(t, off, "direct_job_dead_worker_removes_capability").Hop(transcript.HopGatewayOrchestrator)[0]
	notFound := scenario(t, off, "direct_job_worker_returns_404").Hop(transcript.HopGatewayOrchestrator)[0]
	ok := scenario(t, off, "direct_job_sig_empty").Hop(transcript.HopGatewayOrchestrator)[0]
	a := newStubOrch(t, token, dead, token, notFound, token)
	b := newStubOrch(t, token, ok)
	gw := startGateway(t, "", []string{a.URL, b.URL}, nil)
	onlyA := `{"orchestrators":{"include":["` + a.URL + `"]}}`

	r := submit(t, gw, jobSpec{capability: "reverse-text", body: `{"text":"x"}`, parameters: onlyA})
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, a.URL+": job: 500 orchestrator failed: job not able to be processed, removing capability") {
		t.Fatalf("dead worker: %d %q", r.status, r.body)
	}
	r = submit(t, gw, jobSpec{capability: "reverse-text", body: `{"text":"x"}`, parameters: onlyA})
	if r.status != http.StatusNotFound || r.body != "404 page not found\n\n" {
		t.Fatalf("worker 404: %d %q", r.status, r.body)
	}
	if n := len(a.received()); n != 4 {
		t.Fatalf("a got %d requests, want 4 (no retry of the 404)", n)
	}
	r = submit(t, gw, jobSpec{capability: "reverse-text", body: `{"text":"x"}`})
	if r.status != 200 || r.header.Get(wire.HeaderOrchestratorURL) != b.URL || !strings.Contains(r.body, "reversed") {
		t.Fatalf("after a's failure: %d from %s: %q", r.status, r.header.Get(wire.HeaderOrchestratorURL), r.body)
	}
}
