package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/trickle"
)

// streamRig is a trickle server with one stream's five channels, as an
// orchestrator creates them at start, and a worker whose status events
// tick when the test says.
type streamRig struct {
	t      *testing.T
	ch     *trickle.Server
	base   string // channel URL prefix
	worker *Server
	ticks  chan time.Time
}

func newStreamRig(t *testing.T, id string) *streamRig {
	t.Helper()
	ch := trickle.NewServer(trickle.Config{BasePath: "/ai/trickle/", SweepInterval: -1})
	hs := httptest.NewServer(ch)
	t.Cleanup(func() { ch.Shutdown(); hs.Close() })
	for _, c := range []struct{ suffix, mime string }{
		{"", "video/MP2T"}, {"-out", "video/MP2T"}, {"-control", "application/json"},
		{"-events", "application/json"}, {"-data", "application/jsonl"},
	} {
		if err := ch.Create(id+c.suffix, trickle.WithMIME(c.mime)); err != nil {
			t.Fatal(err)
		}
	}
	r := &streamRig{t: t, ch: ch, base: hs.URL + "/ai/trickle/" + id, ticks: make(chan time.Time)}
	r.worker = startWorker(t, Config{Token: "tok", StreamTicker: func(time.Duration) (<-chan time.Time, func()) {
		return r.ticks, func() {}
	}})
	return r
}

// startBody is what an orchestrator sends to /stream/start (keys sorted,
// as Go marshals a map), with the client's params.
func (r *streamRig) startBody(id, params string) string {
	return fmt.Sprintf(`{"control_url":%q,"data_url":%q,"events_url":%q,"gateway_request_id":%q,`+
		`"params":%s,"publish_url":%q,"subscribe_url":%q}`,
		r.base+"-control", r.base+"-data", r.base+"-events", id, params, r.base+"-out", r.base)
}

func (r *streamRig) call(capability, verb, id, body string) (int, string) {
	r.t.Helper()
	resp, b := post(r.t, r.worker.CapabilityURL(capability)+"/stream/"+verb, "application/json", body,
		"X-Stream-Id", id, "Authorization", "Bearer tok")
	return resp.StatusCode, b
}

func (r *streamRig) pub(suffix string) *trickle.Publisher {
	p, err := trickle.NewPublisher(trickle.PublisherConfig{URL: r.base + suffix})
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *streamRig) sub(suffix string) *trickle.Subscriber {
	s, err := trickle.NewSubscriber(trickle.SubscriberConfig{URL: r.base + suffix, Start: 0})
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

func write(t *testing.T, p *trickle.Publisher, s string) {
	t.Helper()
	if _, _, err := p.Write(context.Background(), strings.NewReader(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

func read(t *testing.T, s *trickle.Subscriber) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seg, err := s.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	defer seg.Body.Close()
	b, err := io.ReadAll(seg.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readEvent reads events until one of the given type comes.
func readEvent(t *testing.T, s *trickle.Subscriber, typ string) map[string]any {
	t.Helper()
	for {
		var e map[string]any
		if err := json.Unmarshal([]byte(read(t, s)), &e); err != nil {
			t.Fatal(err)
		}
		if e["type"] == typ {
			return e
		}
	}
}

func TestStreamSession(t *testing.T) {
	r := newStreamRig(t, "cam1")
	in, out, data, events, control := r.pub(""), r.sub("-out"), r.sub("-data"), r.sub("-events"), r.pub("-control")

	code, body := r.call(Echo, "start", "cam1", r.startBody("cam1", `{"transform":"upper"}`))
	if code != 200 || !strings.Contains(body, `"started":true`) {
		t.Fatalf("start: %d %q", code, body)
	}
	if e := readEvent(t, events, "started"); e["stream_id"] != "cam1" {
		t.Fatalf("started event %v", e)
	}
	write(t, in, "hello, stream")
	if got := read(t, out); got != "HELLO, STREAM" {
		t.Fatalf("output %q", got)
	}
	if got := read(t, data); got != `{"bytes":13,"seq":0,"transform":"upper"}`+"\n" {
		t.Fatalf("data %q", got)
	}

	// An update through the orchestrator (/stream/params) changes the transform.
	if code, body := r.call(Echo, "params", "cam1", `{"transform":"reverse-bytes"}`); code != 200 || body != `{"updated":true}` {
		t.Fatalf("params: %d %q", code, body)
	}
	readEvent(t, events, "params_updated")
	write(t, in, "abc")
	if got := read(t, out); got != "cba" {
		t.Fatalf("after params: %q", got)
	}
	read(t, data)

	// So does a message on the control channel; keepalives are skipped.
	write(t, control, `{"keep":"alive"}`)
	write(t, control, `{"params":{"transform":"echo"}}`)
	readEvent(t, events, "params_updated")
	write(t, in, "as is")
	if got := read(t, out); got != "as is" {
		t.Fatalf("after control: %q", got)
	}

	// A status event on each tick (once the third segment is counted).
	if err := r.worker.Handler().WaitFor(waitCtx(t), func(s Stats) bool { return s.StreamSegments == 3 }); err != nil {
		t.Fatal(err)
	}
	r.ticks <- time.Now()
	st := readEvent(t, events, "status")
	if st["segments_out"] != float64(3) || st["transform"] != "echo" {
		t.Fatalf("status %v", st)
	}

	// Stop: the last event is written before the answer, and input after it
	// is not transformed.
	if code, body := r.call(Echo, "stop", "cam1", ""); code != 200 || body != `{"stopped":true}` {
		t.Fatalf("stop: %d %q", code, body)
	}
	if e := readEvent(t, events, "stopped"); e["segments_in"] != float64(3) {
		t.Fatalf("stopped event %v", e)
	}
	write(t, in, "after stop")
	if r.worker.Handler().Stats().ActiveStreams != 0 {
		t.Fatal("stream still active")
	}
	// The output has nothing past segment 2: its next position is still 3.
	resp, next := getText(t, r.base+"-out/next")
	if resp != 200 || next != "3" {
		t.Fatalf("output next after stop: %d %q", resp, next)
	}
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httptestClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var httptestClient = trickle.NewHTTPClient(false)

// The default transform follows the capability; a bad start is a 400 and
// starts nothing; the input channel closing ends the media with an event.
func TestStreamStartRules(t *testing.T) {
	r := newStreamRig(t, "s2")
	events, out := r.sub("-events"), r.sub("-out")
	for _, c := range []struct{ body, want string }{
		{`{"transform":"sideways"}`, "unknown transform"},
		{`{"subscribe_url":"ftp://x/y"}`, "not an http(s) URL"},
		{`{"params":{"transform":7}}`, ""}, // not a transform of ours: the default
	} {
		code, body := r.call(Reverse, "start", "bad", c.body)
		if c.want == "" {
			if code != 200 {
				t.Errorf("start %s: %d %q", c.body, code, body)
			}
			r.call(Reverse, "stop", "bad", "")
			continue
		}
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("start %s: %d %q, want 400 with %q", c.body, code, body, c.want)
		}
	}
	if code, body := r.call(Reverse, "start", "", "{}"); code != 400 || !strings.Contains(body, "X-Stream-Id") {
		t.Errorf("start without an ID: %d %q", code, body)
	}

	if code, _ := r.call(Reverse, "start", "s2", r.startBody("s2", `{}`)); code != 200 {
		t.Fatal(code)
	}
	readEvent(t, events, "started")
	write(t, r.pub(""), "stressed")
	if got := read(t, out); got != "desserts" {
		t.Fatalf("reverse capability's stream: %q", got)
	}
	if err := r.ch.Close("s2"); err != nil {
		t.Fatal(err)
	}
	readEvent(t, events, "input_ended")
	r.call(Reverse, "stop", "s2", "")
	readEvent(t, events, "stopped")
}
