package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// startWorker serves a Handler built from cfg on loopback for one test.
func startWorker(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start("", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// post sends a POST and returns the response with its body read.
func post(t *testing.T, url, contentType, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// waitCtx bounds a WaitFor in a test; the worker should get there in
// milliseconds.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type referenceExchange struct {
	Scenario        string            `json:"scenario"`
	ReferenceWorker string            `json:"reference_worker"`
	Method          string            `json:"method"`
	Path            string            `json:"path"`
	RequestHeaders  map[string]string `json:"request_headers"`
	RequestBody     string            `json:"request_body"`
	Status          int               `json:"status"`
	ResponseHeaders map[string]string `json:"response_headers"`
	ResponseBody    string            `json:"response_body"`
	ResponseChunks  []string          `json:"response_chunks"`
}

type referenceRegistration struct {
	Scenario      string `json:"scenario"`
	Authorization string `json:"authorization"`
	Body          string `json:"body"`
}

func loadReference(t *testing.T) (exchanges []referenceExchange, registrations []referenceRegistration) {
	t.Helper()
	b, err := os.ReadFile("testdata/reference-exchanges.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		WorkerExchanges []referenceExchange     `json:"worker_exchanges"`
		Registrations   []referenceRegistration `json:"registrations"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.WorkerExchanges) == 0 || len(f.Registrations) == 0 {
		t.Fatal("testdata/reference-exchanges.json has no exchanges")
	}
	return f.WorkerExchanges, f.Registrations
}

// TestStandsInForReferenceWorkers replays what a go-livepeer orchestrator
// sent its reference workers and expects the same answers: status, header
// names, body bytes and, for SSE, the same frames one by one.
func TestStandsInForReferenceWorkers(t *testing.T) {
	exchanges, _ := loadReference(t)
	// The recorded stream starts name channels on the recording machine's
	// ports: the sessions they start must not reach whatever listens there.
	offline := &http.Client{Transport: offlineTransport{}}
	open := startWorker(t, Config{TrickleClient: offline})
	withToken := startWorker(t, Config{Token: "worker-token-abc", TrickleClient: offline})
	for _, x := range exchanges {
		t.Run(x.Scenario+x.Path, func(t *testing.T) {
			srv := open
			if x.RequestHeaders["Authorization"] != "" {
				srv = withToken
			}
			// The reference workers had one URL each; ours are under a prefix.
			url := srv.CapabilityURL(x.ReferenceWorker) + strings.TrimSuffix(x.Path, "/")
			req, err := http.NewRequest(x.Method, url, strings.NewReader(x.RequestBody))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range x.RequestHeaders {
				req.Header.Set(k, v)
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != x.Status {
				t.Errorf("status %d, reference %d", resp.StatusCode, x.Status)
			}
			if got, want := headerNames(resp.Header), headerNames(toHeader(x.ResponseHeaders)); !slices.Equal(got, want) {
				t.Errorf("response headers %v, reference %v", got, want)
			}
			for k, v := range x.ResponseHeaders {
				if k != "Content-Length" && resp.Header.Get(k) != v {
					t.Errorf("%s: %q, reference %q", k, resp.Header.Get(k), v)
				}
			}
			if x.ResponseChunks == nil {
				body, _ := io.ReadAll(resp.Body)
				if string(body) != x.ResponseBody {
					t.Errorf("body %q, reference %q", body, x.ResponseBody)
				}
				return
			}
			frames := readSSEFrames(t, resp.Body)
			if !slices.Equal(frames, x.ResponseChunks) {
				t.Errorf("SSE frames\n%q\nreference\n%q", frames, x.ResponseChunks)
			}
			// One interval between frames, as the reference's 100 ms.
			if d := time.Since(start); d < time.Duration(len(frames)-1)*defaultSSEInterval {
				t.Errorf("%d frames came in %s, faster than one per %s", len(frames), d, defaultSSEInterval)
			}
		})
	}
}

// offlineTransport fails every request without touching the network.
type offlineTransport struct{}

func (offlineTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("offline (test)")
}

func toHeader(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

// headerNames lists the header names that matter for comparison (Date and
// Content-Length vary with the transport).
func headerNames(h http.Header) []string {
	var names []string
	for k := range h {
		if k != "Date" && k != "Content-Length" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// readSSEFrames reads "...\n\n"-terminated frames until EOF.
func readSSEFrames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var frames []string
	br := bufio.NewReader(r)
	var cur strings.Builder
	for {
		line, err := br.ReadString('\n')
		cur.WriteString(line)
		if line == "\n" {
			frames = append(frames, cur.String())
			cur.Reset()
		}
		if err == io.EOF {
			if cur.Len() > 0 {
				t.Errorf("unterminated frame %q", cur.String())
			}
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestReverseText(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"Hello, Livepeer BYOC!": "!COYB reepeviL ,olleH",
		"héllo":                 "olléh",       // precomposed é
		"he\u0301llo":           "olle\u0301h", // e + combining acute stays together
		"日本語":                   "語本日",
		"a👍🏽b":                  "b👍🏽a",              // skin-tone modifier stays on its emoji
		"x👨\u200d👩\u200d👧y":     "y👨\u200d👩\u200d👧x", // zero-width-joined family is one character
		"a\r\nb":                "b\r\na",
		"❤\ufe0f!":              "!❤\ufe0f", // variation selector
	} {
		if got := ReverseText(in); got != want {
			t.Errorf("ReverseText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReverse(t *testing.T) {
	s := startWorker(t, Config{})
	url := s.CapabilityURL(Reverse)

	resp, body := post(t, url, "text/plain", "héllo wörld")
	if resp.StatusCode != 200 || body != "dlröw olléh" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("plain text: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = post(t, url, "", "abc") // no Content-Type: text
	if resp.StatusCode != 200 || body != "cba" {
		t.Errorf("no content type: %d %q", resp.StatusCode, body)
	}
	resp, body = post(t, url+"/any/suffix", "application/vnd.api+json; charset=utf-8", `{"text":"ab","other":1}`)
	if resp.StatusCode != 200 || body != `{"original":"ab","reversed":"ba"}`+"\n" {
		t.Errorf("+json with an extra field: %d %q", resp.StatusCode, body)
	}
	for _, tc := range []struct{ contentType, body, wantErr string }{
		{"application/json", `{"text":`, "not a JSON object"},
		{"application/json", `["a"]`, "not a JSON object"},
		{"application/json", `{"prompt":"hi"}`, `needs a "text" string`},
		{"application/json", `null`, `needs a "text" string`},
		{"text/plain", "\xff\xfe", "not UTF-8"},
	} {
		resp, body := post(t, url, tc.contentType, tc.body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.wantErr) {
			t.Errorf("%s %q: %d %q, want 400 with %q", tc.contentType, tc.body, resp.StatusCode, body, tc.wantErr)
		}
	}
}

func TestEcho(t *testing.T) {
	s := startWorker(t, Config{})
	resp, body := post(t, s.CapabilityURL(Echo), "application/json", `{"a":[1,2,3]}`)
	if resp.StatusCode != 200 || body != `{"a":[1,2,3]}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("json: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = post(t, s.CapabilityURL(Echo)+"/x", "", "\x00\x01raw")
	if resp.StatusCode != 200 || body != "\x00\x01raw" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("raw: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestSSEParameters(t *testing.T) {
	s := startWorker(t, Config{})
	resp, err := http.Post(s.CapabilityURL(SSE), "application/json",
		strings.NewReader(`{"text":"x","events":6,"interval_ms":1,"ignored":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	frames := readSSEFrames(t, resp.Body)
	want := []string{
		`data: {"i":0,"token":"Hello"}` + "\n\n",
		`data: {"i":1,"token":"from"}` + "\n\n",
		`data: {"i":2,"token":"SSE"}` + "\n\n",
		`data: {"i":3,"token":"x"}` + "\n\n",
		`data: {"i":4,"token":"Hello"}` + "\n\n",
		`data: {"i":5,"token":"from"}` + "\n\n",
		"data: [DONE]\n\n",
	}
	if !slices.Equal(frames, want) {
		t.Errorf("frames\n%q\nwant\n%q", frames, want)
	}

	resp, body := post(t, s.CapabilityURL(SSE), "", `{"events":0,"interval_ms":0}`)
	if resp.StatusCode != 200 || body != "data: [DONE]\n\n" {
		t.Errorf("zero events: %d %q", resp.StatusCode, body)
	}
	resp, body = post(t, s.CapabilityURL(SSE), "", "")
	if resp.StatusCode != 200 || strings.Count(body, "data: ") != 4 {
		t.Errorf("empty body, want the 3 default tokens and [DONE]: %d %q", resp.StatusCode, body)
	}

	short := startWorker(t, Config{MaxSleep: time.Second})
	for _, bad := range []string{
		`{"events":-1}`, `{"events":100001}`, `{"interval_ms":-5}`, `{"interval_ms":1001}`,
		`{"events":11,"interval_ms":100}`, `{"events":"5"}`, `{"events":1e99}`, `not json`,
	} {
		resp, body := post(t, short.CapabilityURL(SSE), "application/json", bad)
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body, "sse: ") {
			t.Errorf("%s: %d %q, want 400", bad, resp.StatusCode, body)
		}
	}
}

// TestSSEStopsWhenClientGoesAway: the handler returns as soon as the client
// hangs up, not when its 1000 events would have been sent.
func TestSSEStopsWhenClientGoesAway(t *testing.T) {
	s := startWorker(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.CapabilityURL(SSE),
		strings.NewReader(`{"events":1000,"interval_ms":500}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != `data: {"i":0,"token":"Hello"}`+"\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	hungUp := time.Now()
	cancel()
	resp.Body.Close()
	if err := s.Handler().WaitFor(waitCtx(t), func(st Stats) bool { return st.InFlight == 0 && st.Served == 1 }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(hungUp); d > 400*time.Millisecond {
		t.Errorf("handler took %s to notice the client left, want well under one 500 ms interval", d)
	}
}

func TestSleep(t *testing.T) {
	s := startWorker(t, Config{MaxSleep: time.Minute})
	start := time.Now()
	resp, body := post(t, s.CapabilityURL(Sleep), "application/json", `{"duration_ms":30}`)
	if resp.StatusCode != 200 || body != `{"slept_ms":30}`+"\n" || time.Since(start) < 30*time.Millisecond {
		t.Errorf("duration_ms: %d %q after %s", resp.StatusCode, body, time.Since(start))
	}
	resp, body = post(t, s.CapabilityURL(Sleep), "", `{"duration":"20ms"}`)
	if resp.StatusCode != 200 || body != `{"slept_ms":20}`+"\n" {
		t.Errorf("duration: %d %q", resp.StatusCode, body)
	}
	for _, bad := range []string{
		``, `{}`, `{"duration_ms":-1}`, `{"duration_ms":60001}`, `{"duration":"2m"}`, `{"duration":"-1s"}`,
		`{"duration":"soon"}`, `{"duration_ms":1,"duration":"1s"}`, `{"duraton_ms":5}`, `{"duration_ms":5} {}`,
		`{"duration_ms":1.5}`, `[]`,
	} {
		resp, body := post(t, s.CapabilityURL(Sleep), "application/json", bad)
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body, "sleep: ") {
			t.Errorf("%q: %d %q, want 400", bad, resp.StatusCode, body)
		}
	}
}

func TestSleepEndsWhenRequestIsCancelled(t *testing.T) {
	s := startWorker(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.CapabilityURL(Sleep),
			strings.NewReader(`{"duration":"10m"}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	h := s.Handler()
	if err := h.WaitFor(waitCtx(t), func(st Stats) bool { return st.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error %v, want context.Canceled", err)
	}
	if err := h.WaitFor(waitCtx(t), func(st Stats) bool { return st.InFlight == 0 && st.Served == 1 }); err != nil {
		t.Fatal(err)
	}
}

func TestFail(t *testing.T) {
	s := startWorker(t, Config{})
	url := s.CapabilityURL(Fail)
	for _, tc := range []struct {
		body       string
		wantStatus int
		wantBody   string
	}{
		{``, 500, "sample worker failing on request with 500 Internal Server Error\n"},
		{`{"status":503,"message":"busy"}`, 503, "busy\n"},
		{`{"status":401}`, 401, "sample worker failing on request with 401 Unauthorized\n"},
		{`{"status":404,"message":"404 page not found"}`, 404, "404 page not found\n"},
		{`{"status":200,"message":"fine"}`, 200, "fine\n"},
		{`{"status":199}`, 400, "fail: status must be between 200 and 599\n"},
		{`{"status":600}`, 400, "fail: status must be between 200 and 599\n"},
		{`{"code":500}`, 400, ""},
		{`{"status":`, 400, ""},
	} {
		resp, body := post(t, url, "application/json", tc.body)
		if resp.StatusCode != tc.wantStatus || (tc.wantBody != "" && body != tc.wantBody) {
			t.Errorf("%s: %d %q, want %d %q", tc.body, resp.StatusCode, body, tc.wantStatus, tc.wantBody)
		}
		if tc.wantStatus >= 400 && resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", tc.body, resp.Header.Get("Content-Type"))
		}
	}

	resp, err := http.Post(url, "application/json", strings.NewReader(`{"close_connection":true}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("close_connection answered %d, want a transport error", resp.StatusCode)
	}
	if err := s.Handler().WaitFor(waitCtx(t), func(st Stats) bool { return st.InFlight == 0 }); err != nil {
		t.Fatal(err)
	}
}

func TestBearerToken(t *testing.T) {
	s := startWorker(t, Config{Token: "s3cret"})
	url := s.CapabilityURL(Echo)
	for _, auth := range []string{"", "s3cret", "Bearer wrong", "Bearer s3cre", "Basic s3cret", "Bearer"} {
		resp, body := post(t, url, "text/plain", "hi", "Authorization", auth)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "bearer token") ||
			resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d %q, want 401", auth, resp.StatusCode, body)
		}
	}
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret"} {
		if resp, body := post(t, url, "text/plain", "hi", "Authorization", auth); resp.StatusCode != 200 || body != "hi" {
			t.Errorf("Authorization %q: %d %q, want 200", auth, resp.StatusCode, body)
		}
	}
	// Stream calls need it too; the health check does not.
	if resp, _ := post(t, url+"/stream/start", "application/json", "{}"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("stream start without token: %d", resp.StatusCode)
	}
	if resp, err := http.Get(s.URL() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if st := s.Handler().Stats(); st.Unauthorized != 7 || st.Served != 9 {
		t.Errorf("stats %+v, want 7 unauthorized of 9 served", st)
	}
}

func TestBodyLimit(t *testing.T) {
	s := startWorker(t, Config{MaxBodyBytes: 1024})
	want := "request body too large: this worker accepts at most 1024 bytes\n"
	for _, name := range Names() {
		resp, body := post(t, s.CapabilityURL(name), "application/json", strings.Repeat("x", 1025))
		if resp.StatusCode != http.StatusRequestEntityTooLarge || body != want {
			t.Errorf("%s: %d %q, want 413 %q", name, resp.StatusCode, body, want)
		}
	}
	// Without a Content-Length the limit is found while reading.
	resp, err := http.Post(s.CapabilityURL(Echo), "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("y", 2000))))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(body) != want {
		t.Errorf("chunked: %d %q", resp.StatusCode, body)
	}
	// At the limit is fine.
	if resp, body := post(t, s.CapabilityURL(Echo), "text/plain", strings.Repeat("z", 1024)); resp.StatusCode != 200 || len(body) != 1024 {
		t.Errorf("at the limit: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestRouting(t *testing.T) {
	s := startWorker(t, Config{})
	for _, path := range []string{"/", "/nope", "/reversed"} {
		resp, body := post(t, s.URL()+path, "text/plain", "x")
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "reverse, echo, sse, sleep, fail") {
			t.Errorf("POST %s: %d %q, want 404 naming the capabilities", path, resp.StatusCode, body)
		}
	}
	resp, err := http.Get(s.CapabilityURL(Reverse))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /reverse: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, err = http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	index, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, n := range Names() {
		if !strings.Contains(string(index), "/"+n) {
			t.Errorf("index does not list /%s:\n%s", n, index)
		}
	}
	post(t, s.CapabilityURL(Echo)+"/deep/sub/path", "", "x")
	st := s.Handler().Stats()
	if st.Served != 2 || st.ByCapability[Reverse] != 1 || st.ByCapability[Echo] != 1 || st.InFlight != 0 {
		t.Errorf("stats %+v, want the GET /reverse and the echo counted, not the 404s and the index", st)
	}
}

func TestStreamCalls(t *testing.T) {
	s := startWorker(t, Config{})
	url := s.CapabilityURL(Reverse) // any capability prefix takes stream calls
	resp, body := post(t, url+"/stream/start", "application/json", `{"params":{}}`, "X-Stream-Id", "s1")
	if resp.StatusCode != 200 || body != `{"received_bytes":13,"started":true}`+"\n" {
		t.Errorf("start: %d %q", resp.StatusCode, body)
	}
	post(t, url+"/stream/start", "application/json", `{}`, "X-Stream-Id", "s2")
	if n := s.Handler().Stats().ActiveStreams; n != 2 {
		t.Errorf("%d active streams, want 2", n)
	}
	if resp, body := post(t, url+"/stream/params", "application/json", `{}`, "X-Stream-Id", "s1"); body != `{"updated":true}` {
		t.Errorf("params: %d %q", resp.StatusCode, body)
	}
	if resp, body := post(t, url+"/stream/stop", "", "bye", "X-Stream-Id", "s1"); body != `{"stopped":true}` {
		t.Errorf("stop: %d %q", resp.StatusCode, body)
	}
	if n := s.Handler().Stats().ActiveStreams; n != 1 {
		t.Errorf("%d active streams after a stop, want 1", n)
	}
}

// TestOddBodies: whatever arrives, the answer is a 2xx or a 4xx with a
// message, never a dropped connection or a 500.
func TestOddBodies(t *testing.T) {
	s := startWorker(t, Config{MaxSleep: 50 * time.Millisecond})
	bodies := []string{"", " ", "null", "[]", "{}", `"str"`, "0", "-1", "{}{}", "\x00", "\xff",
		`{"events":1e99}`, `{"interval_ms":"x"}`, `{"duration_ms":9223372036854775807}`,
		`{"interval_ms":9223372036854775807}`, `{"status":-9223372036854775808}`, `{"text":null}`,
		strings.Repeat("[", 10000)}
	for _, name := range Names() {
		for _, ct := range []string{"application/json", "text/plain", "garbage/;;"} {
			for _, b := range bodies {
				resp, body := post(t, s.CapabilityURL(name), ct, b)
				if resp.StatusCode >= 500 && name != Fail || resp.StatusCode >= 400 && body == "" {
					t.Errorf("%s %s %q: %d %q", name, ct, b, resp.StatusCode, body)
				}
			}
		}
	}
}

func TestCrash(t *testing.T) {
	s := startWorker(t, Config{})
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(s.CapabilityURL(Sleep), "application/json", strings.NewReader(`{"duration":"10m"}`))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	if err := s.Handler().WaitFor(waitCtx(t), func(st Stats) bool { return st.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	s.Crash()
	if err := <-errc; err == nil {
		t.Error("the request in flight got an answer from a crashed worker")
	}
	if resp, err := http.Post(s.CapabilityURL(Echo), "text/plain", strings.NewReader("x")); err == nil {
		resp.Body.Close()
		t.Error("a crashed worker accepted a new request")
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Crash")
	}
	if s.Err() != nil {
		t.Errorf("Err after Crash: %v", s.Err())
	}
	if err := s.Handler().WaitFor(waitCtx(t), func(st Stats) bool { return st.InFlight == 0 }); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownLetsRequestsFinish(t *testing.T) {
	s, err := Start("127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Post(s.CapabilityURL(Sleep), "application/json", strings.NewReader(`{"duration_ms":50}`))
		if err != nil {
			resc <- result{err: err}
			return
		}
		resp.Body.Close()
		resc <- result{status: resp.StatusCode}
	}()
	if err := s.Handler().WaitFor(waitCtx(t), func(st Stats) bool { return st.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if r := <-resc; r.err != nil || r.status != 200 {
		t.Errorf("request during shutdown: %d %v", r.status, r.err)
	}
}

func TestStartBadAddress(t *testing.T) {
	if _, err := Start("256.0.0.1:x", Config{}); err == nil {
		t.Error("Start on a bad address succeeded")
	}
}
