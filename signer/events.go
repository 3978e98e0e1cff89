package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"byoc/ledger"
)

// CloudEvent is one usage event as delivered: CloudEvents 1.0 in
// structured mode, the form OpenMeter ingests. ID is the outbox key, unique
// per signed payment, so a receiver de-duplicates redeliveries by it;
// Subject is the customer (the auth ID).
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Event types of the delivered CloudEvents.
const (
	EventTypeUsage  = "create_signed_ticket"
	EventTypeRefund = "create_signed_ticket.refund"
)

// EventSink delivers the ledger's outbox to an HTTP endpoint, at least
// once, in order: batches of CloudEvents POSTed as
// application/cloudevents-batch+json; a batch is marked delivered in the
// ledger only after a 2xx, and retried with exponential backoff until
// then. Events survive restarts in the ledger, so none is lost while the
// sink is down or the signer is killed; one delivered just before a kill
// may be delivered again (same ID).
type EventSink struct {
	URL     string
	Headers map[string]string
	Client  *http.Client
	Ledger  *ledger.Ledger
	// Source is the CloudEvents source (e.g. byoc-signer/<address>).
	Source string
	// Batch is the most events per POST; default 100.
	Batch int
	// After waits (the poll interval, the backoff); default time.After.
	After func(time.Duration) <-chan time.Time
	// Poll is how often the outbox is read when nothing woke the sink;
	// default 1 s. MinBackoff, MaxBackoff bound the retry waits (1 s, 5 min).
	Poll, MinBackoff, MaxBackoff time.Duration
	Logger                       *slog.Logger
	// Delivered, if set, is told how many events each accepted batch held.
	Delivered func(n int)
	// Topics are the outbox topics this sink delivers; nil: usage events
	// (TopicUsage, TopicRefund). Other topics are left to their own sink.
	Topics []string
	// Plain POSTs each event's body alone as application/json (budget
	// alerts), instead of CloudEvents batches.
	Plain bool

	wake chan struct{}
}

// NewEventSink fills in s's defaults.
func NewEventSink(s EventSink) *EventSink {
	if s.Client == nil {
		s.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.Batch <= 0 {
		s.Batch = 100
	}
	if s.After == nil {
		s.After = time.After
	}
	if s.Poll <= 0 {
		s.Poll = time.Second
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff < s.MinBackoff {
		s.MaxBackoff = 5 * time.Minute
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.wake = make(chan struct{}, 1)
	return &s
}

// Wake asks the sink to read the outbox now (after a spend).
func (s *EventSink) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (s *EventSink) Run(ctx context.Context) {
	backoff := s.MinBackoff
	for {
		n, err := s.deliver(ctx)
		var wait <-chan time.Time
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.Logger.Warn("signer: usage events not delivered; retrying", "url", s.URL, "in", backoff, "err", err)
			wait = s.After(backoff)
			backoff = min(2*backoff, s.MaxBackoff)
		case n == s.Batch:
			backoff = s.MinBackoff
			continue // more may be waiting
		default:
			backoff = s.MinBackoff
			wait = s.After(s.Poll)
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-s.wake:
		}
	}
}

// pending reads the oldest undelivered events of the sink's topics, at
// most Batch: the store reads them by topic, so another sink's backlog (a
// usage sink that is down) costs this one nothing.
func (s *EventSink) pending(ctx context.Context) ([]ledger.OutboxEvent, error) {
	topics := s.Topics
	if topics == nil {
		topics = []string{TopicUsage, TopicRefund}
	}
	return s.Ledger.PendingOutbox(ctx, 0, s.Batch, topics...)
}

// deliver sends one batch of pending events and marks it delivered.
func (s *EventSink) deliver(ctx context.Context) (int, error) {
	evs, err := s.pending(ctx)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	if s.Plain {
		for i, e := range evs {
			if err := s.post(ctx, e.Body, "application/json"); err != nil {
				return i, err
			}
			if err := s.Ledger.MarkDelivered(context.WithoutCancel(ctx), []int64{e.ID}); err != nil {
				return i, err
			}
			if s.Delivered != nil {
				s.Delivered(1)
			}
		}
		return len(evs), nil
	}
	batch := make([]CloudEvent, len(evs))
	ids := make([]int64, len(evs))
	for i, e := range evs {
		typ := EventTypeUsage
		if e.Topic == TopicRefund {
			typ = EventTypeRefund
		}
		batch[i] = CloudEvent{SpecVersion: "1.0", ID: e.Key, Source: s.Source, Type: typ, Subject: e.Subject,
			Time: e.At, DataContentType: "application/json", Data: e.Body}
		ids[i] = e.ID
	}
	body, err := json.Marshal(batch)
	if err != nil {
		return 0, err
	}
	if err := s.post(ctx, body, "application/cloudevents-batch+json"); err != nil {
		return 0, err
	}
	if err := s.Ledger.MarkDelivered(context.WithoutCancel(ctx), ids); err != nil {
		return 0, err
	}
	if s.Delivered != nil {
		s.Delivered(len(evs))
	}
	return len(evs), nil
}

// post POSTs body to the sink: nil after a 2xx.
func (s *EventSink) post(ctx context.Context, body []byte, contentType string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// OutboxPruner deletes delivered outbox events older than Retention from
// the ledger, every Every (default an hour), so the outbox holds what is
// pending and a recent history, not every event ever signed.
type OutboxPruner struct {
	Ledger    *ledger.Ledger
	Retention time.Duration
	Every     time.Duration
	// After waits between rounds; default time.After.
	After  func(time.Duration) <-chan time.Time
	Logger *slog.Logger
}

// Run prunes until ctx ends.
func (p *OutboxPruner) Run(ctx context.Context) {
	every, after, log := p.Every, p.After, p.Logger
	if every <= 0 {
		every = time.Hour
	}
	if after == nil {
		after = time.After
	}
	if log == nil {
		log = slog.Default()
	}
	for {
		if n, err := p.Ledger.PruneOutbox(ctx, p.Retention); err != nil && ctx.Err() == nil {
			log.Warn("signer: pruning the outbox", "err", err)
		} else if n > 0 {
			log.Info("signer: pruned delivered outbox events", "events", n, "retention", p.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-after(every):
		}
	}
}
