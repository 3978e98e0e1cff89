package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/wire"
)

// workerTestOrch is a fake orchestrator that records registration calls.
type workerTestOrch struct {
	calls chan workerTestCall
}

type workerTestCall struct {
	path, authorization string
	capability          wire.ExternalCapability // register
	name                string                  // unregister
}

func newWorkerTestOrch(t *testing.T, tls bool) (*workerTestOrch, *httptest.Server) {
	o := &workerTestOrch{calls: make(chan workerTestCall, 1000)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		call := workerTestCall{path: r.URL.Path, authorization: r.Header.Get("Authorization")}
		if r.URL.Path == "/capability/register" {
			json.Unmarshal(body, &call.capability)
		} else {
			call.name = string(body)
		}
		o.calls <- call
		io.WriteString(w, "ok")
	})
	var ts *httptest.Server
	if tls {
		ts = httptest.NewTLSServer(h)
	} else {
		ts = httptest.NewServer(h)
	}
	t.Cleanup(ts.Close)
	return o, ts
}

func (o *workerTestOrch) next(t *testing.T) workerTestCall {
	t.Helper()
	select {
	case c := <-o.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the fake orchestrator got no call")
		return workerTestCall{}
	}
}

// workerLogBuffer is a bytes.Buffer safe to write from the worker's goroutines
// while the test reads it; wrote gets a signal after each write.
type workerLogBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newWorkerLogBuffer() *workerLogBuffer { return &workerLogBuffer{wrote: make(chan struct{}, 1)} }

func (l *workerLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

// waitFor waits until the log holds n lines containing text.
func (l *workerLogBuffer) waitFor(t *testing.T, text string, n int) {
	t.Helper()
	for strings.Count(l.String(), text) < n {
		select {
		case <-l.wrote:
		case <-time.After(10 * time.Second):
			t.Fatalf("the worker's log has not %d lines with %q:\n%s", n, text, l.String())
		}
	}
}

func (l *workerLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWorkerCommandRegistersServesAndUnregisters(t *testing.T) {
	orch, ts := newWorkerTestOrch(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newWorkerLogBuffer()
	done := make(chan error, 1)
	go func() {
		done <- runWorker(ctx, []string{"--listen", "127.0.0.1:0", "--orchestrator", ts.URL, "--secret", "s3cret",
			"--insecure", "--capabilities", "reverse,sse,reverse", "--name-prefix", "demo-", "--capacity", "2",
			"--price-per-unit", "1000", "--price-scaling", "3", "--currency", "WEI", "--token", "tok"},
			io.Discard, stderr)
	}()

	var caps []wire.ExternalCapability
	for _, want := range []string{"demo-reverse", "demo-sse"} {
		call := orch.next(t)
		c := call.capability
		if call.path != "/capability/register" || call.authorization != "s3cret" || c.Name != want ||
			c.Capacity != 2 || c.PricePerUnit != 1000 || c.PriceScaling != 3 || c.Currency != "WEI" || c.Token != "tok" ||
			!strings.HasPrefix(c.URL, "http://127.0.0.1:") || c.Description == "" {
			t.Fatalf("registration %+v, want %s", call, want)
		}
		caps = append(caps, c)
	}
	if !strings.HasSuffix(caps[0].URL, "/reverse") || !strings.HasSuffix(caps[1].URL, "/sse") {
		t.Errorf("capability URLs %s, %s", caps[0].URL, caps[1].URL)
	}

	// The registered URL works, with the registered token, as the
	// orchestrator would call it.
	req, _ := http.NewRequest(http.MethodPost, caps[0].URL, strings.NewReader(`{"text":"abc"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+caps[0].Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"original":"abc","reversed":"cba"}`+"\n" {
		t.Errorf("job: %d %q", resp.StatusCode, body)
	}

	// Stopped once registered: every capability is unregistered. (Stopped
	// while registering, it unregisters too: TestWorkerStoppedWhileRegistering.)
	stderr.waitFor(t, `msg=registered`, 2)
	cancel() // Ctrl-C
	var unregistered []string
	for range 2 {
		call := orch.next(t)
		if call.path != "/capability/unregister" || call.authorization != "s3cret" {
			t.Errorf("after stop: %+v", call)
		}
		unregistered = append(unregistered, call.name)
	}
	if strings.Join(unregistered, ",") != "demo-reverse,demo-sse" {
		t.Errorf("unregistered %v", unregistered)
	}
	if err := <-done; err != nil {
		t.Errorf("runWorker: %v", err)
	}
	if _, err := http.Post(caps[0].URL, "text/plain", strings.NewReader("x")); err == nil {
		t.Error("worker still serving after it stopped")
	}
	for _, want := range []string{"worker serving", "registered", "unregistered"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestWorkerCommandReregisters(t *testing.T) {
	orch, ts := newWorkerTestOrch(t, false)
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("from-file\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runWorker(ctx, []string{"--listen", "127.0.0.1:0", "--orchestrator", ts.URL, "--secret-file", secretFile,
			"--capabilities", "echo", "--reregister-every", "5ms", "--advertise-url", "http://worker.internal:8900/"},
			io.Discard, io.Discard)
	}()
	for range 3 { // the first registration and two renewals
		call := orch.next(t)
		if call.path != "/capability/register" || call.authorization != "from-file" ||
			call.capability.Name != "echo" || call.capability.URL != "http://worker.internal:8900/echo" {
			t.Fatalf("got %+v", call)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The last call is the unregistration: no renewal after it.
	var last workerTestCall
	for len(orch.calls) > 0 {
		last = <-orch.calls
	}
	if last.path != "/capability/unregister" || last.name != "echo" {
		t.Errorf("last call %+v, want the unregistration", last)
	}
}

func TestWorkerCommandServesWithoutOrchestrator(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	stderr := newWorkerLogBuffer()
	done := make(chan error, 1)
	go func() {
		done <- runWorker(ctx, []string{"--listen", "127.0.0.1:0", "--log-format", "json"}, io.Discard, stderr)
	}()
	var url string
	for url == "" { // the first log line says where it listens
		select {
		case err := <-done:
			t.Fatalf("runWorker ended: %v", err)
		case <-stderr.wrote:
		case <-time.After(10 * time.Second):
			t.Fatal("no log line")
		}
		line, _, _ := strings.Cut(stderr.String(), "\n")
		var entry struct{ Msg, URL string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "worker serving" {
			url = entry.URL
		}
	}
	resp, err := http.Post(url+"/echo", "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWorkerCommandRegistrationRefused(t *testing.T) {
	var gotSecret string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotSecret = r.Header.Get("Authorization")
		http.Error(w, "invalid authorization", http.StatusBadRequest)
	}))
	defer ts.Close()
	t.Setenv("BYOC_ORCH_SECRET", "from-env")
	err := runWorker(context.Background(), []string{"--listen", "127.0.0.1:0", "--orchestrator", ts.URL},
		io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request: invalid authorization") {
		t.Errorf("got %v", err)
	}
	if gotSecret != "from-env" {
		t.Errorf("sent secret %q, want the one from BYOC_ORCH_SECRET", gotSecret)
	}
}

func TestWorkerCommandSelfSignedNeedsOptIn(t *testing.T) {
	_, ts := newWorkerTestOrch(t, true)
	err := runWorker(context.Background(), []string{"--listen", "127.0.0.1:0", "--orchestrator", ts.URL, "--secret", "s"},
		io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("got %v, want a certificate error", err)
	}
}

func TestWorkerCommandFlagErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	t.Setenv("BYOC_ORCH_SECRET", "")
	t.Setenv("BYOC_WORKER_TOKEN", "")
	orch := []string{"--listen", "127.0.0.1:0", "--orchestrator", "http://127.0.0.1:1", "--secret", "s"}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"--capabilities", "reverse,upper"}, `unknown capability "upper"`},
		{[]string{"--capabilities", ","}, "--capabilities is empty"},
		{[]string{"--orchestrator", "http://127.0.0.1:1"}, "--orchestrator needs --secret"},
		{[]string{"--orchestrator", "ftp://h"}, "scheme must be http or https"},
		{[]string{"--secret", "s"}, "without --orchestrator"},
		{[]string{"--secret", "s", "--secret-file", notPEM}, "not both"},
		{[]string{"--secret-file", filepath.Join(dir, "missing")}, "--secret-file"},
		{append(orch, "--capacity", "0"), "--capacity 0"},
		{append(orch, "--price-per-unit", "-1"), "--price-per-unit -1"},
		{append(orch, "--price-scaling", "0"), "--price-scaling 0"},
		{append(orch, "--currency", "USD"), `--currency "USD"`},
		{append(orch, "--advertise-url", "worker:8900"), "--advertise-url"},
		{append(orch, "--orchestrator-ca", notPEM), "no PEM certificate"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--listen", "127.0.0.1:notaport"}, "--listen"},
		{[]string{"--listen", "0.0.0.0:0", "--orchestrator", "http://127.0.0.1:1", "--secret", "s"}, "--advertise-url"},
	} {
		err := runWorker(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestWorkerCommandHelp(t *testing.T) {
	t.Setenv("BYOC_ORCH_SECRET", "never-shown")
	t.Setenv("BYOC_WORKER_TOKEN", "never-shown")
	for _, h := range []string{"-h", "--help", "-help"} {
		var stdout, stderr bytes.Buffer
		err := runWorker(context.Background(), []string{"--capacity", "2", h}, &stdout, &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: %v, want flag.ErrHelp", h, err)
		}
		for _, want := range []string{"Usage: byoc worker", "Examples:", "-orchestrator", "-insecure", "curl "} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%s: help lacks %q", h, want)
			}
		}
		if strings.Contains(stdout.String(), "never-shown") {
			t.Errorf("%s: help shows a secret from the environment", h)
		}
		if stderr.Len() != 0 {
			t.Errorf("%s: help wrote to stderr: %s", h, stderr.String())
		}
	}
}
