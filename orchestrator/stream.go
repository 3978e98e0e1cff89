package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"byoc/ledger"
	"byoc/orchestrator/meter"
)

// Streams (docs/orchestrator.md, "Streams"; docs/protocol.md §9).
//
// A stream is a long-lived session a gateway opens with /ai/stream/start
// and ends with /ai/stream/stop; between the two it sends /ai/stream/update
// (new parameters for the worker) and /ai/stream/payment (top-ups). Its
// media, control, events and data move over trickle channels named after
// its ID. Its money is one hold in the ledger, the stream's ID being the
// hold's job ID (meter.Stream): opened at start with the start payment
// and a reservation from the sender's pool, at the price pinned at start,
// charged by elapsed time, topped up by payments, closed at stop with the
// remainder released to the pool.
//
// The states of a stream, and what moves it from one to the next:
//
//	(none) ──start──▶ starting ──admitted, channels made, worker said 2xx──▶ running
//	starting ──402 / worker refused / worker unreachable──▶ stopped
//	running ──a settlement the hold cannot cover──▶ dry
//	dry ──a payment that covers what is owed──▶ running
//	dry ──grace passed (at a batch tick)──▶ stopped (reason: insufficient balance)
//	running, dry ──/ai/stream/stop──▶ stopped (reason: stopped by the gateway)
//	running, dry ──its hold expired (no settlement for its TTL)──▶ stopped (reason: hold expired)
//	running, dry ──the node shuts down──▶ (the hold expires into the pool after its TTL)
//
// starting: the ID is taken (a second start with it is 409; an ID is never
// reused while its hold exists), a capacity slot is held, the hold is open.
// Update, stop and payment for it are 404: they cannot reach a worker that
// has not been started.
//
// running and dry: what the stream owes is price × elapsed whole seconds
// since its start, less what was charged (computed when read); it is
// charged at each payment, at stop and at every batch tick of the one
// settlement loop (RunStreams), never by a goroutine per stream. dry is
// running whose last settlement could not be charged: it keeps running
// through the grace (Config.StreamGrace), owing what it owes.
//
// stopped is final and happens once (stopStream): the stream leaves the
// table first (so no settlement, payment or update can touch it again:
// no debit after release) and its hold is finished (what is owed is
// charged, up to what the hold holds, and the rest released to the pool
// in the same ledger step, under a key naming the reason); then the worker
// gets /stream/stop, the orchestrator writes a last event saying why on
// the events channel, the channels are closed and the capacity slot is
// released — after the settlement batch, on a goroutine of its own, when
// the batch stopped it (stopStreamLater), so that a hung worker holds up
// no other stream. The sender's other streams and jobs are not touched.
//
// Stream IDs name trickle channels: <id>, <id>-out, <id>-control,
// <id>-events, <id>-data. An ID that ends in one of those suffixes could
// name another stream's channel, so it is refused (400), as is one with a
// character outside [A-Za-z0-9._~-] or longer than maxStreamIDBytes.

// StreamChannels hosts streams' trickle channels (package trickle's
// server, mounted under /ai/trickle/ when it is also an http.Handler). The
// orchestrator creates a stream's channels at start and closes them at
// stop; nobody else can create them.
type StreamChannels interface {
	Create(name, mimeType string)
	Close(name string)
}

// StreamEventPublisher is what a StreamChannels may also offer: writing a
// segment of the orchestrator's own on a channel (the last event of a
// stream, saying why it stopped).
type StreamEventPublisher interface {
	Publish(name string, data []byte) error
}

// Why a stream stopped: in its last event and its hold's closing charge.
const (
	StopByGateway         = "stopped"
	StopInsufficientFunds = "insufficient_balance"
	StopStartFailed       = "start_failed"
	StopHoldExpired       = "hold_expired"
)

// maxStreamIDBytes bounds a stream ID (it names channels and a hold).
const maxStreamIDBytes = 128

// channelSuffixes are the suffixes of a stream's channels besides <id>.
var channelSuffixes = []string{"-out", "-control", "-events", "-data"}

// validStreamID refuses IDs that could name another stream's channel or
// that are not plain URL path segments.
func validStreamID(id string) error {
	switch {
	case id == "":
		return errors.New("empty stream id")
	case len(id) > maxStreamIDBytes:
		return fmt.Errorf("stream id longer than %d bytes", maxStreamIDBytes)
	case id == "." || id == "..":
		return fmt.Errorf("stream id %q", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._~-", c)) {
			return fmt.Errorf("stream id %q has a character outside [A-Za-z0-9._~-]", id)
		}
	}
	for _, s := range channelSuffixes {
		if strings.HasSuffix(id, s) {
			return fmt.Errorf("stream id %q ends in %q, which names another stream's channel", id, s)
		}
	}
	return nil
}

// streamState is where a stream is in its life (the diagram above).
type streamState int

const (
	streamStarting streamState = iota
	streamRunning
	streamStopped
)

// stream is one stream this orchestrator serves.
type stream struct {
	id       string
	pool     meter.Pool
	slot     *slot
	money    *meter.Stream
	channels []string // created, to close at stop
	events   string   // the events channel's name
	log      *slog.Logger

	mu    sync.Mutex
	state streamState
}

// streamTable holds the streams by ID: IDs are global, because channel
// names are.
type streamTable struct {
	mu sync.Mutex
	m  map[string]*stream
}

// claim takes id for a starting stream; false when it is taken.
func (t *streamTable) claim(s *stream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*stream{}
	}
	if _, ok := t.m[s.id]; ok {
		return false
	}
	t.m[s.id] = s
	return true
}

// get returns the running stream id of sender, nil when there is none
// (unknown, starting, stopped, or another sender's).
func (t *streamTable) get(id string, sender string) *stream {
	t.mu.Lock()
	s := t.m[id]
	t.mu.Unlock()
	if s == nil || s.pool.Sender.Hex() != sender {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != streamRunning {
		return nil
	}
	return s
}

// hasSender reports whether sender has a running stream of capability.
func (t *streamTable) hasSender(sender, capability string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.m {
		if s.pool.Capability == capability && s.pool.Sender.Hex() == sender {
			return true
		}
	}
	return false
}

// remove takes s out of the table and marks it stopped; false when it was
// not there (stopped already): stopping happens once.
func (t *streamTable) remove(s *stream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[s.id] != s {
		return false
	}
	delete(t.m, s.id)
	s.mu.Lock()
	s.state = streamStopped
	s.mu.Unlock()
	return true
}

// running returns the running streams, by ID.
func (t *streamTable) running() []*stream {
	t.mu.Lock()
	out := make([]*stream, 0, len(t.m))
	for _, s := range t.m {
		out = append(out, s)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	kept := out[:0]
	for _, s := range out {
		s.mu.Lock()
		if s.state == streamRunning {
			kept = append(kept, s)
		}
		s.mu.Unlock()
	}
	return kept
}

// StreamInfo is an open stream as the admin API lists it.
type StreamInfo struct {
	ID         string        `json:"id"`
	Sender     string        `json:"sender"`
	Capability string        `json:"capability"`
	Hold       ledger.Ref    `json:"hold"`
	Balance    ledger.Amount `json:"balance"` // the hold less what is owed
	Owed       ledger.Amount `json:"owed"`    // not yet charged
	Charged    ledger.Amount `json:"charged"`
	DrySince   time.Time     `json:"dry_since,omitzero"`
}

// Streams lists the running streams with their balances, at the ledger's
// time.
func (o *Orchestrator) Streams(ctx context.Context) ([]StreamInfo, error) {
	now := o.meter.Now()
	var out []StreamInfo
	for _, s := range o.streams.running() {
		info, err := s.info(ctx, now)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// StreamOf is the running stream id of sender as Streams lists it; ok
// false when there is none.
func (o *Orchestrator) StreamOf(ctx context.Context, id, sender string) (info StreamInfo, ok bool, err error) {
	s := o.streams.get(id, sender)
	if s == nil {
		return StreamInfo{}, false, nil
	}
	info, err = s.info(ctx, o.meter.Now())
	return info, err == nil, err
}

func (s *stream) info(ctx context.Context, now time.Time) (StreamInfo, error) {
	bal, err := s.money.Balance(ctx, now)
	if err != nil {
		return StreamInfo{}, err
	}
	return StreamInfo{ID: s.id, Sender: s.pool.Sender.Hex(), Capability: s.pool.Capability, Hold: s.money.Hold(),
		Balance: bal, Owed: s.money.Owed(now), Charged: s.money.Total(), DrySince: s.money.DrySince()}, nil
}

// EndedStream is a stream that stopped, as the console lists it: its
// hold (whose statement has the money) and why it stopped.
type EndedStream struct {
	ID, Sender, Capability string
	Hold                   ledger.Ref
	Reason                 string // StopByGateway, StopInsufficientFunds, …
	At                     time.Time
}

// endedKeep is how many stopped streams the orchestrator remembers (in
// memory: a restart forgets them; their holds stay in the ledger).
const endedKeep = 50

// endedStreams are the latest stopped streams, newest last.
type endedStreams struct {
	mu sync.Mutex
	l  []EndedStream
}

func (e *endedStreams) add(s EndedStream) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.l = append(e.l, s)
	if len(e.l) > endedKeep {
		e.l = append(e.l[:0:0], e.l[len(e.l)-endedKeep:]...)
	}
}

// EndedStreams lists the latest stopped streams, newest first.
func (o *Orchestrator) EndedStreams() []EndedStream {
	o.ended.mu.Lock()
	defer o.ended.mu.Unlock()
	out := make([]EndedStream, 0, len(o.ended.l))
	for i := len(o.ended.l) - 1; i >= 0; i-- {
		out = append(out, o.ended.l[i])
	}
	return out
}

// streamBalance is the Livepeer-Balance of a running stream of sender
// (its hold less what it owes) for a token naming it; ok false when there
// is none.
func (o *Orchestrator) streamBalance(ctx context.Context, id, sender string) (ledger.Amount, bool) {
	s := o.streams.get(id, sender)
	if s == nil {
		return ledger.Amount{}, false
	}
	bal, err := s.money.Balance(ctx, o.meter.Now())
	return bal, err == nil
}

// channelURL is the absolute URL of a channel.
func (o *Orchestrator) channelURL(name string) string {
	return o.cfg.ServiceAddr + "/ai/trickle/" + name
}

// streamEvent writes the stream's last event, saying why it stopped, on
// its events channel, when the channels can take one.
func (o *Orchestrator) streamEvent(s *stream, reason string) {
	p, ok := o.cfg.Channels.(StreamEventPublisher)
	if !ok || s.events == "" {
		return
	}
	b := fmt.Appendf(nil, `{"type":"stream_stopped","stream_id":%q,"reason":%q}`, s.id, reason)
	if err := p.Publish(s.events, b); err != nil {
		s.log.Warn("could not write the stream's last event", "err", err)
	}
}

// stopStream ends s, once, for reason: out of the table (nothing more
// reaches it), its hold finished (what it owes charged, the rest
// released; no debit after this), the worker told (/stream/stop), the last
// event written, the channels closed, the capacity slot released. It
// returns the worker's answer to /stream/stop (status 0 when it gave
// none), what the stream was charged in all, and false when s was stopped
// already.
func (o *Orchestrator) stopStream(ctx context.Context, s *stream, reason string, body []byte) (status int, answer []byte, charged ledger.Amount, stopped bool) {
	ctx = context.WithoutCancel(ctx)
	f, ok := o.endStreamMoney(ctx, s, reason)
	if !ok {
		return 0, nil, ledger.Amount{}, false
	}
	status, answer = o.releaseStream(ctx, s, reason, body, f)
	return status, answer, f.Total, true
}

// stopStreamLater is stopStream for the settlement batch: the stream
// leaves the table and its hold is finished here, in the batch; the rest
// (the worker's /stream/stop, which may take up to the worker timeout, the
// last event, the channels, the slot) runs on its own goroutine, at most
// maxStopCalls at once, so a hung worker delays no other stream's
// settlement. WaitStreamStops waits for them. It reports false when s was
// stopped already.
func (o *Orchestrator) stopStreamLater(ctx context.Context, s *stream, reason string, body []byte) bool {
	f, ok := o.endStreamMoney(context.WithoutCancel(ctx), s, reason)
	if !ok {
		return false
	}
	o.stops.mu.Lock()
	if o.stops.closed {
		// Shutting down: the worker call fails at once (its context ended).
		o.stops.mu.Unlock()
		o.releaseStream(o.stops.ctx, s, reason, body, f)
		return true
	}
	o.stops.wg.Add(1)
	o.stops.mu.Unlock()
	go func() {
		defer o.stops.wg.Done()
		select {
		case o.stops.slots <- struct{}{}:
			defer func() { <-o.stops.slots }()
		case <-o.stops.ctx.Done(): // shutting down: the worker call fails at once
		}
		o.releaseStream(o.stops.ctx, s, reason, body, f)
	}()
	return true
}

// maxStopCalls bounds the workers' /stream/stop calls the settlement batch
// has running at once (each bounded by the worker timeout, 30 s).
const maxStopCalls = 64

// stopCalls tracks the worker side of stops made by the settlement batch.
type stopCalls struct {
	mu     sync.Mutex
	closed bool // endStops was called: no more calls are started
	wg     sync.WaitGroup
	slots  chan struct{}
	ctx    context.Context // ends at shutdown: the calls still waiting give up
	cancel context.CancelFunc
}

// endStops cuts the worker calls of stops still running short (the node
// shuts down) and waits for them.
func (o *Orchestrator) endStops() {
	o.stops.mu.Lock()
	o.stops.closed = true
	o.stops.cancel()
	o.stops.mu.Unlock()
	o.stops.wg.Wait()
}

// WaitStreamStops waits until the worker side of every stop the settlement
// batch made so far is done (each bounded by the worker timeout), or ctx
// ends.
func (o *Orchestrator) WaitStreamStops(ctx context.Context) error {
	done := make(chan struct{})
	go func() { o.stops.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// endStreamMoney takes s out of the table and finishes its hold, once:
// false when s was stopped already. The stream counts as stopped from
// here (the open-streams gauge, the stopped counter).
func (o *Orchestrator) endStreamMoney(ctx context.Context, s *stream, reason string) (meter.Final, bool) {
	if !o.streams.remove(s) {
		return meter.Final{}, false
	}
	f, err := s.money.Finish(ctx, o.meter.Now(), reason)
	if err != nil {
		s.log.Error("stream stopped; its hold is left to the sweeper", "reason", reason, "err", err)
	}
	o.m.openStreams.Dec()
	o.m.streamsStopped.WithLabelValues(reason).Inc()
	return f, true
}

// releaseStream is the rest of a stop once the hold is finished: the
// worker told, the last event written, the channels closed, the capacity
// slot released. It returns the worker's answer to /stream/stop.
func (o *Orchestrator) releaseStream(ctx context.Context, s *stream, reason string, body []byte, f meter.Final) (int, []byte) {
	status, answer, werr := o.callStreamWorker(ctx, s, "/stream/stop", "", body)
	if werr != nil {
		s.log.Warn("worker did not take /stream/stop", "reason", reason, "err", werr)
	}
	o.streamEvent(s, reason)
	if o.cfg.Channels != nil {
		for _, c := range s.channels {
			o.cfg.Channels.Close(c)
		}
	}
	o.ended.add(EndedStream{ID: s.id, Sender: s.pool.Sender.Hex(), Capability: s.pool.Capability, Hold: s.money.Hold(),
		Reason: reason, At: o.meter.Now()})
	s.slot.release()
	s.log.Info("stream stopped", "reason", reason, "charged", f.Total, "released", f.Released)
	return status, answer
}

// closeChannels closes every stream's channels when the node shuts down,
// so that the long reads of gateways and workers end at once instead of
// holding the graceful shutdown: a gateway sees its streams end here (and
// moves them elsewhere); their holds expire into their pools.
func (o *Orchestrator) closeChannels() {
	if c, ok := o.cfg.Channels.(interface{ Shutdown() }); ok {
		c.Shutdown()
	}
}
