package signer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/ledger"
	"byoc/wire"
)

// rsVectors is the remote_signer section of go-livepeer's recorded vectors
// (pm/testdata/pm-vectors.json).
type rsVectors struct {
	Keys struct {
		SenderKey string `json:"sender_private_key"`
	} `json:"keys"`
	RS struct {
		Call1Request   string   `json:"call1_request_json_orchestrator_field_elided"`
		Call1Response  string   `json:"call1_response_json"`
		Call1StateJSON string   `json:"call1_state_json"`
		Call1StateSig  string   `json:"call1_state_sig"`
		Call2Nonces    []uint32 `json:"call2_nonces"`
		Call2StateJSON string   `json:"call2_state_json"`
		Call3Body      string   `json:"call3_lv2v_no_state_body"`
		Call3Status    int      `json:"call3_lv2v_no_state_status"`
		Call4Body      string   `json:"call4_bad_state_sig_body"`
		Call4Status    int      `json:"call4_bad_state_sig_status"`
		Call5Tickets   int      `json:"call5_small_fee_num_tickets_because_min_credit_is_ticket_ev"`
		Call5StateJSON string   `json:"call5_state_json"`
		Call6Body      string   `json:"call6_balance_covers_ev_body"`
		Call6Status    int      `json:"call6_balance_covers_ev_status"`
		Call7Body      string   `json:"call7_state_without_manifest_body"`
		Call7Status    int      `json:"call7_state_without_manifest_status"`
		SignInfoBody   string   `json:"sign_orchestrator_info_body"`
		SignInfoStatus int      `json:"sign_orchestrator_info_status"`
	} `json:"remote_signer"`
}

func loadVectors(t testing.TB) *rsVectors {
	t.Helper()
	b, err := os.ReadFile("../pm/testdata/pm-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	v := new(rsVectors)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
	return v
}

// recorded is what the vectors' first answer tells about the orchestrator
// the reference signer was given: its OrchestratorInfo, rebuilt from the
// payment (ticket params, price, recipient) and the segment credentials
// (auth token).
type recorded struct {
	v        *rsVectors
	key      *ethsig.KeySigner
	info     *wire.OrchestratorInfo
	infoB64  string
	payment  string
	segCreds string
	state    StateSig
}

func loadRecorded(t testing.TB) *recorded {
	t.Helper()
	v := loadVectors(t)
	key, err := ethsig.KeySignerFromHex(v.Keys.SenderKey)
	if err != nil {
		t.Fatal(err)
	}
	var resp RemotePaymentResponse
	if err := json.Unmarshal([]byte(v.RS.Call1Response), &resp); err != nil {
		t.Fatal(err)
	}
	p, err := wire.DecodePaymentHeader(resp.Payment)
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := base64.StdEncoding.DecodeString(resp.SegCreds)
	if err != nil {
		t.Fatal(err)
	}
	var sd wire.SegData
	if err := sd.Unmarshal(sdb); err != nil {
		t.Fatal(err)
	}
	tp := p.TicketParams.Clone()
	tp.ExpirationParams = p.ExpirationParams.Clone()
	info := &wire.OrchestratorInfo{
		Transcoder:   "https://orch.example:8935",
		TicketParams: tp,
		PriceInfo:    p.ExpectedPrice.Clone(),
		Address:      tp.Recipient,
		AuthToken:    sd.AuthToken,
	}
	return &recorded{v: v, key: key, info: info, infoB64: base64.StdEncoding.EncodeToString(info.Marshal()),
		payment: resp.Payment, segCreds: resp.SegCreds, state: resp.State}
}

// seqIDs is go-livepeer's stubbed ID generator of the recording: 00000001,
// 00000002, …
func seqIDs() func() string {
	var n atomic.Int64
	return func() string { return fmt.Sprintf("%08x", n.Add(1)) }
}

// testClock is set to a time the recorded auth token is fresh at.
func (rc *recorded) clock() *ledger.ManualClock {
	return ledger.NewManualClock(time.Unix(rc.info.AuthToken.Expiration, 0).Add(-authTokenValid))
}

func newTestSigner(t testing.TB, rc *recorded, mod func(*Config)) (*Signer, *ledger.ManualClock) {
	t.Helper()
	clk := rc.clock()
	cfg := Config{Key: rc.key, Clock: clk, NewID: seqIDs(), Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// post sends body to the signer's route and returns status, body and header.
func post(t testing.TB, h http.Handler, path string, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Body.String(), w.Header()
}

// request builds a /generate-live-payment body.
func (rc *recorded) request(state *StateSig, manifest string, inPixels int64, typ string) string {
	m := map[string]any{"orchestrator": rc.infoB64, "inPixels": inPixels, "type": typ}
	if manifest != "" {
		m["ManifestID"] = manifest
	}
	if state != nil {
		m["state"] = state
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// payOK posts a payment request and decodes its 200 answer.
func payOK(t testing.TB, h http.Handler, body string) RemotePaymentResponse {
	t.Helper()
	code, b, _ := post(t, h, "/generate-live-payment", body)
	return decodeOK(t, code, b)
}

func decodeOK(t testing.TB, code int, body string) RemotePaymentResponse {
	t.Helper()
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var r RemotePaymentResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func stateOf(t testing.TB, ss StateSig) State {
	t.Helper()
	var st State
	if err := json.Unmarshal(ss.State, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func nonces(t testing.TB, payment string) []uint32 {
	t.Helper()
	p, err := wire.DecodePaymentHeader(payment)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, tsp := range p.TicketSenderParams {
		out = append(out, tsp.SenderNonce)
	}
	return out
}

// TestRecordedCalls replays the reference signer's recorded calls: the
// same request gives the same payment and segment credentials byte for
// byte, the state carries the same balance and nonce, and the refusals
// have the same status and body.
func TestRecordedCalls(t *testing.T) {
	rc := loadRecorded(t)
	s, clk := newTestSigner(t, rc, nil)
	h := s.Handler()

	// Call 1, the recorded request with the orchestrator filled in.
	body := strings.Replace(rc.v.RS.Call1Request, "<base64 OrchestratorInfo>", rc.infoB64, 1)
	r1 := payOK(t, h, body)
	if r1.Payment != rc.payment {
		t.Errorf("payment differs from the recording:\n got %s\nwant %s", r1.Payment, rc.payment)
	}
	if r1.SegCreds != rc.segCreds {
		t.Errorf("segCreds differ from the recording:\n got %s\nwant %s", r1.SegCreds, rc.segCreds)
	}
	if err := ethsig.Verify(rc.key.Address(), r1.State.State, r1.State.Sig); err != nil {
		t.Errorf("state signature: %v", err)
	}
	var want1 State
	json.Unmarshal([]byte(rc.v.RS.Call1StateJSON), &want1)
	got1 := stateOf(t, r1.State)
	if got1.StateID != want1.StateID || got1.PMSessionID != want1.PMSessionID || got1.SenderNonce != want1.SenderNonce ||
		got1.Balance != want1.Balance || got1.OrchestratorAddress != want1.OrchestratorAddress ||
		got1.InitialPricePerUnit != want1.InitialPricePerUnit || got1.InitialPixelsPerUnit != want1.InitialPixelsPerUnit ||
		got1.SequenceNumber != 0 || !got1.LastUpdate.Equal(clk.Now()) {
		t.Errorf("state 1 = %+v\nwant %+v", got1, want1)
	}

	// Call 2 continues from the reference's own recorded state and signature.
	recSig, _ := hexBytes(rc.v.RS.Call1StateSig)
	if !bytes.Equal(recSig, rc.state.Sig) {
		t.Fatalf("recorded state sig and response sig differ")
	}
	clk.Advance(time.Second)
	r2 := payOK(t, h, rc.request(&rc.state, "lv2v-mid-0001", 27648000, ""))
	if got := nonces(t, r2.Payment); fmt.Sprint(got) != fmt.Sprint(rc.v.RS.Call2Nonces) {
		t.Errorf("call 2 nonces %v, want %v", got, rc.v.RS.Call2Nonces)
	}
	var want2 State
	json.Unmarshal([]byte(rc.v.RS.Call2StateJSON), &want2)
	if got := stateOf(t, r2.State); got.Balance != want2.Balance || got.SenderNonce != want2.SenderNonce || got.SequenceNumber != want2.SequenceNumber {
		t.Errorf("state 2 = %+v\nwant %+v", got, want2)
	}

	// Call 5: a fee below one ticket's EV still pays one ticket.
	r5 := payOK(t, h, rc.request(&r2.State, "lv2v-mid-0001", 1, ""))
	if got := len(nonces(t, r5.Payment)); got != rc.v.RS.Call5Tickets {
		t.Errorf("call 5: %d tickets, want %d", got, rc.v.RS.Call5Tickets)
	}
	var want5 State
	json.Unmarshal([]byte(rc.v.RS.Call5StateJSON), &want5)
	if got := stateOf(t, r5.State); got.Balance != want5.Balance || got.SenderNonce != want5.SenderNonce || got.SequenceNumber != want5.SequenceNumber {
		t.Errorf("state 5 = %+v\nwant %+v", got, want5)
	}

	// Call 6: the balance covers the next fee: 482, and (byoc's fix) a state.
	code, b6, _ := post(t, h, "/generate-live-payment", rc.request(&r5.State, "lv2v-mid-0001", 1, ""))
	if code != rc.v.RS.Call6Status {
		t.Fatalf("call 6: status %d, want %d: %s", code, rc.v.RS.Call6Status, b6)
	}
	var e6 errorBody
	if err := json.Unmarshal([]byte(b6), &e6); err != nil || e6.Error.Message != "no tickets" || e6.State == nil {
		t.Fatalf("call 6 body %s", b6)
	}
	st6 := stateOf(t, *e6.State)
	wantBal := mustRat(t, stateOf(t, r5.State).Balance)
	wantBal.Sub(wantBal, big.NewRat(2000, 3))
	if st6.Balance != wantBal.RatString() || st6.SequenceNumber != 3 || st6.SenderNonce != stateOf(t, r5.State).SenderNonce {
		t.Errorf("482 state = %+v, want balance %s", st6, wantBal.RatString())
	}
	// The 482's state goes on: the next call is accepted.
	clk.Advance(time.Second)
	if code, b, _ := post(t, h, "/generate-live-payment", rc.request(e6.State, "lv2v-mid-0001", 27648000, "")); code != http.StatusOK {
		t.Errorf("after the 482 state: %d %s", code, b)
	}

	// Call 3: lv2v's 60 s preload needs 139 tickets.
	code, b3, _ := post(t, h, "/generate-live-payment", rc.request(nil, "", 0, "lv2v"))
	if code != rc.v.RS.Call3Status || b3 != rc.v.RS.Call3Body+"\n" {
		t.Errorf("call 3: %d %q, want %d %q", code, b3, rc.v.RS.Call3Status, rc.v.RS.Call3Body)
	}
	// Call 4: a tampered state signature.
	bad := StateSig{State: rc.state.State, Sig: append([]byte(nil), rc.state.Sig...)}
	bad.Sig[5] ^= 1
	code, b4, _ := post(t, h, "/generate-live-payment", rc.request(&bad, "lv2v-mid-0001", 1, ""))
	if code != rc.v.RS.Call4Status || b4 != rc.v.RS.Call4Body+"\n" {
		t.Errorf("call 4: %d %q, want %d %q", code, b4, rc.v.RS.Call4Status, rc.v.RS.Call4Body)
	}
	// Call 7: a state without a manifest ID.
	code, b7, _ := post(t, h, "/generate-live-payment", rc.request(&rc.state, "", 1, ""))
	if code != rc.v.RS.Call7Status || b7 != rc.v.RS.Call7Body+"\n" {
		t.Errorf("call 7: %d %q, want %d %q", code, b7, rc.v.RS.Call7Status, rc.v.RS.Call7Body)
	}
}

func TestSignOrchestratorInfoRecorded(t *testing.T) {
	rc := loadRecorded(t)
	s, _ := newTestSigner(t, rc, nil)
	code, body, hdr := post(t, s.Handler(), "/sign-orchestrator-info", "")
	if code != rc.v.RS.SignInfoStatus || body != rc.v.RS.SignInfoBody+"\n" {
		t.Errorf("got %d %q, want %d %q", code, body, rc.v.RS.SignInfoStatus, rc.v.RS.SignInfoBody)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func hexBytes(s string) ([]byte, error) {
	var b []byte
	_, err := fmt.Sscanf(strings.TrimPrefix(s, "0x"), "%x", &b)
	return b, err
}

func mustRat(t testing.TB, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("rat %q", s)
	}
	return r
}
