package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"byoc/trickle"
)

// Stream transforms: what the sample worker does to each segment of a
// stream's input before publishing it on the output channel.
const (
	TransformUpper   = "upper"   // uppercase (UTF-8 text; other bytes pass unchanged)
	TransformReverse = "reverse" // reverse the text, as the reverse capability does
	TransformBytes   = "reverse-bytes"
	TransformEcho    = "echo" // unchanged
)

// DefaultStreamEventInterval is how often a running stream writes a status
// event: a go-livepeer gateway gives up on a stream after 30 s without one.
const DefaultStreamEventInterval = 10 * time.Second

// defaultTransform is a capability's stream transform when the start
// parameters name none.
func defaultTransform(capability string) string {
	switch capability {
	case Reverse:
		return TransformReverse
	case Echo:
		return TransformEcho
	}
	return TransformUpper
}

func validTransform(t string) bool {
	switch t {
	case TransformUpper, TransformReverse, TransformBytes, TransformEcho:
		return true
	}
	return false
}

func applyTransform(t string, b []byte) []byte {
	switch t {
	case TransformUpper:
		return bytes.ToUpper(b)
	case TransformReverse:
		return []byte(ReverseText(string(b)))
	case TransformBytes:
		out := make([]byte, len(b))
		for i, c := range b {
			out[len(b)-1-i] = c
		}
		return out
	}
	return b
}

// streamStart is the body an orchestrator sends to <url>/stream/start
// (docs/protocol.md §9): the channel URLs it created for the stream, and
// the client's parameters.
type streamStart struct {
	GatewayRequestID string          `json:"gateway_request_id"`
	SubscribeURL     string          `json:"subscribe_url"` // input: the worker reads
	PublishURL       string          `json:"publish_url"`   // output (-out): the worker writes
	ControlURL       string          `json:"control_url"`   // the worker reads
	EventsURL        string          `json:"events_url"`    // the worker writes
	DataURL          string          `json:"data_url"`      // the worker writes
	Params           json.RawMessage `json:"params"`
}

// transformOf finds a transform in a parameters body: {"transform": …} or
// {"params": {"transform": …}}. "" when none is named.
func transformOf(body []byte) (string, error) {
	var p struct {
		Transform *string `json:"transform"`
		Params    *struct {
			Transform *string `json:"transform"`
		} `json:"params"`
	}
	if len(bytes.TrimSpace(body)) == 0 || json.Unmarshal(body, &p) != nil {
		return "", nil // not an object of ours: no transform named
	}
	t := ""
	switch {
	case p.Transform != nil:
		t = *p.Transform
	case p.Params != nil && p.Params.Transform != nil:
		t = *p.Params.Transform
	default:
		return "", nil
	}
	if !validTransform(t) {
		return "", fmt.Errorf("unknown transform %q: this worker has %s, %s, %s and %s", t,
			TransformUpper, TransformReverse, TransformBytes, TransformEcho)
	}
	return t, nil
}

// streamSession is one running stream.
type streamSession struct {
	id, capability string
	cancel         context.CancelFunc
	done           chan struct{}
	events         chan map[string]any // extra events for the events channel

	mu                   sync.Mutex
	transform            string
	segmentsIn, segsOut  int64
	lastError, lastParam string
}

func (s *streamSession) setTransform(t string) {
	s.mu.Lock()
	s.transform = t
	s.mu.Unlock()
}

func (s *streamSession) status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{
		"type": "status", "stream_id": s.id, "capability": s.capability, "transform": s.transform,
		"segments_in": s.segmentsIn, "segments_out": s.segsOut,
		"inference_status": map[string]any{"last_params": s.lastParam, "last_error": s.lastError},
	}
}

// event queues an event for the events channel; dropped when the queue is
// full (events are status, not data).
func (s *streamSession) event(e map[string]any) {
	e["stream_id"] = s.id
	select {
	case s.events <- e:
	default:
	}
}

// streams are the running stream sessions of a Handler.
type streams struct {
	sync.Mutex
	running map[string]*streamSession
	base    context.Context
	crashed bool // set by crashStreams: sessions end without a last event
}

// startStream starts (or restarts) the session of stream id. It returns a
// 400-worthy error for a bad URL or transform.
func (h *Handler) startStream(id, capability string, body []byte) error {
	var st streamStart
	// A body that is not an object of ours starts a stream with no channels,
	// as the reference worker accepts whatever it is given.
	_ = json.Unmarshal(body, &st)
	for _, u := range []string{st.SubscribeURL, st.PublishURL, st.ControlURL, st.EventsURL, st.DataURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("channel URL %q is not an http(s) URL", u)
		}
	}
	t, err := transformOf(body)
	if err != nil {
		return err
	}
	if t == "" {
		t = defaultTransform(capability)
	}
	ctx, cancel := context.WithCancel(h.streams.base)
	s := &streamSession{id: id, capability: capability, cancel: cancel, done: make(chan struct{}),
		events: make(chan map[string]any, 16), transform: t, lastParam: string(st.Params)}
	h.streams.Lock()
	old := h.streams.running[id]
	h.streams.running[id] = s
	h.streams.Unlock()
	if old != nil { // a start for a running stream starts it anew
		old.cancel()
		<-old.done
	}
	go h.runStream(ctx, s, st)
	return nil
}

// stopStream stops the session of id, if one runs, and waits until it has
// written its last event.
func (h *Handler) stopStream(id string) bool {
	h.streams.Lock()
	s := h.streams.running[id]
	if s != nil {
		delete(h.streams.running, id)
	}
	h.streams.Unlock()
	if s == nil {
		return false
	}
	s.cancel()
	<-s.done
	return true
}

// updateStream applies a parameters body to a running session.
func (h *Handler) updateStream(id string, body []byte) error {
	t, err := transformOf(body)
	if err != nil {
		return err
	}
	h.streams.Lock()
	s := h.streams.running[id]
	h.streams.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.lastParam = string(body)
	if t != "" {
		s.transform = t
	}
	s.mu.Unlock()
	s.event(map[string]any{"type": "params_updated", "params": json.RawMessage(validJSONOrString(body))})
	return nil
}

// StopStreams stops every running stream session (the Server does it when
// it closes).
func (h *Handler) StopStreams() {
	h.streams.Lock()
	ids := make([]string, 0, len(h.streams.running))
	for id := range h.streams.running {
		ids = append(ids, id)
	}
	h.streams.Unlock()
	for _, id := range ids {
		h.stopStream(id)
	}
}

// crashStreams ends every session as a killed process would: no last
// event.
func (h *Handler) crashStreams() {
	h.streams.Lock()
	h.streams.crashed = true
	h.streams.Unlock()
	h.StopStreams()
}

func (h *Handler) streamsCrashed() bool {
	h.streams.Lock()
	defer h.streams.Unlock()
	return h.streams.crashed
}

func validJSONOrString(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}

// runStream runs one stream until ctx ends or its input ends: input
// segments are transformed onto the output (and counted on the data
// channel), control messages change the parameters, and a status event is
// written every StreamEventInterval.
func (h *Handler) runStream(ctx context.Context, s *streamSession, st streamStart) {
	defer close(s.done)
	var wg sync.WaitGroup
	inputDone := make(chan struct{})
	if st.SubscribeURL != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(inputDone)
			h.streamMedia(ctx, s, st)
		}()
	}
	if st.ControlURL != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.streamControl(ctx, s, st.ControlURL)
		}()
	}
	h.streamEvents(ctx, s, st.EventsURL, inputDone)
	s.cancel()
	wg.Wait()
}

func (h *Handler) subscriber(u string, start int) *trickle.Subscriber {
	sub, _ := trickle.NewSubscriber(trickle.SubscriberConfig{URL: u, Client: h.trickleClient, Start: start})
	return sub
}

func (h *Handler) publisher(u, contentType string) *trickle.Publisher {
	p, _ := trickle.NewPublisher(trickle.PublisherConfig{URL: u, Client: h.trickleClient, ContentType: contentType,
		RetryPause: 50 * time.Millisecond})
	return p
}

// streamMedia reads the input channel from its first segment (so nothing
// published before the worker subscribed is missed; a segment gone is
// jumped over), transforms each segment whole and publishes it.
func (h *Handler) streamMedia(ctx context.Context, s *streamSession, st streamStart) {
	in := h.subscriber(st.SubscribeURL, 0)
	var out, data *trickle.Publisher
	if st.PublishURL != "" {
		out = h.publisher(st.PublishURL, "application/octet-stream")
	}
	if st.DataURL != "" {
		data = h.publisher(st.DataURL, "application/jsonl")
	}
	for {
		seg, err := in.Read(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, trickle.ErrClosed) {
				s.fail("reading input: " + err.Error())
			}
			return
		}
		b, err := io.ReadAll(io.LimitReader(seg.Body, h.maxBodyBytes+1))
		seg.Body.Close()
		if err == nil && int64(len(b)) > h.maxBodyBytes {
			err = fmt.Errorf("segment larger than %d bytes", h.maxBodyBytes)
		}
		if err != nil {
			s.fail(fmt.Sprintf("input segment %d: %v", seg.Seq, err))
			continue
		}
		s.mu.Lock()
		t := s.transform
		s.segmentsIn++
		s.mu.Unlock()
		outb := applyTransform(t, b)
		if out != nil {
			if _, _, err := out.Write(ctx, bytes.NewReader(outb)); err != nil {
				if ctx.Err() != nil || errors.Is(err, trickle.ErrClosed) || errors.Is(err, trickle.ErrNotFound) {
					return
				}
				s.fail(fmt.Sprintf("output segment %d: %v", seg.Seq, err))
				continue
			}
		}
		if data != nil {
			line, _ := json.Marshal(map[string]any{"seq": seg.Seq, "bytes": len(b), "transform": t})
			if _, _, err := data.Write(ctx, bytes.NewReader(append(line, '\n'))); err != nil && ctx.Err() == nil {
				s.fail(fmt.Sprintf("data segment %d: %v", seg.Seq, err))
			}
		}
		s.mu.Lock()
		s.segsOut++
		s.mu.Unlock()
		h.update(func() { h.stats.streamSegments++ })
	}
}

func (s *streamSession) fail(msg string) {
	s.mu.Lock()
	s.lastError = msg
	s.mu.Unlock()
	s.event(map[string]any{"type": "error", "message": msg})
}

// streamControl reads the control channel from its first segment: each
// message is a parameters body ({"keep":"alive"} keepalives are skipped).
func (h *Handler) streamControl(ctx context.Context, s *streamSession, u string) {
	sub := h.subscriber(u, 0)
	for {
		seg, err := sub.Read(ctx)
		if err != nil {
			return
		}
		b, err := io.ReadAll(io.LimitReader(seg.Body, h.maxBodyBytes))
		seg.Body.Close()
		if err != nil || bytes.Equal(bytes.TrimSpace(b), []byte(`{"keep":"alive"}`)) {
			continue
		}
		if err := h.updateStream(s.id, b); err != nil {
			s.fail("control: " + err.Error())
		}
	}
}

// streamEvents writes the stream's events until ctx ends: "started", a
// "status" every StreamEventInterval and whatever the other parts queue;
// at the end "stopped" (or "input_ended" first, when the input closed).
func (h *Handler) streamEvents(ctx context.Context, s *streamSession, u string, inputDone <-chan struct{}) {
	var pub *trickle.Publisher
	if u != "" {
		pub = h.publisher(u, "application/json")
	}
	write := func(ctx context.Context, e map[string]any) {
		if pub == nil {
			return
		}
		b, _ := json.Marshal(e)
		pub.Write(ctx, bytes.NewReader(b)) // best effort: a lost event is not worth stopping for
	}
	write(ctx, map[string]any{"type": "started", "stream_id": s.id})
	ticks, stop := h.ticker(h.streamEventInterval)
	defer stop()
	for {
		select {
		case <-ticks:
			write(ctx, s.status())
		case e := <-s.events:
			write(ctx, e)
		case <-inputDone:
			inputDone = nil
			write(ctx, map[string]any{"type": "input_ended", "stream_id": s.id})
		case <-ctx.Done():
			if h.streamsCrashed() {
				return
			}
			// The last event goes out on its own short deadline.
			last, cancel := context.WithTimeout(context.Background(), time.Second)
			e := s.status()
			e["type"] = "stopped"
			write(last, e)
			cancel()
			return
		}
	}
}

// streamHTTPClient is the trickle clients' default: orchestrators serve
// their channels over HTTPS with a self-signed certificate, which
// go-livepeer's trickle clients also accept for BYOC.
func streamHTTPClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return trickle.NewHTTPClient(true)
}
