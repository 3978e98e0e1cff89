package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"byoc/internal/defaults"
	"byoc/wire"
)

// Limits on a discovery webhook's answer.
const (
	maxWebhookBody    = 1 << 20
	maxWebhookEntries = 1000
)

// ParseOrchestratorList parses a comma-separated list of orchestrator
// addresses (--orch-addr), dropping duplicates.
func ParseOrchestratorList(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		u, err := wire.NormalizeOrchestratorURL(part)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// Discovery knows the orchestrators: a static list, and the list a webhook
// returns (go-livepeer's -orchWebhookUrl: a GET answering a JSON array of
// {"address": url, ...}), refreshed every Refresh. Until the webhook has
// answered once, the static list is all there is; a job that finds no
// orchestrator then waits for one fetch (bounded by its search timeout)
// instead of failing at once or crashing (go-livepeer D30).
type Discovery struct {
	static  []string
	webhook string
	client  *http.Client
	refresh time.Duration
	timeout time.Duration
	log     *slog.Logger

	mu struct {
		sync.Mutex
		list     []string  // the webhook's last good answer
		fetched  time.Time // when; zero: never
		lastErr  error
		inflight chan struct{} // closed when the running fetch ends
	}
}

// DiscoveryConfig configures a Discovery.
type DiscoveryConfig struct {
	// Static are orchestrator URLs (already normalised).
	Static []string
	// WebhookURL, if set, returns the list.
	WebhookURL string
	// Refresh is how often the webhook is asked again (default 1 min).
	Refresh time.Duration
	// Timeout bounds one webhook request (default 3 s).
	Timeout time.Duration
	// Client makes the webhook requests (default: a plain client).
	Client *http.Client
	Logger *slog.Logger
}

// NewDiscovery returns a Discovery; call Run to refresh the webhook in the
// background.
func NewDiscovery(cfg DiscoveryConfig) (*Discovery, error) {
	if cfg.WebhookURL != "" {
		u, err := url.Parse(cfg.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("gateway: webhook URL %q must be an absolute http(s) URL", cfg.WebhookURL)
		}
	}
	defaults.Set(&cfg.Refresh, time.Minute)
	defaults.Set(&cfg.Timeout, 3*time.Second)
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Discovery{static: slices.Clone(cfg.Static), webhook: cfg.WebhookURL, client: cfg.Client,
		refresh: cfg.Refresh, timeout: cfg.Timeout, log: cfg.Logger}, nil
}

// Run refreshes the webhook list every Refresh until ctx ends. Without a
// webhook it returns at once.
func (d *Discovery) Run(ctx context.Context) {
	if d.webhook == "" {
		return
	}
	t := time.NewTicker(d.refresh)
	defer t.Stop()
	for {
		d.fetch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Orchestrators returns the URLs known now: the static ones, then the
// webhook's. If there are none and the webhook has never answered, it
// fetches once, waiting at most until ctx ends. The error says why the list
// is empty (the webhook's last error), if it is.
func (d *Discovery) Orchestrators(ctx context.Context) ([]string, error) {
	list, fetched, lastErr := d.snapshot()
	if len(list) == 0 && d.webhook != "" && fetched.IsZero() {
		d.fetch(ctx)
		list, fetched, lastErr = d.snapshot()
	}
	if len(list) == 0 {
		switch {
		case d.webhook == "" && len(d.static) == 0:
			return nil, errors.New("no orchestrators configured (--orch-addr or --orch-webhook-url)")
		case lastErr != nil:
			return nil, fmt.Errorf("the discovery webhook gave no orchestrators: %v", lastErr)
		case fetched.IsZero():
			return nil, errors.New("the discovery webhook has not answered yet")
		default:
			return nil, errors.New("the discovery webhook lists no orchestrators")
		}
	}
	return list, nil
}

func (d *Discovery) snapshot() ([]string, time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Clone(d.static)
	for _, u := range d.mu.list {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, d.mu.fetched, d.mu.lastErr
}

// fetch asks the webhook once; concurrent callers share one request and
// each waits at most until its ctx ends.
func (d *Discovery) fetch(ctx context.Context) {
	d.mu.Lock()
	wait := d.mu.inflight
	if wait == nil {
		wait = make(chan struct{})
		d.mu.inflight = wait
		go d.doFetch(wait)
	}
	d.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
	}
}

func (d *Discovery) doFetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	list, err := d.get(ctx)
	d.mu.Lock()
	if err != nil {
		d.mu.lastErr = err
		d.log.Warn("discovery webhook failed; keeping the previous list", "url", d.webhook, "err", err, "known", len(d.mu.list))
	} else {
		d.mu.list, d.mu.fetched, d.mu.lastErr = list, time.Now(), nil
	}
	d.mu.inflight = nil
	d.mu.Unlock()
	close(done)
}

// webhookEntry is one element of the webhook's answer (go-livepeer's
// discovery format; score and other fields are ignored).
type webhookEntry struct {
	Address string `json:"address"`
}

func (d *Discovery) get(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.webhook, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWebhookBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxWebhookBody {
		return nil, fmt.Errorf("answer larger than %d bytes", maxWebhookBody)
	}
	var entries []webhookEntry
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, fmt.Errorf("answer is not a JSON list of {\"address\": url}: %v", err)
	}
	if len(entries) > maxWebhookEntries {
		entries = entries[:maxWebhookEntries]
	}
	var out []string
	for _, e := range entries {
		u, err := wire.NormalizeOrchestratorURL(e.Address)
		if err != nil {
			d.log.Warn("discovery webhook: skipping an entry", "address", e.Address, "err", err)
			continue
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}
