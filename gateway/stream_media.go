package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"byoc/trickle"
	"byoc/wire"
)

// A stream's data plane at the gateway (docs/gateway.md, "Streams"): the
// gateway serves trickle channels of its own under /ai/trickle/ on the
// client listener. With video ingress on, the client publishes segments to
// <gateway>/ai/trickle/<id> and the gateway relays them to the
// orchestrator's input channel (X-Publish-Url); with egress on, it relays
// the orchestrator's output channel (X-Subscribe-Url, <id>-out) into
// <gateway>/ai/trickle/<id>-out for the client to read. It reads the
// stream's events channel, keeping the last events and the worker's last
// status for GET …/status, and GET …/data relays the data channel as
// server-sent events. The relays are data, not billing: one goroutine per
// channel while the stream runs.

// mediaBasePath is where the gateway serves its streams' trickle channels.
const mediaBasePath = "/ai/trickle/"

// mediaServer returns the gateway's trickle server, made on first use.
func (g *Gateway) mediaServer() *trickle.Server {
	t := &g.streams
	t.mediaOnce.Do(func() {
		t.media = trickle.NewServer(trickle.Config{BasePath: mediaBasePath, SweepInterval: -1, Logger: g.log})
	})
	return t.media
}

// trickleClient is how the gateway reaches trickle channels: HTTP/1.1,
// orchestrators' self-signed certificates accepted (or checked against
// RootCAs), as go-livepeer's trickle clients do. One client, so its idle
// connections can be closed (CloseIdleConnections).
func (g *Gateway) trickleClient() *http.Client {
	t := &g.streams
	t.clientOnce.Do(func() {
		if g.cfg.RootCAs == nil {
			t.client = trickle.NewHTTPClient(true)
			return
		}
		t.client = trickle.NewHTTPClient(false)
		if tr, ok := t.client.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
			tr.TLSClientConfig.RootCAs = g.cfg.RootCAs
		}
	})
	return t.client
}

// clientChannels are the gateway channels a stream's client uses, by
// role, as URLs on base.
func clientChannels(base, id string, p wire.JobParameters) (publish, subscribe string) {
	if p.EnableVideoIngress {
		publish = base + "/ai/trickle/" + id
	}
	if p.EnableVideoEgress {
		subscribe = base + "/ai/trickle/" + id + "-out"
	}
	return publish, subscribe
}

// openMedia makes the stream's client channels here before its start is
// answered, so that a client publishing at once, before an orchestrator
// has taken the stream, is not answered 404: its first segments wait in
// the channel's ring (trickle.Config.RingSize) and the input relay reads
// them from segment 0 once the stream runs.
func (g *Gateway) openMedia(s *gwStream) {
	if g.streams.self == "" {
		return // not serving: no channels of our own (startMedia)
	}
	srv := g.mediaServer()
	if s.params.EnableVideoIngress {
		g.ownChannel(srv, s, s.id)
	}
	if s.params.EnableVideoEgress {
		g.ownChannel(srv, s, s.id+"-out")
	}
}

// ownChannel makes one of the stream's channels here, or finds it made,
// and reports whether the stream has it.
func (g *Gateway) ownChannel(srv *trickle.Server, s *gwStream, name string) bool {
	err := srv.Create(name, trickle.WithMIME("video/MP2T"))
	if err == nil {
		s.mu.Lock()
		s.ownChannels = append(s.ownChannels, name)
		s.mu.Unlock()
	}
	return err == nil || errors.Is(err, trickle.ErrExists)
}

// startMedia starts the relays of a stream the orchestrator started, with
// its channel URLs (hdr), until ctx ends.
func (g *Gateway) startMedia(ctx context.Context, s *gwStream, o *offer, hdr http.Header) {
	self := g.streams.self
	if self == "" {
		return // not serving (a Gateway without a Node): no channels of our own
	}
	srv := g.mediaServer()
	client := g.trickleClient()
	relay := func(what, from, to string) {
		sub, err := trickle.NewSubscriber(trickle.SubscriberConfig{URL: from, Client: client})
		if err == nil {
			var pub *trickle.Publisher
			if pub, err = trickle.NewPublisher(trickle.PublisherConfig{URL: to, Client: client}); err == nil {
				var st trickle.RelayStats
				st, err = trickle.Relay(ctx, sub, pub, nil)
				pub.Close(context.WithoutCancel(ctx))
				s.log.Debug("relay ended", "what", what, "segments", st.Segments, "bytes", st.Bytes, "err", err)
			}
		}
		if err != nil && ctx.Err() == nil {
			s.event("relay_error", what+": "+err.Error(), g.cfg.Now())
		}
	}
	// The client's channels were made at the start (openMedia); a stream
	// that moved to another orchestrator keeps them (the client's URLs).
	if u := hdr.Get(wire.HeaderPublishURL); u != "" && s.params.EnableVideoIngress && g.ownChannel(srv, s, s.id) {
		go relay("input", self+"/ai/trickle/"+s.id, u)
	}
	if u := hdr.Get(wire.HeaderSubscribeURL); u != "" && s.params.EnableVideoEgress && g.ownChannel(srv, s, s.id+"-out") {
		go relay("output", u, self+"/ai/trickle/"+s.id+"-out")
	}
	if u := hdr.Get(wire.HeaderEventsURL); u != "" {
		go g.readEvents(ctx, s, o, u, client)
	}
}

// stopMedia closes the stream's channels here (its relays end with ctx).
func (g *Gateway) stopMedia(s *gwStream) {
	if g.streams.media == nil {
		return
	}
	s.mu.Lock()
	own := s.ownChannels
	s.ownChannels = nil
	s.mu.Unlock()
	for _, c := range own {
		g.streams.media.Close(c)
	}
}

// readEvents reads the stream's events channel: each segment is one JSON
// event ({"queue_event_type", "event"} or the event itself); a "status"
// event becomes the worker's status in GET …/status; every event is kept
// among the stream's last events.
func (g *Gateway) readEvents(ctx context.Context, s *gwStream, o *offer, url string, client *http.Client) {
	// From segment 0: the worker's first events may precede us.
	sub, err := trickle.NewSubscriber(trickle.SubscriberConfig{URL: url, Client: client})
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		seg, err := sub.Read(ctx)
		if err != nil {
			// The orchestrator closes a stream's channels only when the
			// stream stops there; an events channel it cannot be read from
			// for all the subscriber's retries is gone with it.
			if ctx.Err() == nil {
				g.streamLost(context.WithoutCancel(ctx), s, o, "its events channel: "+err.Error(), true)
			}
			return
		}
		b, _ := io.ReadAll(io.LimitReader(seg.Body, 1<<20))
		seg.Body.Close()
		var ev map[string]any
		if json.Unmarshal(b, &ev) != nil {
			continue
		}
		if inner, ok := ev["event"].(map[string]any); ok {
			ev = inner
		}
		typ, _ := ev["type"].(string)
		s.mu.Lock()
		if typ == "status" {
			s.workerStatus = ev
		}
		s.mu.Unlock()
		s.event("worker:"+cmpOr(typ, "event"), string(b), g.cfg.Now())
		if typ == "stream_stopped" {
			g.streamLost(context.WithoutCancel(ctx), s, o, "it stopped the stream: "+string(b), false)
			return
		}
	}
}

// relayData writes the stream's data channel (JSON Lines) to the client
// as server-sent events, data: <line>, until the channel or the client
// ends.
func (g *Gateway) relayData(w http.ResponseWriter, r *http.Request, url string) {
	// From the oldest segment the channel keeps (a 470 jumps to it), as
	// go-livepeer's gateway serves /data from its ring of the last few.
	sub, err := trickle.NewSubscriber(trickle.SubscriberConfig{URL: url, Client: g.trickleClient()})
	if err != nil {
		http.Error(w, "Stream data not available", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		seg, err := sub.Read(r.Context())
		if err != nil {
			return
		}
		sc := bufio.NewScanner(seg.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			if _, err := io.WriteString(w, "data: "+line+"\n\n"); err != nil {
				seg.Body.Close()
				return
			}
			rc.Flush()
		}
		seg.Body.Close()
	}
}

// mediaSweep closes the gateway's idle channels (each top-up round).
func (g *Gateway) mediaSweep() {
	if g.streams.media != nil {
		g.streams.media.Sweep()
	}
}
