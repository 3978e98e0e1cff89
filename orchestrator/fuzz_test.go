package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ethsig"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/wire"
)

// The fuzz targets here drive the orchestrator's HTTP handlers in process
// (httptest.NewRecorder), against a SQLite ledger on a manual clock and a
// loopback worker that answers at once, so an iteration's outcome does not
// depend on timing. Each target builds its orchestrator once; the ledger
// carries over from one input to the next, and every property is checked
// on the change one request made.

// fuzzOrch is an orchestrator with a ledger, a worker serving "reverse"
// (1000 wei per second) and "free" (price 0), and a paying sender (KeyA).
type fuzzOrch struct {
	env       *ledgertest.Env
	cfg       orchestrator.Config
	o         *orchestrator.Orchestrator
	worker    *testnet.FuzzWorker
	signer    *ethsig.KeySigner
	sender    *pm.Sender
	senderHdr string
}

const fuzzServiceAddr = "https://orch.test"

func newFuzzOrch(t testing.TB) *fuzzOrch {
	t.Helper()
	fo := &fuzzOrch{env: ledgertest.NewEnv(t, ledgertest.SQLite), worker: testnet.StartFuzzWorker(t)}
	blocks, err := pm.NewOffchainBlocks(fo.env.Clock.Now, 0, common.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	rc := pm.RecipientConfig{Address: common.HexToAddress("0x00000000000000000000000000000000000000b0"), Blocks: blocks, TicketEV: testnet.TestEV}
	copy(rc.Secret[:], "fuzz-recipient-secret-fuzz-recipient-secret")
	recipient, err := pm.NewRecipient(rc)
	if err != nil {
		t.Fatal(err)
	}
	fo.cfg = orchestrator.Config{ServiceAddr: fuzzServiceAddr, Secret: testnet.Secret, Ledger: fo.env.Ledger, Recipient: recipient,
		MinCompute: 5 * time.Second, MaxBodyBytes: 4096, ChargeInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	fo.reset(t)
	if fo.signer, err = ethsig.KeySignerFromHex(testnet.KeyA); err != nil {
		t.Fatal(err)
	}
	fo.sender = pm.NewSender(pm.SenderConfig{Signer: fo.signer})
	js, err := wire.NewJobSender(fo.signer)
	if err != nil {
		t.Fatal(err)
	}
	if fo.senderHdr, err = wire.EncodeJobSenderHeader(js); err != nil {
		t.Fatal(err)
	}
	return fo
}

// reset replaces the orchestrator by a fresh one on the same ledger, with
// the two capabilities registered.
func (fo *fuzzOrch) reset(t testing.TB) {
	t.Helper()
	o, err := orchestrator.New(fo.cfg)
	if err != nil {
		t.Fatal(err)
	}
	fo.o = o
	for _, c := range []string{
		`{"name":"reverse","url":"` + fo.worker.URL + `/w","capacity":4,"price_per_unit":1000,"price_scaling":1,"currency":"wei"}`,
		`{"name":"free","url":"` + fo.worker.URL + `/w","capacity":4,"price_per_unit":0}`,
	} {
		req := httptest.NewRequest(http.MethodPost, "/capability/register", strings.NewReader(c))
		req.Header.Set("Authorization", testnet.Secret)
		if rec := fo.serve(req); rec.Code != http.StatusOK {
			t.Fatalf("register: %d %s", rec.Code, rec.Body)
		}
	}
}

func (fo *fuzzOrch) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	fo.o.Handler().ServeHTTP(rec, req)
	return rec
}

// tokenStatus asks for a token for capability as the sender.
func (fo *fuzzOrch) tokenStatus(capability string) (int, *wire.JobToken) {
	req := httptest.NewRequest(http.MethodGet, "/process/token", nil)
	req.Header.Set(wire.HeaderJobSender, fo.senderHdr)
	req.Header.Set(wire.HeaderCapability, capability)
	rec := fo.serve(req)
	if rec.Code != http.StatusOK {
		return rec.Code, nil
	}
	tok, err := wire.DecodeJobToken(rec.Body.Bytes())
	if err != nil {
		return 0, nil
	}
	return rec.Code, tok
}

// pay returns a payment header of n genuine tickets for "reverse".
func (fo *fuzzOrch) pay(t testing.TB, n int) string {
	t.Helper()
	status, tok := fo.tokenStatus("reverse")
	if status != http.StatusOK {
		t.Fatalf("token: %d", status)
	}
	id, err := fo.sender.StartSession(tok.TicketParams, tok.Price)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fo.sender.CreateTicketBatch(id, n)
	if err != nil {
		t.Fatal(err)
	}
	return wire.EncodePaymentHeader(b.Payment(pm.LayoutBYOC))
}

// jobHeader returns a Livepeer header for a job of the sender (or an
// unsigned one), bound to its ID unless unbound.
func (fo *fuzzOrch) jobHeader(t testing.TB, capability, id string, signed, bound bool) string {
	t.Helper()
	req := &wire.JobRequest{ID: id, Request: "{}", Parameters: "{}", Capability: capability, TimeoutSeconds: 30}
	var signer ethsig.Signer
	if signed {
		signer = fo.signer
		if bound {
			if err := wire.Bind(req, fo.env.Clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := wire.SignJobRequest(signer, req); err != nil {
		t.Fatal(err)
	}
	h, err := wire.EncodeJobRequestHeader(req)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// books checks every ledger invariant and returns the totals.
func (fo *fuzzOrch) books(t testing.TB) ledger.Report {
	t.Helper()
	r, err := ledger.Verify(context.Background(), fo.env.Store, ledger.VerifyOptions{Now: fo.env.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("ledger invariants violated: %v", r.Problems)
	}
	return r
}

// headerAmount reads an amount header; absent is 0.
func headerAmount(t *testing.T, h http.Header, name string) ledger.Amount {
	t.Helper()
	v := h.Get(name)
	if v == "" {
		return ledger.Amount{}
	}
	a, err := ledger.ParseAmount(v)
	if err != nil {
		t.Fatalf("%s: %q: %v", name, v, err)
	}
	return a
}

// FuzzOrchestratorJob sends arbitrary job requests (method, path under
// /process/request/, Livepeer and Livepeer-Payment headers, other header
// lines, body) to the orchestrator. The seeds are genuine requests: signed
// bound and unbound jobs paid with real tickets or from the funded pool, a
// legacy job, free unsigned jobs, streams, worker error statuses. After
// each request:
//   - no panic, no 5xx but 503 "No capacity" and the worker's own status
//     relayed (the worker never fails);
//   - every ledger invariant holds and no hold is left open;
//   - the ledger credited exactly what Livepeer-Payment-Credited says (0
//     when absent): only genuine tickets, into the sender's pool;
//   - nothing was charged unless the worker got the job, and then exactly
//     Livepeer-Job-Charged (a stream's charges come after its headers: at
//     least 0);
//   - a refused request (not 2xx) the worker never saw changed nothing but
//     those credits: the pools grew by exactly what was credited.
func FuzzOrchestratorJob(f *testing.F) {
	fo := newFuzzOrch(f)
	// Fund the sender's pool: a 20-ticket job leaves 19000 wei there.
	fund := fo.serve(fo.jobRequest(f, "", fo.jobHeader(f, "reverse", "fund", true, true), fo.pay(f, 20), "abc"))
	if fund.Code != http.StatusOK || fund.Header().Get(wire.HeaderBalance) != "19000" {
		f.Fatalf("funding job: %d %q %s", fund.Code, fund.Header().Get(wire.HeaderBalance), fund.Body)
	}
	post, text := http.MethodPost, "Content-Type: text/plain"
	for _, s := range []struct {
		method, suffix, job, payment, headers string
		body                                  []byte
	}{
		{post, "", fo.jobHeader(f, "reverse", "paid", true, true), fo.pay(f, 6), text, []byte("hello")},
		{post, "", fo.jobHeader(f, "reverse", "prepaid", true, true), "", text, []byte("hello")},
		{post, "", fo.jobHeader(f, "reverse", "unbound", true, false), fo.pay(f, 3), text, []byte("x")},
		{post, "", fo.jobHeader(f, "reverse", "", true, false), fo.pay(f, 2), text, []byte("legacy")},
		{post, "sse", fo.jobHeader(f, "reverse", "stream", true, true), "", "", nil},
		{post, "status/404", fo.jobHeader(f, "reverse", "err", true, true), "", "", nil},
		{post, "status/503", fo.jobHeader(f, "free", "err5", false, false), "", "", nil},
		{post, "a/b?q=1", fo.jobHeader(f, "free", "free-1", false, false), "", "Content-Type: application/json", []byte(`{"a":1}`)},
		{post, "", fo.jobHeader(f, "reverse", "unsigned", false, false), "", "", nil},
		{post, "", fo.jobHeader(f, "nope", "unknown", true, true), "", "", nil},
		{post, "", fo.jobHeader(f, "reverse", "big", true, true), "", "", bytes.Repeat([]byte("z"), 5000)},
		{post, "", fo.jobHeader(f, "reverse", "badpay", true, true), "!!notbase64", "", nil},
		{post, "", "%%%", "", "", nil},
		{http.MethodGet, "", fo.jobHeader(f, "reverse", "get", true, true), "", "", nil},
		{post, "", testnet.B64(`{"capability":"free","request":"{}","parameters":"{}","timeout_seconds":1,"id":"x","sig":"0x"}`), "", "", nil},
		{post, "%2e%2e/x", fo.jobHeader(f, "free", "dots", false, false), "", "Transfer-Encoding: chunked", []byte("1\r\na\r\n0\r\n\r\n")},
		{post, "%25zz", fo.jobHeader(f, "free", "free-pct", false, false), "", "", []byte("x")},
		{post, "", fo.jobHeader(f, "free", "badchunk", false, false), "", "Transfer-Encoding: chunked", []byte("zz\r\nab")},
	} {
		f.Add(s.method, s.suffix, s.job, s.payment, s.headers, s.body)
	}

	f.Fuzz(func(t *testing.T, method, suffix, job, payment, headers string, body []byte) {
		req, ok := testnet.RawRequest(method, "/process/request/"+suffix, "byoc.test", []string{wire.HeaderJobRequest, job, wire.PaymentHeader, payment}, headers, body)
		if !ok {
			return
		}
		before, calls := fo.books(t), fo.worker.Calls.Load()
		rec := fo.serve(req)
		after := fo.books(t)
		reached := fo.worker.Calls.Load() > calls
		status, h := rec.Code, rec.Header()
		fromWorker := reached && strings.HasPrefix(rec.Body.String(), "worker status")
		if status >= 500 && !fromWorker && (status != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "No capacity")) {
			t.Fatalf("status %d (worker reached: %v): %s", status, reached, rec.Body)
		}
		if after.OpenJobs != 0 || after.OpenJobHeld.Sign() != 0 {
			t.Fatalf("status %d: %d holds left open with %s wei", status, after.OpenJobs, after.OpenJobHeld)
		}
		credited := after.Credited.Sub(before.Credited)
		if want := headerAmount(t, h, wire.HeaderPaymentCredited); credited.Cmp(want) != 0 {
			t.Fatalf("status %d: the ledger credited %s wei, Livepeer-Payment-Credited says %s", status, credited, want)
		}
		charged := after.Charged.Sub(before.Charged)
		sse := strings.Contains(h.Get("Content-Type"), "text/event-stream")
		switch want := headerAmount(t, h, wire.HeaderJobCharged); {
		case !reached && charged.Sign() != 0:
			t.Fatalf("status %d: charged %s wei for a job the worker never got", status, charged)
		case sse && charged.Sign() < 0:
			t.Fatalf("stream: charged %s wei", charged)
		case !sse && charged.Cmp(want) != 0:
			t.Fatalf("status %d: the ledger charged %s wei, Livepeer-Job-Charged says %s", status, charged, want)
		}
		if status >= 300 && !reached {
			if grown := after.PoolTotal.Sub(before.PoolTotal); grown.Cmp(credited) != 0 {
				t.Fatalf("refused request (%d %s): the pools changed by %s wei, but only %s was credited", status, strings.TrimSpace(rec.Body.String()), grown, credited)
			}
		}
	})
}

// jobRequest is a POST of a job with its headers.
func (fo *fuzzOrch) jobRequest(t testing.TB, suffix, job, payment, body string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/process/request/"+suffix, strings.NewReader(body))
	req.Header.Set(wire.HeaderJobRequest, job)
	req.Header.Set("Content-Type", "text/plain")
	if payment != "" {
		req.Header.Set(wire.PaymentHeader, payment)
	}
	return req
}

// FuzzOrchestratorToken sends arbitrary token requests (method,
// Livepeer-Eth-Address, Livepeer-Capability, Livepeer-Job-Id, other header
// lines). A token request never moves money or leaves anything in the
// ledger; it never answers 5xx (the capabilities have free capacity); a
// 200 is a token for a registered capability with ticket params, a price
// and our service address.
func FuzzOrchestratorToken(f *testing.F) {
	fo := newFuzzOrch(f)
	fund := fo.serve(fo.jobRequest(f, "", fo.jobHeader(f, "reverse", "fund", true, true), fo.pay(f, 20), "abc"))
	if fund.Code != http.StatusOK {
		f.Fatalf("funding job: %d %s", fund.Code, fund.Body)
	}
	unsigned, _ := wire.EncodeJobSenderHeader(wire.JobSender{Addr: wire.ZeroAddressHex, Sig: "0x"})
	get := http.MethodGet
	for _, s := range [][5]string{
		{get, fo.senderHdr, "reverse", "", ""},
		{get, fo.senderHdr, "reverse", "fund", ""},
		{get, fo.senderHdr, "free", "", "Accept: */*"},
		{get, unsigned, "free", "", ""},
		{get, unsigned, "reverse", "x", ""},
		{get, fo.senderHdr, "nope", "", ""},
		{get, fo.senderHdr, "", "", ""},
		{get, "!!!", "reverse", "", ""},
		{get, testnet.B64(`{"addr":"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23","sig":"0x` + strings.Repeat("11", 65) + `"}`), "reverse", "", ""},
		{http.MethodPost, fo.senderHdr, "reverse", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	f.Fuzz(func(t *testing.T, method, sender, capability, jobID, headers string) {
		req, ok := testnet.RawRequest(method, "/process/token", "byoc.test", []string{wire.HeaderJobSender, sender, wire.HeaderCapability, capability, wire.HeaderJobID, jobID}, headers, nil)
		if !ok {
			return
		}
		before := fo.books(t)
		rec := fo.serve(req)
		after := fo.books(t)
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if after.Accounts != before.Accounts || after.Entries != before.Entries || after.Credited.Cmp(before.Credited) != 0 ||
			after.Charged.Cmp(before.Charged) != 0 || after.PoolTotal.Cmp(before.PoolTotal) != 0 {
			t.Fatalf("a token request changed the ledger: %+v → %+v", before, after)
		}
		if rec.Code != http.StatusOK {
			return
		}
		tok, err := wire.DecodeJobToken(rec.Body.Bytes())
		if err != nil {
			t.Fatalf("200 with a body that is no token: %v: %s", err, rec.Body)
		}
		if name := req.Header.Get(wire.HeaderCapability); name != "reverse" && name != "free" {
			t.Fatalf("a token for unregistered capability %q", name)
		}
		if tok.TicketParams == nil || tok.Price == nil || tok.ServiceAddr != fuzzServiceAddr || tok.SenderAddress == nil {
			t.Fatalf("incomplete token: %s", rec.Body)
		}
	})
}

// FuzzOrchestratorRegister sends arbitrary worker registrations and
// unregistrations (method, Authorization, body) to an orchestrator with
// "reverse" and "free" registered (a fresh one per input). Without the
// secret the answer is 401 (405 for a method other than POST) and the
// registry is unchanged; a 200 registration makes the capability it names
// quoted at the price it gives; a 200 unregistration of "reverse" removes
// it; never a 5xx, never a ledger change.
func FuzzOrchestratorRegister(f *testing.F) {
	fo := newFuzzOrch(f)
	good := `{"name":"r2","url":"` + fo.worker.URL + `/w","capacity":2,"price_per_unit":3,"price_scaling":2,"currency":"wei"}`
	post, secret := http.MethodPost, testnet.Secret
	for _, s := range []struct {
		method     string
		unregister bool
		auth       string
		body       []byte
	}{
		{post, false, secret, []byte(good)},
		{post, false, "Bearer " + secret, []byte(strings.Replace(good, `"r2"`, `"reverse"`, 1))},
		{post, false, "", []byte(good)},
		{post, false, "nope", []byte(good)},
		{post, false, secret, []byte("{")},
		{post, false, secret, []byte(strings.Replace(good, `"wei"`, `"USD"`, 1))},
		{post, false, secret, []byte(strings.Replace(good, `"capacity":2`, `"capacity":0`, 1))},
		{post, false, secret, []byte(strings.Replace(good, "http://", "ftp://", 1))},
		{post, false, secret, []byte(strings.Replace(good, `"currency":"wei"`, `"currency":"eth"`, 1))},
		{post, true, secret, []byte("reverse")},
		{post, true, "nope", []byte("reverse")},
		{http.MethodGet, false, secret, nil},
	} {
		f.Add(s.method, s.unregister, s.auth, s.body)
	}
	f.Fuzz(func(t *testing.T, method string, unregister bool, auth string, body []byte) {
		path := "/capability/register"
		if unregister {
			path = "/capability/unregister"
		}
		req, ok := testnet.RawRequest(method, path, "byoc.test", []string{"Authorization", auth}, "", body)
		if !ok {
			return
		}
		fo.reset(t)
		before := fo.books(t)
		rec := fo.serve(req)
		after := fo.books(t)
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if after.Entries != before.Entries || after.Accounts != before.Accounts {
			t.Fatalf("a registration changed the ledger: %+v → %+v", before, after)
		}
		authorized := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ") == testnet.Secret
		status, tok := fo.tokenStatus("reverse")
		switch {
		case !authorized:
			if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusMethodNotAllowed {
				t.Fatalf("without the secret: status %d: %s", rec.Code, rec.Body)
			}
			if status != http.StatusOK || tok.AvailableCapacity != 4 || tok.Price.PricePerUnit != 1000 || tok.Price.PixelsPerUnit != 1 {
				t.Fatalf("a refused registration changed reverse: %d %+v", status, tok)
			}
		case rec.Code != http.StatusOK:
		case unregister:
			if string(body) == "reverse" && status != http.StatusNotFound {
				t.Fatalf("reverse unregistered, but its token is %d", status)
			}
		default:
			var c wire.ExternalCapability
			if err := json.Unmarshal(body, &c); err != nil {
				t.Fatalf("registration accepted from a body that is no registration: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("invalid registration accepted: %v", err)
			}
			status, tok := fo.tokenStatus(c.Name)
			if status != http.StatusOK {
				t.Fatalf("registered %q, but its token is %d", c.Name, status)
			}
			want := c.PriceWeiPerUnit()
			got := new(big.Rat).SetFrac64(tok.Price.PricePerUnit, max(tok.Price.PixelsPerUnit, 1))
			if got.Cmp(want) != 0 {
				t.Fatalf("registered %q at %s wei per second, quoted %s", c.Name, want.RatString(), got.RatString())
			}
		}
	})
}
