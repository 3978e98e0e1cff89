package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/orchestrator"
	"byoc/trickle"
	"byoc/wire"
)

// gatedChannels are the orchestrator's trickle channels whose Close waits
// for the test to let it (after it has read what it wanted to): a
// subscriber that came after the close would find nothing.
type gatedChannels struct {
	*orchestrator.TrickleChannels
	open chan struct{}
}

func (g *gatedChannels) Close(name string) {
	if strings.HasSuffix(name, "-events") {
		<-g.open
	}
	g.TrickleChannels.Close(name)
}

// With the orchestrator's own trickle server: the worker's events reach a
// subscriber of the stream's events channel, and when the stream runs dry
// its last event says why and the channel then ends.
func TestStreamEventsOverTrickle(t *testing.T) {
	gate := &gatedChannels{TrickleChannels: orchestrator.NewTrickleChannels(slog.Default()), open: make(chan struct{})}
	sn := startStreamNet(t, func(c *orchestrator.NodeConfig) { c.Orchestrator.Channels = gate })
	c := sn.c
	a := sn.start(t, c, "tv", 10, "{}")
	if a.Status != http.StatusOK {
		t.Fatalf("start: %d %q", a.Status, a.Body)
	}
	events := a.Header.Get(wire.HeaderEventsURL)
	client := trickle.NewHTTPClient(true)
	sub, err := trickle.NewSubscriber(trickle.SubscriberConfig{URL: events, Client: client, Retries: 1, RetryPause: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trickle.NewPublisher(trickle.PublisherConfig{URL: events, Client: client, ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := pub.Write(ctx, strings.NewReader(`{"type":"status","fps":30}`)); err != nil {
		t.Fatalf("the worker's event: %v", err)
	}
	read := func() (string, error) {
		seg, err := sub.Read(ctx)
		if err != nil {
			return "", err
		}
		defer seg.Body.Close()
		b, err := io.ReadAll(seg.Body)
		return string(b), err
	}
	if got, err := read(); err != nil || got != `{"type":"status","fps":30}` {
		t.Fatalf("first event: %q %v", got, err)
	}
	// Run it dry: 12 s on a 10000 hold, then past the 10 s grace.
	sn.clock.Advance(12 * time.Second)
	got := make(chan string, 1)
	go func() {
		s, err := read()
		if err != nil {
			s = "error: " + err.Error()
		}
		got <- s
	}()
	sn.n.SettleStreams(ctx)
	sn.clock.Advance(10 * time.Second)
	settled := make(chan orchestrator.SettleStats, 1)
	go func() { settled <- sn.n.SettleStreams(ctx) }()
	if ev := <-got; !strings.Contains(ev, `"type":"stream_stopped"`) || !strings.Contains(ev, `"reason":"insufficient_balance"`) {
		t.Errorf("last event: %q", ev)
	}
	close(gate.open)
	if st := <-settled; st.Stopped != 1 {
		t.Fatalf("settle past the grace: %+v", st)
	}
	if _, err := read(); !errors.Is(err, trickle.ErrClosed) && !errors.Is(err, trickle.ErrNotFound) {
		t.Errorf("after the stop the events channel: %v, want closed", err)
	}
	if _, _, err := pub.Write(ctx, bytes.NewReader([]byte("{}"))); err == nil {
		t.Errorf("the worker could still publish on a stopped stream's channel")
	}
}
