package signer

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzGenerateLivePayment sends arbitrary bodies (seeded with the recorded
// request shapes) to /generate-live-payment: the signer never panics,
// always answers JSON with a status of the protocol, and a 200 carries a
// state it signed.
func FuzzGenerateLivePayment(f *testing.F) {
	rc := loadRecorded(f)
	first := rc.request(nil, "m", 27648000, "")
	f.Add(first)
	f.Add(rc.request(&rc.state, "lv2v-mid-0001", 1, ""))
	f.Add(rc.request(nil, "", 0, "lv2v"))
	f.Add(`{"orchestrator":"` + rc.infoB64 + `","type":"live","maxPrice":{"price":"1e3","currency":"wei","unit":"seconds"}}`)
	f.Add(`{"state":{"State":"e30=","Sig":"AAAA"},"orchestrator":"AAAA"}`)
	f.Add(`{`)
	s, _ := newTestSigner(f, rc, nil)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		code, b, _ := post(t, h, "/generate-live-payment", body)
		switch code {
		case 200:
			var r RemotePaymentResponse
			if err := json.Unmarshal([]byte(b), &r); err != nil || r.Payment == "" {
				t.Fatalf("200 %q", b)
			}
			stateOf(t, r.State)
		case 400, 480, 481, 482, http.StatusInternalServerError, http.StatusServiceUnavailable:
			var e errorBody
			if err := json.Unmarshal([]byte(b), &e); err != nil || e.Error.Message == "" {
				t.Fatalf("%d %q", code, b)
			}
		default:
			t.Fatalf("status %d: %s", code, b)
		}
	})
}
