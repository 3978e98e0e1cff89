package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ReadyWindow is how recently an orchestrator must have answered a token
// or job request for the gateway to count as ready without asking one.
const ReadyWindow = time.Minute

// answeredSince reports whether any orchestrator answered after t.
func (l *latencies) answeredSince(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.mu.m {
		if s.answered.After(t) {
			return true
		}
	}
	return false
}

// Ready reports whether the gateway can take jobs: the books' ledger
// answers a read, and at least one orchestrator answers — one answered a
// token or job request within ReadyWindow or, if none did, one of those
// discovery lists answers an HTTP request now (any status). /readyz on
// the admin listener serves it.
func (g *Gateway) Ready(ctx context.Context) error {
	if err := g.cfg.Ledger.Ready(ctx); err != nil {
		return err
	}
	if g.stats.answeredSince(g.cfg.Now().Add(-ReadyWindow)) {
		return nil
	}
	urls, err := g.cfg.Discovery.Orchestrators(ctx)
	if err != nil {
		return err
	}
	errs := make(chan error, len(urls))
	for _, u := range urls {
		go func() { errs <- g.probe(ctx, u) }()
	}
	var why []string
	for range urls {
		err := <-errs
		if err == nil {
			return nil // the others end with ctx, when the handler returns
		}
		why = append(why, err.Error())
	}
	return fmt.Errorf("no orchestrator answers: %s", strings.Join(why, "; "))
}

// probe asks u for its root: any HTTP answer shows it is up.
func (g *Gateway) probe(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	resp, err := g.cfg.Client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // not the "Get <url>:" prefix again
		}
		return fmt.Errorf("%s: %w", u, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return nil
}
