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
)

// Poster delivers JSON documents (alerts) to a URL in the background, in
// order, retrying each with exponential backoff until it is accepted (any
// 2xx) or the poster stops. Its queue is in memory: what is queued when the
// process ends is lost (usage events go through the ledger's outbox
// instead).
type Poster struct {
	URL     string
	Headers map[string]string
	Client  *http.Client
	// After waits between retries; default time.After (tests pass a
	// manual one).
	After func(time.Duration) <-chan time.Time
	// MinBackoff and MaxBackoff bound the waits; defaults 1 s and 5 min.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger

	queue chan []byte
}

// NewPoster returns a poster with a queue of size entries.
func NewPoster(p Poster, size int) *Poster {
	if p.Client == nil {
		p.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if p.After == nil {
		p.After = time.After
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = time.Second
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = 5 * time.Minute
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	p.queue = make(chan []byte, size)
	return &p
}

// Post queues v; false when the queue is full (logged).
func (p *Poster) Post(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		p.Logger.Error("signer: encoding a notification", "err", err)
		return false
	}
	select {
	case p.queue <- b:
		return true
	default:
		p.Logger.Error("signer: notification queue full; dropped", "url", p.URL, "body", string(b))
		return false
	}
}

// Run delivers until ctx ends.
func (p *Poster) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-p.queue:
			backoff := p.MinBackoff
			for {
				err := p.send(ctx, b)
				if err == nil {
					break
				}
				p.Logger.Warn("signer: notification not delivered; retrying", "url", p.URL, "in", backoff, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-p.After(backoff):
				}
				backoff = min(2*backoff, p.MaxBackoff)
			}
		}
	}
}

func (p *Poster) send(ctx context.Context, b []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	resp, err := p.Client.Do(req)
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
