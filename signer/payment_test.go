package signer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/wire"
)

// infoB64 encodes a changed copy of the recorded OrchestratorInfo.
func (rc *recorded) infoWith(mod func(*wire.OrchestratorInfo)) string {
	info := new(wire.OrchestratorInfo)
	if err := info.Unmarshal(rc.info.Marshal()); err != nil {
		panic(err)
	}
	mod(info)
	return base64.StdEncoding.EncodeToString(info.Marshal())
}

func body(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func wantError(t *testing.T, code int, b string, wantCode int, wantMsg string) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(b), &e); err != nil {
		t.Fatalf("status %d, body %q is not the error envelope", code, b)
	}
	if code != wantCode || !strings.Contains(e.Error.Message, wantMsg) {
		t.Errorf("got %d %q, want %d with %q", code, e.Error.Message, wantCode, wantMsg)
	}
}

// TestBadRequests: each refusal has its status and message, and spends no
// nonce: the first payment after all of them starts at nonce 1.
func TestBadRequests(t *testing.T) {
	rc := loadRecorded(t)
	s, clk := newTestSigner(t, rc, func(c *Config) { c.MaxPrice = big.NewRat(1000, 1) })
	h := s.Handler()
	first := payOK(t, h, rc.request(nil, "m", 27648000, ""))
	expired := rc.infoWith(func(i *wire.OrchestratorInfo) { i.AuthToken.Expiration = clk.Now().Unix() + 60 })
	garbage := func() StateSig {
		st := []byte("not json")
		sig, _ := rc.key.SignPersonal(st)
		return StateSig{State: st, Sig: sig}
	}()
	otherKey, _ := ethsig.KeySignerFromHex("0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")
	foreign, _ := seal(otherKey, &State{StateID: "x"})
	for _, c := range []struct {
		name    string
		body    string
		status  int
		message string
	}{
		{"not JSON", "{", 400, "unexpected EOF"},
		{"wrong JSON type", `{"inPixels":"many"}`, 400, "cannot unmarshal string into Go struct field RemotePaymentRequest.inPixels"},
		{"no orchestrator", `{"inPixels":1}`, 400, "missing orchestrator"},
		{"orchestrator not protobuf", body(map[string]any{"orchestrator": "/////w==", "inPixels": 1}), 400, "malformed"},
		{"zero price", body(map[string]any{"orchestrator": rc.infoWith(func(i *wire.OrchestratorInfo) { i.PriceInfo = nil }), "inPixels": 1}), 400, "missing or zero priceInfo"},
		{"no ticket params", body(map[string]any{"orchestrator": rc.infoWith(func(i *wire.OrchestratorInfo) { i.TicketParams = nil }), "inPixels": 1}), 400, "missing ticketParams in OrchestratorInfo"},
		{"no auth token", body(map[string]any{"orchestrator": rc.infoWith(func(i *wire.OrchestratorInfo) { i.AuthToken = nil }), "inPixels": 1}), 400, "missing auth token"},
		{"invalid type", rc.request(nil, "", 1, "video"), 400, "invalid job type"},
		{"no units", rc.request(nil, "", 0, ""), 400, "missing billable unit or job type"},
		{"negative units", rc.request(nil, "", -5, ""), 400, "missing billable unit or job type"},
		{"maxPrice without type", body(map[string]any{"orchestrator": rc.infoB64, "inPixels": 1, "maxPrice": map[string]any{"price": 1, "currency": "wei", "unit": "fixed"}}), 400, "maxPrice requires payment type live, lv2v, or fixed"},
		{"maxPrice wrong unit", body(map[string]any{"orchestrator": rc.infoB64, "type": "live", "maxPrice": map[string]any{"price": "1", "currency": "wei", "unit": "fixed"}}), 400, "maxPrice.unit must be seconds for payment type live"},
		{"maxPrice not wei", body(map[string]any{"orchestrator": rc.infoB64, "type": "fixed", "maxPrice": map[string]any{"price": "1", "currency": "usd", "unit": "fixed"}}), 400, "maxPrice.currency must be wei"},
		{"maxPrice zero", body(map[string]any{"orchestrator": rc.infoB64, "type": "fixed", "maxPrice": map[string]any{"price": "0", "currency": "wei", "unit": "fixed"}}), 400, "maxPrice.price must be a positive decimal"},
		{"request maxPrice below", body(map[string]any{"orchestrator": rc.infoB64, "type": "fixed", "maxPrice": map[string]any{"price": "100.5", "currency": "WEI", "unit": "Fixed"}}), 481, "orchestrator price 666.667 exceeds request maxPrice ceiling 100.500"},
		{"configured maximum below", body(map[string]any{"orchestrator": rc.infoWith(func(i *wire.OrchestratorInfo) { i.PriceInfo.PricePerUnit = 3001; i.PriceInfo.PixelsPerUnit = 3 }), "inPixels": 1}), 481, "exceeds configured maximum price ceiling 1000.000"},
		{"price rose in the session", body(map[string]any{"orchestrator": rc.infoWith(func(i *wire.OrchestratorInfo) { i.PriceInfo.PricePerUnit = 2001 }), "inPixels": 1, "ManifestID": "m", "state": first.State}), 481, "exceeds initial session price ceiling 666.667"},
		{"auth token ending", body(map[string]any{"orchestrator": expired, "inPixels": 1}), 480, "refresh session for remote signer"},
		{"tampered state", rc.request(&StateSig{State: first.State.State, Sig: foreign.Sig}, "m", 1, ""), 400, "invalid sig"},
		{"another signer's state", rc.request(&foreign, "m", 1, ""), 400, "invalid sig"},
		{"signed garbage", rc.request(&garbage, "m", 1, ""), 400, "invalid state"},
		{"state without manifest", rc.request(&first.State, "", 1, ""), 400, "missing manifestID"},
		{"other orchestrator", body(map[string]any{"orchestrator": rc.infoWith(func(i *wire.OrchestratorInfo) { i.Address = make([]byte, 20) }), "inPixels": 1, "ManifestID": "m", "state": first.State}), 400, "orchestratorAddress mismatch"},
		{"app mismatch", body(map[string]any{"orchestrator": rc.infoB64, "inPixels": 1, "ManifestID": "m", "state": first.State, "app": "other"}), 400, "app mismatch"},
		{"too many tickets", rc.request(nil, "", 27648000*200, ""), 400, "numTickets 461 exceeds maximum of 100"},
		{"capabilities not protobuf", body(map[string]any{"orchestrator": rc.infoB64, "inPixels": 1, "capabilities": "/////w=="}), 400, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, b, hdr := post(t, h, "/generate-live-payment", c.body)
			wantError(t, code, b, c.status, c.message)
			if c.status == 480 && hdr.Get(HeaderOrchestratorURL) != rc.info.Transcoder {
				t.Errorf("480 without %s: %v", HeaderOrchestratorURL, hdr)
			}
		})
	}
	// A type fixed once cannot change.
	live := payOK(t, h, body(map[string]any{"orchestrator": rc.infoB64, "type": "live", "ManifestID": "m2"}))
	code, b, _ := post(t, h, "/generate-live-payment", body(map[string]any{"orchestrator": rc.infoB64, "type": "fixed", "ManifestID": "m2", "state": live.State}))
	wantError(t, code, b, 400, "job type mismatch")

	// A body over the bound.
	big := `{"ManifestID":"` + strings.Repeat("x", DefaultMaxBody) + `"}`
	code, b, _ = post(t, h, "/generate-live-payment", big)
	wantError(t, code, b, 400, "request body too large")

	// Only POST.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/generate-live-payment", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
	// Nothing refused spent a nonce: the session of the first payment goes
	// on from its own nonce, and no ticket was signed in between.
	if got := nonces(t, first.Payment); len(got) != 3 || got[0] != 1 {
		t.Fatalf("first payment nonces %v", got)
	}
	if got := nonces(t, live.Payment); len(got) == 0 || got[0] != 4 {
		t.Errorf("the payment after the refusals has nonces %v, want from 4", got)
	}
	next := payOK(t, h, rc.request(&first.State, "m", 1, ""))
	if got := nonces(t, next.Payment); len(got) != 1 || got[0] != 5 {
		t.Errorf("then %v, want [5]", got)
	}
}

// TestBillingUnits: the units each type bills, through the state's balance
// (balance = tickets·EV − fee) and the 60 s / 10 s preloads.
func TestBillingUnits(t *testing.T) {
	rc := loadRecorded(t)
	price := big.NewRat(2000, 3)
	for _, c := range []struct {
		typ           string
		inPixels      int64
		wait          time.Duration
		first, second int64 // units billed by the first and second call
	}{
		{"", 1000, 7 * time.Second, 1000, 1000},
		{"fixed", 0, 7 * time.Second, 1, 1},
		{"live", 0, 2500 * time.Millisecond, 10, 3},
		{"lv2v", 0, 1500 * time.Millisecond, 0, 27648000 * 3 / 2},
	} {
		t.Run("type="+c.typ, func(t *testing.T) {
			s, clk := newTestSigner(t, rc, nil)
			h := s.Handler()
			if c.typ == "lv2v" {
				// The 60 s preload needs 139 tickets (call 3 of the recording);
				// start from a state with credit instead.
				first := payOK(t, h, rc.request(nil, "m", 27648000*30, ""))
				st := stateOf(t, first.State)
				st.Type = ""
				rs, _ := seal(rc.key, &st)
				clk.Advance(c.wait)
				code, b, _ := post(t, h, "/generate-live-payment", rc.request(&rs, "m", 0, "lv2v"))
				r := decodeOK(t, code, b)
				checkFee(t, st, stateOf(t, r.State), nonces(t, r.Payment), price, c.second)
				return
			}
			first := payOK(t, h, rc.request(nil, "m", c.inPixels, c.typ))
			checkFee(t, State{}, stateOf(t, first.State), nonces(t, first.Payment), price, c.first)
			clk.Advance(c.wait)
			code, b, _ := post(t, h, "/generate-live-payment", rc.request(&first.State, "m", c.inPixels, c.typ))
			if code == StatusNoTickets {
				var e errorBody
				json.Unmarshal([]byte(b), &e)
				checkFee(t, stateOf(t, first.State), stateOf(t, *e.State), nil, price, c.second)
				return
			}
			r := decodeOK(t, code, b)
			checkFee(t, stateOf(t, first.State), stateOf(t, r.State), nonces(t, r.Payment), price, c.second)
		})
	}
}

// checkFee checks after.Balance = before.Balance + tickets·EV − units·price.
func checkFee(t *testing.T, before, after State, tickets []uint32, price *big.Rat, units int64) {
	t.Helper()
	ev := evOf(t)
	want := new(big.Rat)
	if before.Balance != "" {
		want = mustRat(t, before.Balance)
	}
	want.Add(want, new(big.Rat).Mul(ev, big.NewRat(int64(len(tickets)), 1)))
	want.Sub(want, new(big.Rat).Mul(price, big.NewRat(units, 1)))
	if after.Balance != want.RatString() {
		t.Errorf("balance %s, want %s (%d units, %d tickets)", after.Balance, want.RatString(), units, len(tickets))
	}
}

func evOf(t *testing.T) *big.Rat {
	rc := loadRecorded(t)
	s, _ := newTestSigner(t, rc, nil)
	id, err := s.sender.StartSession(rc.info.TicketParams, rc.info.PriceInfo)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := s.sender.EV(id)
	return ev
}

// TestRequestKeysAnyCase: Go matches JSON keys case-insensitively, so
// go-livepeer clients may spell them any way; so may ours.
func TestRequestKeysAnyCase(t *testing.T) {
	rc := loadRecorded(t)
	s, _ := newTestSigner(t, rc, nil)
	h := s.Handler()
	r := payOK(t, h, `{"ORCHESTRATOR":"`+rc.infoB64+`","manifestid":"mid-x","INPIXELS":27648000,"Type":""}`)
	sd, _ := base64.StdEncoding.DecodeString(r.SegCreds)
	var seg wire.SegData
	if err := seg.Unmarshal(sd); err != nil || string(seg.ManifestId) != "mid-x" {
		t.Errorf("manifest %q, %v", seg.ManifestId, err)
	}
}

// TestNoncesContinue: a state replayed twice never gets the same nonces
// twice from one signer (go-livepeer's signer would sign them again).
func TestNoncesContinue(t *testing.T) {
	rc := loadRecorded(t)
	s, _ := newTestSigner(t, rc, nil)
	h := s.Handler()
	first := payOK(t, h, rc.request(nil, "m", 27648000, ""))
	a := nonces(t, payOK(t, h, rc.request(&first.State, "m", 27648000, "")).Payment)
	b := nonces(t, payOK(t, h, rc.request(&first.State, "m", 27648000, "")).Payment)
	if len(a) != 2 || len(b) != 2 || a[0] != 4 || b[0] != 6 {
		t.Errorf("replayed state: nonces %v then %v, want 4,5 then 6,7", a, b)
	}
}

func TestDiscovery(t *testing.T) {
	rc := loadRecorded(t)
	get := func(h http.Handler, q string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/discover-orchestrators"+q, nil))
		return w.Code, w.Body.String()
	}
	s, _ := newTestSigner(t, rc, nil)
	if code, _ := get(s.Handler(), ""); code != http.StatusNotFound {
		t.Errorf("without discovery: %d, want 404", code)
	}
	s, _ = newTestSigner(t, rc, func(c *Config) { c.Discovery = StaticDiscovery{} })
	if code, b := get(s.Handler(), ""); code != 503 || b != `{"error":{"message":"Service Unavailable Error"}}`+"\n" {
		t.Errorf("empty: %d %s", code, b)
	}
	s, _ = newTestSigner(t, rc, func(c *Config) {
		c.Discovery = StaticDiscovery{{Address: "https://a:8935", Capabilities: []string{"x", "y"}}, {Address: "https://b:8935", Capabilities: []string{"z"}}}
	})
	for q, want := range map[string]string{
		"":               `[{"address":"https://a:8935","score":1,"capabilities":["x","y"]},{"address":"https://b:8935","score":1,"capabilities":["z"]}]`,
		"?caps=z":        `[{"address":"https://b:8935","score":1,"capabilities":["z"]}]`,
		"?caps=y&caps=z": `[{"address":"https://a:8935","score":1,"capabilities":["x","y"]},{"address":"https://b:8935","score":1,"capabilities":["z"]}]`,
		"?caps=q":        `[]`,
		"?caps=&caps=x":  `[{"address":"https://a:8935","score":1,"capabilities":["x","y"]}]`,
	} {
		if code, b := get(s.Handler(), q); code != 200 || b != want+"\n" {
			t.Errorf("%q: %d %s, want %s", q, code, b, want)
		}
	}
}

func TestStartRule(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:0": true, "localhost:7936": true, "[::1]:1": true,
		"0.0.0.0:7936": false, ":7936": false, "10.0.0.1:7936": false, "example.com:1": false, "junk": false} {
		if Loopback(addr) != want {
			t.Errorf("Loopback(%q) = %v", addr, !want)
		}
	}
	dir := t.TempDir()
	_, err := StartNode(t.Context(), NodeConfig{Listen: "0.0.0.0:0", DataDir: dir})
	if !errors.Is(err, ErrPublicWithoutAuth) {
		t.Fatalf("public without auth: %v", err)
	}
}
