package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"byoc/ledger"
)

func testViews() []View {
	return []View{
		{Path: Overview, Title: "Overview", Load: func(context.Context, url.Values) (Page, error) {
			return Page{Title: "hello", Tables: []Table{{ID: "t", Columns: []string{"a"}}}}, nil
		}},
		{Path: Job, Load: func(_ context.Context, q url.Values) (Page, error) {
			if q.Get("job") == "" {
				return Page{}, ledger.ErrNotFound
			}
			return Page{}, errors.New("boom")
		}},
	}
}

func do(h http.Handler, method, target, remote string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// With a token the page loads for anyone, and the API answers only with
// the token, as a bearer token or through the cookie the login form sets.
func TestTokenGuardsTheAPI(t *testing.T) {
	h := Handler(Config{Role: "orchestrator", Token: "s3cret", Views: testViews()})
	far := "192.0.2.7:5000"
	if w := do(h, "GET", "http://node:9/console/", far, nil, ""); w.Code != 200 || !strings.Contains(w.Body.String(), "app.js") {
		t.Fatalf("page: %d %s", w.Code, w.Body)
	}
	if w := do(h, "GET", "http://node:9/console/api/view/overview", far, nil, ""); w.Code != 401 {
		t.Fatalf("no token: %d", w.Code)
	}
	if w := do(h, "GET", "http://node:9/console/api/view/overview", far, map[string]string{"Authorization": "Bearer nope"}, ""); w.Code != 401 {
		t.Fatalf("wrong token: %d", w.Code)
	}
	w := do(h, "GET", "http://node:9/console/api/view/overview", far, map[string]string{"Authorization": "Bearer s3cret"}, "")
	var p Page
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Title != "hello" || p.Tables[0].Rows == nil || p.Figures == nil {
		t.Fatalf("bearer: %d %s", w.Code, w.Body)
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if w := do(h, "POST", "http://node:9/console/login", far, form, "token=wrong"); w.Code != 401 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("login with a wrong token: %d %v", w.Code, w.Result().Cookies())
	}
	w = do(h, "POST", "http://node:9/console/login", far, form, "token=s3cret")
	cs := w.Result().Cookies()
	if w.Code != 204 || len(cs) != 1 || !cs[0].HttpOnly || cs[0].Value == "s3cret" || strings.Contains(cs[0].Value, "s3cret") {
		t.Fatalf("login: %d %+v", w.Code, cs)
	}
	if w := do(h, "GET", "http://node:9/console/api/nav", far, map[string]string{"Cookie": cs[0].Name + "=" + cs[0].Value}, ""); w.Code != 200 ||
		!strings.Contains(w.Body.String(), `"views":[{"path":"overview","title":"Overview"}]`) {
		t.Fatalf("nav with the cookie: %d %s (the statement view has no nav entry)", w.Code, w.Body)
	}
	if w := do(h, "GET", "http://node:9/console/api/nav", far, map[string]string{"Cookie": cs[0].Name + "=forged"}, ""); w.Code != 401 {
		t.Fatalf("forged cookie: %d", w.Code)
	}
}

// Without a token only loopback, addressed by a loopback name, gets in.
func TestNoTokenIsLoopbackOnly(t *testing.T) {
	h := Handler(Config{Role: "gateway", Views: testViews()})
	for _, c := range []struct {
		target, remote string
		want           int
	}{
		{"http://127.0.0.1:9/console/api/view/overview", "127.0.0.1:5000", 200},
		{"http://localhost:9/console/api/view/overview", "[::1]:5000", 200},
		{"http://127.0.0.1:9/console/", "192.0.2.7:5000", 403},
		{"http://127.0.0.1:9/console/api/view/overview", "192.0.2.7:5000", 403},
		{"http://evil.example:9/console/api/view/overview", "127.0.0.1:5000", 403}, // DNS rebinding
	} {
		if w := do(h, "GET", c.target, c.remote, nil, ""); w.Code != c.want {
			t.Errorf("%s from %s: %d, want %d (%s)", c.target, c.remote, w.Code, c.want, w.Body)
		}
	}
}

func TestErrorsHaveStatuses(t *testing.T) {
	h := Handler(Config{Token: "t", Views: testViews()})
	auth := map[string]string{"Authorization": "Bearer t"}
	for target, want := range map[string]int{
		"/console/api/view/nosuch":    404,
		"/console/api/view/job":       404,
		"/console/api/view/job?job=x": 500,
		"/console/nosuch":             404,
	} {
		w := do(h, "GET", "http://node:9"+target, "127.0.0.1:1", auth, "")
		var e map[string]string
		if w.Code != want || json.Unmarshal(w.Body.Bytes(), &e) != nil || e["error"] == "" {
			t.Errorf("%s: %d %s, want %d with an error", target, w.Code, w.Body, want)
		}
	}
}

func TestGwei(t *testing.T) {
	for wei, want := range map[int64]string{0: "0", 1: "0.000000001", 8_000_000_000: "8", 1_500_000_000: "1.5", -250_000_000: "-0.25", 123_456_789_012: "123.456789012"} {
		if got := Gwei(ledger.Wei(wei)); got != want {
			t.Errorf("Gwei(%d) = %s, want %s", wei, got, want)
		}
	}
}
