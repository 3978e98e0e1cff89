package signer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// hook is a test auth webhook: it records each request and answers with
// the reply the test sets.
type hook struct {
	mu     sync.Mutex
	calls  []webhookBody
	hdrs   []http.Header
	status int    // HTTP status; 0 = 200
	reply  string // body
	srv    *httptest.Server
}

func newHook(t *testing.T) *hook {
	h := &hook{reply: `{"status":200}`}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var wb webhookBody
		if err := json.Unmarshal(b, &wb); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
		}
		h.mu.Lock()
		h.calls = append(h.calls, wb)
		h.hdrs = append(h.hdrs, r.Header.Clone())
		status, reply := h.status, h.reply
		h.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
		}
		io.WriteString(w, reply)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) set(status int, reply string) {
	h.mu.Lock()
	h.status, h.reply = status, reply
	h.mu.Unlock()
}

func (h *hook) n() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

func (h *hook) last() (webhookBody, http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[len(h.calls)-1], h.hdrs[len(h.hdrs)-1]
}

// TestWebhookProtocol: the request body (every incoming header, the state
// as it will be signed), the configured headers, the reply's expiry cached
// in the state (no call until it passes, on the signer's clock), and the
// auth_id bound into the state.
func TestWebhookProtocol(t *testing.T) {
	rc := loadRecorded(t)
	hk := newHook(t)
	s, clk := newTestSigner(t, rc, func(c *Config) {
		c.Webhook = &Webhook{URL: hk.srv.URL, Headers: map[string]string{"Authorization": "Bearer hook-secret"}}
	})
	h := s.Handler()
	expiry := clk.Now().Unix() + 30
	hk.set(0, `{"status":200,"auth_id":"client-1:alice","expiry":`+itoa(expiry)+`}`)
	code, b, _ := post(t, h, "/generate-live-payment", rc.request(nil, "m", 27648000, ""), "Authorization", "sk_user_key", "X-Extra", "1")
	r1 := decodeOK(t, code, b)
	if hk.n() != 1 {
		t.Fatalf("%d webhook calls", hk.n())
	}
	wb, hdr := hk.last()
	if got := wb.Headers["Authorization"]; len(got) != 1 || got[0] != "sk_user_key" || wb.Headers["X-Extra"][0] != "1" {
		t.Errorf("webhook got headers %v", wb.Headers)
	}
	if hdr.Get("Authorization") != "Bearer hook-secret" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("webhook request headers %v", hdr)
	}
	if wb.State == nil || wb.State.SenderNonce != 3 || wb.State.StateID == "" || !wb.State.LastUpdate.Equal(clk.Now()) || wb.State.AuthID != "" {
		t.Errorf("webhook state %+v", wb.State)
	}
	st := stateOf(t, r1.State)
	if st.AuthID != "client-1:alice" || st.AuthExpiry != expiry {
		t.Errorf("state auth %q %d", st.AuthID, st.AuthExpiry)
	}
	// Within the expiry: no call. The auth ID stays bound.
	clk.Advance(30 * time.Second)
	r2 := payOK(t, h, rc.request(&r1.State, "m", 27648000, ""))
	if hk.n() != 1 {
		t.Errorf("webhook called within its expiry")
	}
	// Past it: asked again; the same auth ID is fine.
	clk.Advance(time.Second)
	hk.set(0, `{"status":200,"auth_id":"client-1:alice"}`)
	r3 := payOK(t, h, rc.request(&r2.State, "m", 27648000, ""))
	if hk.n() != 2 || stateOf(t, r3.State).AuthID != "client-1:alice" {
		t.Errorf("after expiry: %d calls, auth %q", hk.n(), stateOf(t, r3.State).AuthID)
	}
	// An expiry of 0 is stored: the next call asks again.
	if stateOf(t, r3.State).AuthExpiry != 0 {
		t.Errorf("expiry %d, want 0", stateOf(t, r3.State).AuthExpiry)
	}
	// Another auth ID for a bound state: 500 (masked, as go-livepeer).
	hk.set(0, `{"status":200,"auth_id":"client-1:bob"}`)
	code, b, _ = post(t, h, "/generate-live-payment", rc.request(&r3.State, "m", 27648000, ""))
	if code != 500 || b != `{"error":{"message":"Internal Server Error"}}`+"\n" {
		t.Errorf("auth ID change: %d %s", code, b)
	}
}

// TestWebhookAuthIDHeader: without a webhook auth_id, Signer-Auth-Id names
// the customer; a webhook's auth_id wins over it.
func TestWebhookAuthIDHeader(t *testing.T) {
	rc := loadRecorded(t)
	s, _ := newTestSigner(t, rc, nil)
	code, b, _ := post(t, s.Handler(), "/generate-live-payment", rc.request(nil, "m", 27648000, ""), HeaderAuthID, "hdr-cust")
	if st := stateOf(t, decodeOK(t, code, b).State); st.AuthID != "hdr-cust" {
		t.Errorf("no webhook: auth %q", st.AuthID)
	}
	hk := newHook(t)
	s, _ = newTestSigner(t, rc, func(c *Config) { c.Webhook = &Webhook{URL: hk.srv.URL} })
	code, b, _ = post(t, s.Handler(), "/generate-live-payment", rc.request(nil, "m", 27648000, ""), HeaderAuthID, "hdr-cust")
	if st := stateOf(t, decodeOK(t, code, b).State); st.AuthID != "hdr-cust" {
		t.Errorf("webhook without auth_id: auth %q", st.AuthID)
	}
	hk.set(0, `{"status":200,"auth_id":"hook-cust"}`)
	code, b, _ = post(t, s.Handler(), "/generate-live-payment", rc.request(nil, "m", 27648000, ""), HeaderAuthID, "hdr-cust")
	if st := stateOf(t, decodeOK(t, code, b).State); st.AuthID != "hook-cust" {
		t.Errorf("webhook auth_id: auth %q", st.AuthID)
	}
}

// TestWebhookRefusals: what the webhook says, and how it fails, reaches
// the caller; no refusal spends a nonce.
func TestWebhookRefusals(t *testing.T) {
	rc := loadRecorded(t)
	hk := newHook(t)
	s, _ := newTestSigner(t, rc, func(c *Config) { c.Webhook = &Webhook{URL: hk.srv.URL} })
	h := s.Handler()
	fixed := body(map[string]any{"orchestrator": rc.infoB64, "type": "fixed"})
	for _, c := range []struct {
		name       string
		status     int
		reply      string
		req        string
		wantStatus int
		wantBody   string
	}{
		{"insufficient balance with code", 0, `{"status":483,"reason":"insufficient balance","code":"insufficient_balance"}`, fixed, 483,
			`{"error":{"message":"insufficient balance","code":"insufficient_balance"}}`},
		{"billing unavailable with code", 0, `{"status":503,"reason":"billing unavailable","code":"billing_unavailable"}`, fixed, 503,
			`{"error":{"message":"billing unavailable","code":"billing_unavailable"}}`},
		{"503 without code is masked", 0, `{"status":503,"reason":"down"}`, fixed, 503, `{"error":{"message":"Service Unavailable Error"}}`},
		{"refusal without reason", 0, `{"status":401}`, fixed, 401, `{"error":{"message":"signer auth rejected request with status 401"}}`},
		{"refresh", 0, `{"status":480,"reason":"refresh"}`, fixed, 480, `{"error":{"message":"refresh"}}`},
		{"HTTP error", 502, `oops`, fixed, 500, `{"error":{"message":"Internal Server Error"}}`},
		{"bad JSON", 0, `{`, fixed, 500, `{"error":{"message":"Internal Server Error"}}`},
		{"no status", 0, `{"reason":"x"}`, fixed, 500, `{"error":{"message":"Internal Server Error"}}`},
		{"zero status", 0, `{"status":0}`, fixed, 500, `{"error":{"message":"Internal Server Error"}}`},
		{"maxPrice below", 0, `{"status":200,"maxPrice":{"price":"1","currency":"wei","unit":"fixed"}}`, fixed, 481,
			`{"error":{"message":"orchestrator price 666.667 exceeds auth webhook maxPrice ceiling 1.000"}}`},
		{"maxPrice malformed", 0, `{"status":200,"maxPrice":{"price":"1","currency":"usd","unit":"fixed"}}`, fixed, 502,
			`{"error":{"message":"signer auth invalid maxPrice: maxPrice.currency must be wei"}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			hk.set(c.status, c.reply)
			code, b, _ := post(t, h, "/generate-live-payment", c.req)
			if code != c.wantStatus || b != c.wantBody+"\n" {
				t.Errorf("got %d %s, want %d %s", code, b, c.wantStatus, c.wantBody)
			}
		})
	}
	hk.set(0, `{"status":200,"maxPrice":{"price":"1000","currency":"wei","unit":"fixed"}}`)
	r := payOK(t, h, fixed)
	if got := nonces(t, r.Payment); len(got) != 1 || got[0] != 1 {
		t.Errorf("after the refusals: nonces %v, want [1]", got)
	}
}

// TestWebhookTimeout: a webhook that does not answer within the timeout is
// a 500, not a hung call.
func TestWebhookTimeout(t *testing.T) {
	rc := loadRecorded(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s, _ := newTestSigner(t, rc, func(c *Config) { c.Webhook = &Webhook{URL: srv.URL, Timeout: 50 * time.Millisecond} })
	code, b, _ := post(t, s.Handler(), "/generate-live-payment", rc.request(nil, "m", 27648000, ""))
	if code != 500 {
		t.Errorf("got %d %s", code, b)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
