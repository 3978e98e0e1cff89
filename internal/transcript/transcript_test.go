package transcript

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestLoadFiles(t *testing.T) {
	for _, tc := range []struct {
		name      string
		raw       []byte
		load      func() *File
		scenarios int
	}{
		{"offchain", offchainJSON, Offchain, 55},
		{"paid", paidJSON, Paid, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every key of the files has a field: nothing is silently lost.
			if _, err := parse(tc.raw, true); err != nil {
				t.Fatalf("strict parse: %v", err)
			}
			f := tc.load()
			if len(f.Scenarios) != tc.scenarios {
				t.Fatalf("%d scenarios, want %d", len(f.Scenarios), tc.scenarios)
			}
			if f.MadeWith.Implementation == "" || len(f.Notes) == 0 {
				t.Error("made_with or notes empty")
			}
			prev := 0
			for _, s := range f.Scenarios {
				if s.Name == "" || len(s.Exchanges) == 0 {
					t.Errorf("scenario %q has no name or no exchanges", s.Name)
				}
				for _, e := range s.Exchanges {
					// Seq never decreases; the offchain file numbers its
					// startup ping and first registration both 1.
					if e.Seq < prev {
						t.Errorf("%s: seq %d after %d", s.Name, e.Seq, prev)
					}
					prev = e.Seq
					switch e.Hop {
					case HopClientGateway, HopGatewayOrchestrator, HopOrchestratorWorker, HopWorkerOrchestrator:
					default:
						t.Errorf("%s seq %d: unknown hop %q", s.Name, e.Seq, e.Hop)
					}
					if (e.Status == nil) != (e.TransportError != "") {
						t.Errorf("%s seq %d: status %v with transport error %q", s.Name, e.Seq, e.Status, e.TransportError)
					}
					if _, err := e.RequestBodyBytes(); err != nil {
						t.Error(err)
					}
					if !strings.HasPrefix(e.Path, "/") {
						t.Errorf("%s seq %d: path %q", s.Name, e.Seq, e.Path)
					}
				}
			}
			// Fresh copies: modifying one does not affect the next.
			f.Scenarios[0].Name = "changed"
			if tc.load().Scenarios[0].Name == "changed" {
				t.Error("loaders share state")
			}
		})
	}
	if fi := Paid().MadeWith.FixedInputs; fi == nil || fi.SenderAddress != "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23" || fi.LastInitializedRound != 3500 {
		t.Errorf("paid fixed inputs: %+v", fi)
	}
	if Offchain().MadeWith.FixedInputs != nil {
		t.Error("offchain file has fixed inputs")
	}
}

func TestScenarioLookupAndHop(t *testing.T) {
	s, ok := Paid().Scenario("paid_job_1_first_payment")
	if !ok {
		t.Fatal("scenario not found")
	}
	if got := len(s.Hop(HopGatewayOrchestrator)); got != 2 {
		t.Errorf("%d gateway->orchestrator exchanges, want 2", got)
	}
	w := s.Hop(HopOrchestratorWorker)
	if len(w) != 1 || w[0].Seq != 59 || w[0].Host() != "127.0.0.1:38102" || w[0].StatusCode() != 200 {
		t.Errorf("worker exchanges: %+v", w)
	}
	if len(s.Hop("")) != len(s.Exchanges) {
		t.Error("Hop(\"\") is not every exchange")
	}
	if _, ok := Paid().Scenario("no such scenario"); ok {
		t.Error("found a missing scenario")
	}
	if hs := s.HarnessState; hs == nil || hs.Capability != "reverse-paid" || Rat(hs.After.OrchestratorFixedPrice).RatString() != "1000" || Rat(hs.Before.OrchestratorBalanceForSender) != nil {
		t.Errorf("harness state: %+v", hs)
	}
	mixed, _ := Paid().Scenario("mixed_signing_gateway_offchain_orchestrator_job")
	if e := mixed.Exchanges[0]; e.Status != nil || e.StatusCode() != 0 || e.TransportError != "EOF" {
		t.Errorf("transport error exchange: %+v", e)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"https://127.0.0.1:38101/ai/trickle/x-control":                     "https://127.0.0.1:PORT/ai/trickle/x-control",
		`Post "http://127.0.0.1:38999": dial tcp 127.0.0.1:38999: connect`: `Post "http://127.0.0.1:PORT": dial tcp 127.0.0.1:PORT: connect`,
		"http://localhost:8935 and [::1]:1":                                "http://localhost:PORT and [::1]:PORT",
		"10.0.0.5:8935 stays":                                              "10.0.0.5:8935 stays",
		"no address":                                                       "no address",
		"127.0.0.1:123456":                                                 "127.0.0.1:123456", // not a port
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompareBodyJSON(t *testing.T) {
	want := []byte(`{"a":1,"b":{"x":"s","y":[1,{"p":1,"q":2}]},"c":"https://127.0.0.1:1/"}` + "\n")
	for _, tc := range []struct {
		name  string
		got   string
		kinds []DiffKind
	}{
		{"identical", string(want), nil},
		{"port only", `{"a":1,"b":{"x":"s","y":[1,{"p":1,"q":2}]},"c":"https://127.0.0.1:2/"}` + "\n", nil},
		{"top-level reorder", `{"b":{"x":"s","y":[1,{"p":1,"q":2}]},"a":1,"c":"https://127.0.0.1:1/"}` + "\n", []DiffKind{DiffJSONOrder}},
		{"nested reorder in array", `{"a":1,"b":{"x":"s","y":[1,{"q":2,"p":1}]},"c":"https://127.0.0.1:1/"}` + "\n", []DiffKind{DiffJSONOrder}},
		{"missing key", `{"a":1,"c":"https://127.0.0.1:1/"}` + "\n", []DiffKind{DiffJSONKeys}},
		{"extra key", `{"a":1,"b":{"x":"s","y":[1,{"p":1,"q":2}]},"c":"https://127.0.0.1:1/","d":0}` + "\n", []DiffKind{DiffJSONKeys}},
		{"value", `{"a":2,"b":{"x":"s","y":[1,{"p":1,"q":2}]},"c":"https://127.0.0.1:1/"}` + "\n", []DiffKind{DiffJSONValue}},
		{"type", `{"a":"1","b":{"x":"s","y":[1,{"p":1,"q":2}]},"c":"https://127.0.0.1:1/"}` + "\n", []DiffKind{DiffJSONType}},
		{"array length", `{"a":1,"b":{"x":"s","y":[1]},"c":"https://127.0.0.1:1/"}` + "\n", []DiffKind{DiffJSONType}},
		{"no trailing newline", `{"a":1,"b":{"x":"s","y":[1,{"p":1,"q":2}]},"c":"https://127.0.0.1:1/"}`, []DiffKind{DiffJSONFormat}},
		{"not JSON", `a=1`, []DiffKind{DiffBody}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := CompareBody(want, []byte(tc.got), nil)
			if len(ds) != len(tc.kinds) {
				t.Fatalf("diffs:\n%v", ds)
			}
			for i, d := range ds {
				if d.Kind != tc.kinds[i] {
					t.Errorf("diff %d kind %s, want %s: %v", i, d.Kind, tc.kinds[i], d)
				}
			}
		})
	}
	// Text bodies: byte for byte after normalisation.
	if ds := CompareBody([]byte("invalid authorization\n"), []byte("invalid authorization"), nil); len(ds) != 1 || ds[0].Kind != DiffBody {
		t.Errorf("text diff: %v", ds)
	}
	if ds := CompareBody([]byte("ok"), []byte("ok"), nil); ds != nil {
		t.Errorf("equal text: %v", ds)
	}
	// A custom normaliser.
	opts := &Options{Normalize: func(s string) string { return strings.ReplaceAll(Normalize(s), "harness-a66d5865", "ID") }}
	if ds := CompareBody([]byte(`{"id":"harness-a66d5865"}`), []byte(`{"id":"ID"}`), opts); ds != nil {
		t.Errorf("custom normaliser: %v", ds)
	}
}

// TestCompareTokenBodies compares recorded token bodies with each other:
// tokens of one run differ only in volatile values.
func TestCompareTokenBodies(t *testing.T) {
	p := Paid()
	before, _ := p.Scenario("paid_token_direct_before_payment")
	after, _ := p.Scenario("paid_token_direct_after_payment")
	b, a := before.Exchanges[0], after.Exchanges[0]
	ds := CompareResponseParts(b, a.StatusCode(), a.ResponseHeaders, []byte(a.ResponseBody), nil)
	// after has a balance key before has not; seed and recipient_rand_hash differ.
	if got := ds.Only(DiffJSONKeys); len(got) != 1 || !strings.Contains(got[0].Got, "balance") {
		t.Errorf("key diffs: %v", got)
	}
	if got := ds.Only(DiffJSONValue); len(got) != 2 {
		t.Errorf("value diffs: %v", got)
	}
	if got := ds.Without(DiffJSONKeys, DiffJSONValue); len(got) != 0 {
		t.Errorf("other diffs: %v", got)
	}
	// Offchain token against a paid one: no ticket_params, no balance.
	off, _ := Offchain().Scenario("direct_token_sig_empty")
	o := off.Exchanges[0]
	ds = CompareResponseParts(o, a.StatusCode(), a.ResponseHeaders, []byte(a.ResponseBody), nil)
	if got := ds.Only(DiffJSONKeys); len(got) != 3 { // ticket_params, balance, price.pricePerUnit
		t.Errorf("offchain vs paid key diffs: %v", got)
	}
}

func TestCompareHeaders(t *testing.T) {
	want := Exchange{Seq: 7, Status: ptr(200), ResponseHeaders: http.Header{
		"Content-Type":       {"application/json"},
		"Content-Length":     {"12"},
		"X-Orchestrator-Url": {"https://127.0.0.1:38111"},
		"Livepeer-Balance":   {"7999999000"},
	}, ResponseBody: "ok"}
	got := http.Header{
		"Content-Type":       {"application/json"},
		"Date":               {"now"},
		"X-Orchestrator-Url": {"https://127.0.0.1:9999"},
		"Livepeer-Balance":   {"7999998000"},
		"X-Metadata":         {""},
	}
	ds := CompareResponseParts(want, 400, got, []byte("ok"), nil)
	var kinds []DiffKind
	for _, d := range ds {
		kinds = append(kinds, d.Kind)
		if d.Seq != 7 {
			t.Errorf("seq %d", d.Seq)
		}
	}
	if len(ds) != 3 || ds[0].Kind != DiffStatus || ds[1].Kind != DiffHeaderValue || ds[1].Header != "Livepeer-Balance" ||
		ds[2].Kind != DiffHeaderName || ds[2].Header != "X-Metadata" {
		t.Fatalf("diffs %v:\n%v", kinds, ds)
	}
	if rest := ds.WithoutHeaders("x-metadata", "LIVEPEER-BALANCE"); len(rest) != 1 || rest[0].Kind != DiffStatus {
		t.Errorf("WithoutHeaders: %v", rest)
	}
	if rest := CompareResponseParts(want, 200, got, []byte("ok"), &Options{IgnoreHeaders: []string{"x-metadata", "livepeer-balance"}}); len(rest) != 0 {
		t.Errorf("IgnoreHeaders: %v", rest)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRequest(t *testing.T) {
	s, _ := Paid().Scenario("paid_job_1_first_payment")
	e := s.Hop(HopGatewayOrchestrator)[1] // POST /process/request/
	req, err := e.Request("https://127.0.0.1:1234/")
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.URL.String() != "https://127.0.0.1:1234/process/request/" {
		t.Errorf("request line: %s %s", req.Method, req.URL)
	}
	for _, h := range []string{"Host", "Content-Length", "User-Agent", "Accept-Encoding"} {
		if _, ok := req.Header[h]; ok {
			t.Errorf("header %s kept", h)
		}
	}
	for _, h := range []string{"Livepeer", "Livepeer-Payment", "Content-Type"} {
		if req.Header.Get(h) != e.RequestHeaders.Get(h) {
			t.Errorf("header %s not copied", h)
		}
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != e.RequestBody || req.ContentLength != int64(len(body)) {
		t.Errorf("body %q, length %d", body, req.ContentLength)
	}

	// Query kept; base64 bodies decoded.
	off := Offchain()
	sub, _ := off.Scenario("direct_job_subpath")
	req, err = sub.Exchanges[0].Request("https://h")
	if err != nil || req.URL.RequestURI() != "/process/request/v1/reverse?x=1" {
		t.Errorf("subpath: %v %v", req.URL, err)
	}
	start, _ := off.Scenario("startup")
	b, err := start.Exchanges[0].RequestBodyBytes()
	if err != nil || len(b) == 0 || b[0] != 0 {
		t.Errorf("gRPC body: %x %v", b, err)
	}
}

// TestStubWorkerReplaysEveryWorkerExchange replays every recorded
// orchestrator->worker request against a stub built from its scenario: the
// stub must answer with the recording and report no differences.
func TestStubWorkerReplaysEveryWorkerExchange(t *testing.T) {
	n := 0
	for _, f := range []*File{Offchain(), Paid()} {
		for _, s := range f.Scenarios {
			ws := s.Hop(HopOrchestratorWorker)
			if len(ws) == 0 {
				continue
			}
			t.Run(s.Name, func(t *testing.T) {
				stub := NewStubWorker(t, s)
				for _, e := range ws {
					n++
					req, err := e.Request(stub.URL)
					if err != nil {
						t.Fatal(err)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Fatal(err)
					}
					if ds := CompareResponse(t, e, resp, body); len(ds) != 0 {
						t.Errorf("response differs:\n%v", ds)
					}
				}
				if ds := stub.Compare(); len(ds) != 0 {
					t.Errorf("received requests differ:\n%v", ds)
				}
				if len(stub.Received()) != len(ws) || len(stub.Unused()) != 0 {
					t.Errorf("received %d, unused %d", len(stub.Received()), len(stub.Unused()))
				}
			})
		}
	}
	if n != 17 {
		t.Errorf("%d worker exchanges replayed, want 17", n)
	}
}

func TestStubWorkerMismatches(t *testing.T) {
	s, _ := Paid().Scenario("paid_sse_job")
	stub := NewStubWorker(t, s, WithTiming())
	// A request nobody recorded.
	resp, err := http.Post(stub.URL+"/nope", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("status %d", resp.StatusCode)
	}
	// The recorded SSE request, with another body and without Content-Type.
	req, _ := http.NewRequest("POST", stub.URL+"/", strings.NewReader(`{"text":"other"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e := s.Hop(HopOrchestratorWorker)[0]
	if string(body) != e.ResponseBody || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("SSE answer %q %v", body, resp.Header)
	}
	var chunks string
	for _, c := range e.ResponseChunks {
		chunks += c.Data
	}
	if chunks != e.ResponseBody {
		t.Errorf("chunks do not make up the body")
	}
	ds := stub.Compare()
	if len(ds) != 3 || len(ds.Only(DiffUnexpected)) != 1 || len(ds.Only(DiffJSONValue)) != 1 || len(ds.Only(DiffHeaderName)) != 1 {
		t.Errorf("diffs:\n%v", ds)
	}

	// A recorded transport error closes the connection; a missing request is reported.
	stub2 := NewStubWorkerFor(t, []Exchange{
		{Seq: 1, Method: "POST", Path: "/dead", TransportError: "EOF"},
		{Seq: 2, Method: "POST", Path: "/never", Status: ptr(200)},
	})
	if resp, err := http.Post(stub2.URL+"/dead", "text/plain", nil); err == nil {
		resp.Body.Close()
		t.Error("transport error not reproduced")
	}
	if ds := stub2.Compare().Only(DiffMissing); len(ds) != 1 || ds[0].Seq != 2 {
		t.Errorf("diffs:\n%v", ds)
	}
}
