package worker

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/wire"
)

// orchRequest is what the fake orchestrator received.
type orchRequest struct {
	proto, method, path, authorization, contentType, body string
}

// fakeOrchestrator records registration calls and answers with answer
// (200 "ok" when nil).
type fakeOrchestrator struct {
	mu       sync.Mutex
	requests []orchRequest
	received chan orchRequest
	answer   func(orchRequest) (int, string)
}

func newFakeOrchestrator() *fakeOrchestrator {
	return &fakeOrchestrator{received: make(chan orchRequest, 1000)}
}

func (f *fakeOrchestrator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := orchRequest{r.Proto, r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body)}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	answer := f.answer
	f.mu.Unlock()
	f.received <- req
	status, text := http.StatusOK, "ok"
	if answer != nil {
		status, text = answer(req)
	}
	w.Header().Set("Content-Type", "application/json") // as go-livepeer does, even for "ok"
	w.WriteHeader(status)
	io.WriteString(w, text)
}

func (f *fakeOrchestrator) all() []orchRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]orchRequest(nil), f.requests...)
}

// startTLSOrchestrator serves f over HTTPS with HTTP/2 and a self-signed
// certificate, as orchestrators do.
func startTLSOrchestrator(t *testing.T, f *fakeOrchestrator) *httptest.Server {
	ts := httptest.NewUnstartedServer(f)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// TestCapabilityJSONMatchesReference: wire.ExternalCapability encodes the recorded
// registrations byte for byte (keys, order, token left out when empty).
func TestCapabilityJSONMatchesReference(t *testing.T) {
	_, registrations := loadReference(t)
	for _, reg := range registrations {
		var c wire.ExternalCapability
		if err := json.Unmarshal([]byte(reg.Body), &c); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != reg.Body {
			t.Errorf("%s:\n got %s\nwant %s", reg.Scenario, b, reg.Body)
		}
	}
}

// TestRegisterSendsWhatTheReferenceSent: the request on the wire is the
// recorded one: POST /capability/register over HTTP/2 and TLS, the raw
// secret as Authorization, JSON body with the same bytes.
func TestRegisterSendsWhatTheReferenceSent(t *testing.T) {
	_, registrations := loadReference(t)
	f := newFakeOrchestrator()
	ts := startTLSOrchestrator(t, f)
	ctx := waitCtx(t)
	for _, reg := range registrations {
		var c wire.ExternalCapability
		json.Unmarshal([]byte(reg.Body), &c)
		if err := Register(ctx, ts.URL, reg.Authorization, c, InsecureSkipVerify()); err != nil {
			t.Fatalf("%s: %v", reg.Scenario, err)
		}
		got := <-f.received
		want := orchRequest{"HTTP/2.0", "POST", "/capability/register", reg.Authorization, "application/json", reg.Body}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", reg.Scenario, got, want)
		}
	}

	if err := Unregister(ctx, ts.URL+"/", "byoc-secret-123", "reverse-text-paid", InsecureSkipVerify()); err != nil {
		t.Fatal(err)
	}
	got := <-f.received
	want := orchRequest{"HTTP/2.0", "POST", "/capability/unregister", "byoc-secret-123", "text/plain; charset=utf-8", "reverse-text-paid"}
	if got != want {
		t.Errorf("unregister:\n got %+v\nwant %+v", got, want)
	}
}

func TestRegisterTrustsOnlyWhatItIsTold(t *testing.T) {
	f := newFakeOrchestrator()
	ts := startTLSOrchestrator(t, f)
	c := wire.ExternalCapability{Name: "reverse", URL: "http://127.0.0.1:1/reverse", Capacity: 1}
	ctx := waitCtx(t)

	err := Register(ctx, ts.URL, "s", c)
	if err == nil || !strings.Contains(err.Error(), "certificate is not trusted") {
		t.Errorf("self-signed certificate without opting in: %v, want a verification error with a hint", err)
	}
	if len(f.all()) != 0 {
		t.Error("the orchestrator got a request over an unverified connection")
	}

	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	if err := Register(ctx, ts.URL, "s", c, WithRootCAs(pool)); err != nil {
		t.Errorf("with the certificate trusted: %v", err)
	}
	if err := Register(ctx, ts.URL, "s", c, WithHTTPClient(ts.Client())); err != nil {
		t.Errorf("with the test server's client: %v", err)
	}
}

func TestRegisterPlainHTTP(t *testing.T) {
	f := newFakeOrchestrator()
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	c := wire.ExternalCapability{Name: "echo", URL: "http://127.0.0.1:1/echo", Capacity: 2, Currency: "wei", Token: "tok"}
	if err := Register(waitCtx(t), ts.URL, "secret", c); err != nil {
		t.Fatal(err)
	}
	got := <-f.received
	if got.proto != "HTTP/1.1" || got.authorization != "secret" ||
		got.body != `{"name":"echo","url":"http://127.0.0.1:1/echo","capacity":2,"price_per_unit":0,"price_scaling":0,"currency":"wei","token":"tok"}` {
		t.Errorf("got %+v", got)
	}
}

func TestRegisterRefused(t *testing.T) {
	f := newFakeOrchestrator()
	f.answer = func(orchRequest) (int, string) { return http.StatusBadRequest, "invalid authorization\n" }
	ts := startTLSOrchestrator(t, f)
	c := wire.ExternalCapability{Name: "reverse", URL: "http://127.0.0.1:1/reverse", Capacity: 1}
	err := Register(waitCtx(t), ts.URL, "wrong", c, InsecureSkipVerify())
	oe, ok := errors.AsType[*OrchestratorError](err)
	if !ok {
		t.Fatalf("error %v (%T), want *OrchestratorError", err, err)
	}
	if oe.StatusCode != 400 || oe.Body != "invalid authorization" || oe.Op != "register" || oe.Capability != "reverse" ||
		oe.URL != ts.URL+"/capability/register" {
		t.Errorf("%+v", oe)
	}
	want := `register capability "reverse" at ` + ts.URL + `/capability/register: orchestrator answered 400 Bad Request: invalid authorization`
	if err.Error() != want {
		t.Errorf("message\n %s\nwant\n %s", err, want)
	}

	err = Unregister(waitCtx(t), ts.URL, "wrong", "reverse", InsecureSkipVerify())
	if oe, ok := errors.AsType[*OrchestratorError](err); !ok || oe.Op != "unregister" || oe.StatusCode != 400 {
		t.Errorf("unregister: %v", err)
	}
}

func TestRegisterUnreachable(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	c := wire.ExternalCapability{Name: "reverse", URL: "http://127.0.0.1:1/reverse", Capacity: 1}
	err := Register(waitCtx(t), url, "s", c)
	if err == nil || !strings.Contains(err.Error(), `register capability "reverse" at `+url+"/capability/register") {
		t.Errorf("got %v", err)
	}
}

func TestRegisterHonoursContext(t *testing.T) {
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(block) })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Register(ctx, ts.URL, "s", wire.ExternalCapability{Name: "x", URL: "http://h/x", Capacity: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}
}

func TestCapabilityValidate(t *testing.T) {
	ok := wire.ExternalCapability{Name: "reverse", URL: "http://127.0.0.1:8900/reverse", Capacity: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*wire.ExternalCapability){
		func(c *wire.ExternalCapability) { c.Name = " " },
		func(c *wire.ExternalCapability) { c.Capacity = 0 },
		func(c *wire.ExternalCapability) { c.PricePerUnit = -1 },
		func(c *wire.ExternalCapability) { c.PriceScaling = -1 },
		func(c *wire.ExternalCapability) { c.URL = "" },
		func(c *wire.ExternalCapability) { c.URL = "127.0.0.1:8900" },
		func(c *wire.ExternalCapability) { c.URL = "ftp://h/x" },
		func(c *wire.ExternalCapability) { c.URL = "http:///x" },
	} {
		c := ok
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
		if err := Register(context.Background(), "http://127.0.0.1:1", "s", c); err == nil {
			t.Errorf("Register sent %+v", c)
		}
	}
}

func TestRegistrationRollsBackOnFailure(t *testing.T) {
	f := newFakeOrchestrator()
	f.answer = func(r orchRequest) (int, string) {
		if strings.Contains(r.body, `"name":"b"`) {
			return http.StatusInternalServerError, "boom"
		}
		return http.StatusOK, "ok"
	}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	reg := Registration{Orchestrator: ts.URL, Secret: "s", Capabilities: []wire.ExternalCapability{
		{Name: "a", URL: "http://h/a", Capacity: 1},
		{Name: "b", URL: "http://h/b", Capacity: 1},
		{Name: "c", URL: "http://h/c", Capacity: 1},
	}}
	err := reg.Register(waitCtx(t))
	if oe, ok := errors.AsType[*OrchestratorError](err); !ok || oe.Capability != "b" {
		t.Fatalf("got %v", err)
	}
	var calls []string
	for _, r := range f.all() {
		calls = append(calls, r.path+" "+r.body)
	}
	want := []string{
		"/capability/register " + `{"name":"a","url":"http://h/a","capacity":1,"price_per_unit":0,"price_scaling":0,"currency":""}`,
		"/capability/register " + `{"name":"b","url":"http://h/b","capacity":1,"price_per_unit":0,"price_scaling":0,"currency":""}`,
		"/capability/unregister a",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls\n%s\nwant\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}

	f.answer = nil
	if err := reg.Unregister(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	f.answer = func(orchRequest) (int, string) { return http.StatusBadRequest, "invalid authorization" }
	if err := reg.Unregister(waitCtx(t)); err == nil || strings.Count(err.Error(), "invalid authorization") != 3 {
		t.Errorf("Unregister should report every failure: %v", err)
	}
}

func TestRegistrationKeepAlive(t *testing.T) {
	f := newFakeOrchestrator()
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	reg := Registration{Orchestrator: ts.URL, Secret: "s", Capabilities: []wire.ExternalCapability{
		{Name: "a", URL: "http://h/a", Capacity: 1},
		{Name: "b", URL: "http://h/b", Capacity: 1},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan error, 100)
	stopped := make(chan struct{})
	go func() {
		reg.KeepAlive(ctx, time.Millisecond, func(err error) { reports <- err })
		close(stopped)
	}()
	for range 3 {
		select {
		case err := <-reports:
			if err != nil {
				t.Fatal(err)
			}
		case <-waitCtx(t).Done():
			t.Fatal("no keep-alive round")
		}
	}
	cancel()
	<-stopped
	if n := len(f.all()); n < 6 {
		t.Errorf("%d registrations after 3 rounds of 2 capabilities", n)
	}
}

// TestServerCapabilityRegistersAndWorks: what Server.Capability registers
// is what an orchestrator then calls, token included.
func TestServerCapabilityRegistersAndWorks(t *testing.T) {
	srv := startWorker(t, Config{Token: "tok"})
	f := newFakeOrchestrator()
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	c := srv.Capability(Reverse)
	c.PricePerUnit = 1000
	if err := Register(waitCtx(t), ts.URL, "s", c); err != nil {
		t.Fatal(err)
	}
	var got wire.ExternalCapability
	if err := json.Unmarshal([]byte((<-f.received).body), &got); err != nil {
		t.Fatal(err)
	}
	want := wire.ExternalCapability{Name: "reverse", Description: Describe(Reverse), URL: srv.URL() + "/reverse", Capacity: 4,
		PricePerUnit: 1000, PriceScaling: 1, Currency: "wei", Token: "tok"}
	if got != want {
		t.Fatalf("registered %+v, want %+v", got, want)
	}
	resp, body := post(t, got.URL+"/v1/reverse", "application/json", `{"text":"ab"}`, "Authorization", "Bearer "+got.Token)
	if resp.StatusCode != 200 || body != `{"original":"ab","reversed":"ba"}`+"\n" {
		t.Errorf("job at the registered URL: %d %q", resp.StatusCode, body)
	}
}

// A registration stopped midway (its context canceled: the worker was
// stopped) unregisters what it registered, and the capability whose answer
// it no longer waited for, though the context is gone.
func TestWorkerStoppedWhileRegistering(t *testing.T) {
	f := newFakeOrchestrator()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrived := make(chan struct{})
	f.answer = func(r orchRequest) (int, string) {
		if r.path == "/capability/register" && strings.Contains(r.body, `"name":"b"`) {
			close(arrived) // registered; the answer is lost to the stop
			cancel()
		}
		return http.StatusOK, "ok"
	}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	reg := Registration{Orchestrator: ts.URL, Secret: "s", Capabilities: []wire.ExternalCapability{
		{Name: "a", URL: "http://h/a", Capacity: 1},
		{Name: "b", URL: "http://h/b", Capacity: 1},
		{Name: "c", URL: "http://h/c", Capacity: 1},
	}}
	err := reg.Register(ctx)
	<-arrived
	// Either b's call or, if b's answer beat the cancel, c's failed.
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Register = %v, want context.Canceled", err)
	}
	var unregistered []string
	for _, r := range f.all() {
		if r.path == "/capability/unregister" {
			unregistered = append(unregistered, r.body)
		}
	}
	if got := strings.Join(unregistered, ","); got != "a,b" && got != "a,b,c" {
		t.Errorf("unregistered %q, want a and b (and c, if its call was under way)", got)
	}
}
