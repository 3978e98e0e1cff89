package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/trickle"
	"byoc/wire"
)

// mediaWorker is a stream worker that upper-cases its input channel into
// its output channel, and publishes one status event and one data line.
type mediaWorker struct {
	t   *testing.T
	ctx context.Context
	// gate, when set, holds /stream/start (and so the orchestrator's
	// start) until it is closed; reached is closed when a start arrives.
	gate, reached chan struct{}
}

func (mw *mediaWorker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if !strings.HasSuffix(r.URL.Path, "/stream/start") {
		return
	}
	if mw.gate != nil {
		close(mw.reached)
		select {
		case <-mw.gate:
		case <-mw.ctx.Done():
			return
		}
	}
	var u map[string]any
	json.Unmarshal(b, &u)
	in, _ := u["subscribe_url"].(string)
	out, _ := u["publish_url"].(string)
	events, _ := u["events_url"].(string)
	data, _ := u["data_url"].(string)
	client := trickle.NewHTTPClient(true)
	go func() {
		sub, err1 := trickle.NewSubscriber(trickle.SubscriberConfig{URL: in, Client: client})
		pub, err2 := trickle.NewPublisher(trickle.PublisherConfig{URL: out, Client: client})
		if err1 != nil || err2 != nil {
			return
		}
		trickle.Relay(mw.ctx, sub, pub, func(_ int, r io.Reader) io.Reader {
			b, _ := io.ReadAll(r)
			return bytes.NewReader(bytes.ToUpper(b))
		})
	}()
	go func() {
		ev, _ := trickle.NewPublisher(trickle.PublisherConfig{URL: events, Client: client, ContentType: "application/json"})
		ev.Write(mw.ctx, strings.NewReader(`{"type":"status","state":"LOADED"}`))
		if data == "" {
			return // no data output asked for
		}
		d, _ := trickle.NewPublisher(trickle.PublisherConfig{URL: data, Client: client, ContentType: "application/jsonl"})
		d.Write(mw.ctx, strings.NewReader("{\"n\":1}\n{\"n\":2}\n"))
	}()
}

// Media through the gateway: the client publishes segments to the
// gateway's input channel, the gateway relays them to the orchestrator,
// the worker transforms them, and the client reads them back from the
// gateway's output channel; the worker's status event shows in the
// stream's status; /data relays the data channel as server-sent events.
func TestStreamMediaThroughGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := startOrch(t, nil)
	registerStream(t, o, "upper", &mediaWorker{t: t, ctx: ctx}, 4)
	gw := startGateway(t, testnet.KeyA, []string{o.URL}, func(c *gateway.NodeConfig) {
		c.Gateway.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	})
	h, _ := wire.EncodeJobRequestHeader(&wire.JobRequest{Request: `{}`, Capability: "upper", TimeoutSeconds: 30,
		Parameters: `{"enable_video_ingress":true,"enable_video_egress":true,"enable_data_output":true}`})
	r, _ := http.NewRequest(http.MethodPost, gw.URL+"/process/stream/start", strings.NewReader(`{"stream_id":"media1","params":"{}"}`))
	r.Header.Set(wire.HeaderJobRequest, h)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	publish, subscribe := resp.Header.Get(wire.HeaderPublishURL), resp.Header.Get(wire.HeaderSubscribeURL)
	if resp.StatusCode != http.StatusOK || publish != gw.URL+"/ai/trickle/media1" || subscribe != gw.URL+"/ai/trickle/media1-out" {
		t.Fatalf("start: %d publish %q subscribe %q", resp.StatusCode, publish, subscribe)
	}
	if st := gw.StreamState(ctx, "media1"); st != "running" {
		t.Fatalf("stream: %s", st)
	}
	client := trickle.NewHTTPClient(false)
	pub, _ := trickle.NewPublisher(trickle.PublisherConfig{URL: publish, Client: client})
	sub, _ := trickle.NewSubscriber(trickle.SubscriberConfig{URL: subscribe, Client: client})
	for i, text := range []string{"hello", "byoc streams"} {
		if _, _, err := pub.Write(ctx, strings.NewReader(text)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		seg, err := sub.Read(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		got, _ := io.ReadAll(seg.Body)
		seg.Body.Close()
		if string(got) != strings.ToUpper(text) {
			t.Errorf("segment %d: %q, want %q", i, got, strings.ToUpper(text))
		}
	}

	dr, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.URL+"/process/stream/media1/data", nil)
	dresp, err := http.DefaultClient.Do(dr)
	if err != nil || dresp.StatusCode != http.StatusOK || dresp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("data: %v %v", dresp, err)
	}
	br := bufio.NewReader(dresp.Body)
	var lines []string
	for len(lines) < 2 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("data stream: %v (got %q)", err, lines)
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if lines[0] != `data: {"n":1}` || lines[1] != `data: {"n":2}` {
		t.Errorf("data events %q", lines)
	}
	dresp.Body.Close()
	if s, _ := client.Do(mustReq(t, http.MethodPost, gw.URL+"/process/stream/media1/stop")); s == nil || s.StatusCode != http.StatusOK {
		t.Errorf("stop: %v", s)
	}
	if _, _, err := pub.Write(ctx, strings.NewReader("late")); err == nil {
		t.Errorf("the gateway's input channel still takes segments after the stop")
	}
}

// A client that publishes as soon as /process/stream/start answers, while
// no orchestrator has taken the stream yet (the worker holds its start),
// is not answered 404: the segment waits in the gateway's input channel
// and reaches the worker once the stream runs.
func TestStreamEarlyPublishReachesTheWorker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := startOrch(t, nil)
	mw := &mediaWorker{t: t, ctx: ctx, gate: make(chan struct{}), reached: make(chan struct{})}
	registerStream(t, o, "upper", mw, 4)
	gw := startGateway(t, testnet.KeyA, []string{o.URL}, func(c *gateway.NodeConfig) {
		c.Gateway.StreamTicker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	})
	h, _ := wire.EncodeJobRequestHeader(&wire.JobRequest{Request: `{}`, Capability: "upper", TimeoutSeconds: 30,
		Parameters: `{"enable_video_ingress":true,"enable_video_egress":true}`})
	r, _ := http.NewRequest(http.MethodPost, gw.URL+"/process/stream/start", strings.NewReader(`{"stream_id":"early1","params":"{}"}`))
	r.Header.Set(wire.HeaderJobRequest, h)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	publish, subscribe := resp.Header.Get(wire.HeaderPublishURL), resp.Header.Get(wire.HeaderSubscribeURL)
	if resp.StatusCode != http.StatusOK || publish == "" || subscribe == "" {
		t.Fatalf("start: %d publish %q subscribe %q", resp.StatusCode, publish, subscribe)
	}
	client := trickle.NewHTTPClient(false)
	pub, _ := trickle.NewPublisher(trickle.PublisherConfig{URL: publish, Client: client})
	sub, _ := trickle.NewSubscriber(trickle.SubscriberConfig{URL: subscribe, Client: client})
	// Before the orchestrator has answered: the gateway is still starting
	// the stream (the worker has its start and holds it).
	if _, _, err := pub.Write(ctx, strings.NewReader("early")); err != nil {
		t.Fatalf("publish before the stream runs: %v", err)
	}
	select {
	case <-mw.reached:
	case <-ctx.Done():
		t.Fatal("the worker never got the stream's start")
	}
	for _, st := range gw.Streams() {
		if st.ID == "early1" && st.State == "running" {
			t.Fatalf("the stream runs before its worker answered: the test publishes too late")
		}
	}
	close(mw.gate)
	seg, err := sub.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	got, _ := io.ReadAll(seg.Body)
	seg.Body.Close()
	if string(got) != "EARLY" {
		t.Errorf("the worker's output %q, want %q", got, "EARLY")
	}
	if s, _ := client.Do(mustReq(t, http.MethodPost, gw.URL+"/process/stream/early1/stop")); s == nil || s.StatusCode != http.StatusOK {
		t.Errorf("stop: %v", s)
	}
}

func mustReq(t *testing.T, method, url string) *http.Request {
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
