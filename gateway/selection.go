package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ledger"
	"byoc/wire"
)

// Selection tuning.
const (
	// ewmaWeight is the weight of a new latency sample.
	ewmaWeight = 0.3
	// failureCooldown is how long an orchestrator that failed a job ranks
	// after the others at the same price.
	failureCooldown = 30 * time.Second
	// minGrace is the least time tokens are still collected after the
	// first usable one arrived. 10 ms let a loaded machine's scheduling
	// hiccup decide the selection (a cheaper orchestrator abandoned for a
	// dearer one, seen under -race in CI); with tokens reused, this wait
	// comes only with a fresh token request, about once per TokenReuse.
	minGrace = 50 * time.Millisecond
	// maxErrorDetail bounds how much of an orchestrator's error body is
	// quoted back to the client.
	maxErrorDetail = 300
)

// offer is a usable token from one orchestrator.
type offer struct {
	url       string // discovery URL (what the client's filter and our stats name)
	service   string // where the job goes: the token's service_addr
	token     *wire.JobToken
	price     *big.Rat // wei per second
	recipient common.Address
	// exact: a byoc orchestrator (pool_balance present): its balances are
	// exact wei. Otherwise a legacy (go-livepeer) one: `balance` is a
	// floored, saturating int64.
	exact bool
	// available is what the token says the job can count on at the
	// orchestrator (job_balance + pool_balance, or the legacy balance).
	available ledger.Amount
	// poolFigure is the orchestrator's pool for us, when usable for
	// reconciling the books.
	poolFigure figure
	latency    time.Duration
	snap       snapshot // of the books when the token was asked for
	// cached is the token cache's entry this offer came from or went into
	// (nil: not kept); reused, that the token was asked for by an earlier
	// job, so its balance figures are stale and not used.
	cached *cachedToken
	reused bool
}

// figure is a balance an orchestrator reported, if it reported one.
type figure struct {
	ok    bool
	exact bool
	v     ledger.Amount
	// untouched: no figure, but the orchestrator refused the job before
	// opening it or taking its payment, so our pool there did not move.
	untouched bool
}

// latencies keeps recent per-orchestrator latencies and failures.
type latencies struct {
	now func() time.Time
	mu  struct {
		sync.Mutex
		m map[string]*orchStats
	}
}

type orchStats struct {
	address     common.Address
	token, job  ewma
	lastFailure time.Time
	lastError   string
	ok, failed  int64
	answered    time.Time // last token or job it answered (readiness)
}

// ewma is an exponentially weighted moving average of durations.
type ewma struct {
	v   float64 // seconds
	set bool
}

func (e *ewma) add(d time.Duration) {
	s := d.Seconds()
	if !e.set {
		e.v, e.set = s, true
		return
	}
	e.v = ewmaWeight*s + (1-ewmaWeight)*e.v
}

func (e ewma) duration() time.Duration { return time.Duration(e.v * float64(time.Second)) }

func newLatencies(now func() time.Time) *latencies {
	l := &latencies{now: now}
	l.mu.m = map[string]*orchStats{}
	return l
}

func (l *latencies) get(u string) *orchStats {
	s := l.mu.m[u]
	if s == nil {
		s = &orchStats{}
		l.mu.m[u] = s
	}
	return s
}

func (l *latencies) tokenOK(u string, d time.Duration, addr common.Address) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.get(u)
	s.token.add(d)
	s.answered = l.now()
	if addr != (common.Address{}) {
		s.address = addr
	}
}

func (l *latencies) tokenSlow(u string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(u).token.add(d) // a lower bound of its latency
}

func (l *latencies) jobDone(u string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.get(u)
	s.job.add(d)
	s.ok++
	s.answered = l.now()
}

func (l *latencies) failure(u string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.get(u)
	s.lastFailure, s.lastError = l.now(), err.Error()
	s.failed++
}

// address is the recipient address last seen in u's tokens.
func (l *latencies) address(u string) (common.Address, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.mu.m[u]
	if s == nil || s.address == (common.Address{}) {
		return common.Address{}, false
	}
	return s.address, true
}

// rank returns the sort key of u after the price: recently failed
// orchestrators last, then by token latency plus job latency (an unknown
// one counts as 0, so a new orchestrator gets tried).
func (l *latencies) rank(u string) (failed bool, score time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.mu.m[u]
	if s == nil {
		return false, 0
	}
	failed = !s.lastFailure.IsZero() && l.now().Sub(s.lastFailure) < failureCooldown
	return failed, s.token.duration() + s.job.duration()
}

// OrchestratorStatus is what the gateway knows of one orchestrator.
type OrchestratorStatus struct {
	URL          string    `json:"url"`
	Address      string    `json:"address,omitempty"`
	TokenLatency string    `json:"token_latency"`
	JobLatency   string    `json:"job_latency"`
	Jobs         int64     `json:"jobs_ok"`
	Failures     int64     `json:"failures"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
}

func (l *latencies) list() []OrchestratorStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]OrchestratorStatus, 0, len(l.mu.m))
	for u, s := range l.mu.m {
		st := OrchestratorStatus{URL: u, TokenLatency: s.token.duration().String(), JobLatency: s.job.duration().String(),
			Jobs: s.ok, Failures: s.failed, LastFailure: s.lastFailure, LastError: s.lastError}
		if s.address != (common.Address{}) {
			st.Address = s.address.Hex()
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b OrchestratorStatus) int { return strings.Compare(a.URL, b.URL) })
	return out
}

// filterOrchestrators applies the job's include/exclude lists, compared
// with the discovery URLs as go-livepeer does, and also in normalised form.
func filterOrchestrators(urls []string, f wire.JobOrchestratorsFilter) []string {
	norm := func(list []string) []string {
		out := slices.Clone(list)
		for _, s := range list {
			if u, err := wire.NormalizeOrchestratorURL(s); err == nil {
				out = append(out, u)
			}
		}
		return out
	}
	inc, exc := norm(f.Include), norm(f.Exclude)
	var out []string
	for _, u := range urls {
		if slices.Contains(exc, u) || (len(f.Include) > 0 && !slices.Contains(inc, u)) {
			continue
		}
		out = append(out, u)
	}
	return out
}

type tokenResult struct {
	url     string
	offer   *offer
	err     *AttemptError
	latency time.Duration
	reused  bool // from the token cache: no request was made
}

// collectOffers asks every candidate for a token in parallel and returns
// the usable ones, best first, and why the others are not usable.
//
// It collects answers until all have come, the search timeout passes, or —
// once a usable token is in from an orchestrator that has not failed in the
// last failureCooldown — the time the first such one took (at least
// minGrace) has passed again: an orchestrator answering much slower than
// the fastest is not waited for. A reused token counts as in at once. Among what came, offers are ordered by
// price, then recent failure, then recent latency.
func (g *Gateway) collectOffers(ctx context.Context, j *job, urls []string) ([]*offer, []*AttemptError) {
	start := g.cfg.Now()
	searchCtx, cancel := context.WithTimeout(ctx, j.search)
	defer cancel()
	results := make(chan tokenResult, len(urls)) // sized by what we iterate (D30)
	for _, u := range urls {
		if !j.clientID {
			if r, ok := g.tokens.get(u, j.req.Capability); ok {
				r.reused = true
				results <- r
				continue
			}
		}
		snap := g.snapshotOf(u, j.req.Capability)
		go func() {
			results <- g.freshToken(searchCtx, j, u, snap)
		}()
	}
	var offers []*offer
	var fails []*AttemptError
	pending := map[string]bool{}
	for _, u := range urls {
		pending[u] = true
	}
	var grace <-chan time.Time
	for len(pending) > 0 {
		select {
		case r := <-results:
			delete(pending, r.url)
			if r.err != nil {
				fails = append(fails, r.err)
				if !r.reused {
					g.m.attempts.WithLabelValues(r.url, string(StageToken), outcomeOf(r.err)).Inc()
				}
				continue
			}
			outcome := "ok"
			if r.reused {
				outcome = "reused"
			}
			g.m.attempts.WithLabelValues(r.url, string(StageToken), outcome).Inc()
			offers = append(offers, r.offer)
			if failed, _ := g.stats.rank(r.url); grace == nil && !failed {
				// An offer from an orchestrator that failed lately (it ranks
				// last) does not cut the wait for the others short.
				wait := max(g.cfg.Now().Sub(start), minGrace)
				t := time.NewTimer(wait)
				defer t.Stop()
				grace = t.C
			}
		case <-grace:
			g.abandon(pending, start, &fails, "answered much slower than the fastest")
			pending = nil
		case <-searchCtx.Done():
			g.abandon(pending, start, &fails, fmt.Sprintf("no token within the search timeout of %s", j.search))
			pending = nil
		}
	}
	g.m.selectionSeconds.Observe(g.cfg.Now().Sub(start).Seconds())
	slices.SortStableFunc(offers, func(a, b *offer) int {
		if c := a.price.Cmp(b.price); c != 0 {
			return c
		}
		fa, sa := g.stats.rank(a.url)
		fb, sb := g.stats.rank(b.url)
		switch {
		case fa != fb && fa:
			return 1
		case fa != fb:
			return -1
		case sa != sb:
			return cmp.Compare(sa, sb)
		}
		return strings.Compare(a.url, b.url)
	})
	return offers, fails
}

// snapshotOf is the books' state of our pool at u, taken before asking u
// for a token, so the token's figure is compared only with the same state.
func (g *Gateway) snapshotOf(u, capability string) snapshot {
	if addr, ok := g.stats.address(u); ok {
		return g.books.snapshot(poolID{addr, capability})
	}
	return snapshot{}
}

func (g *Gateway) abandon(pending map[string]bool, start time.Time, fails *[]*AttemptError, why string) {
	for u := range pending {
		g.stats.tokenSlow(u, g.cfg.Now().Sub(start))
		g.m.attempts.WithLabelValues(u, string(StageToken), "timeout").Inc()
		*fails = append(*fails, &AttemptError{Orchestrator: u, Stage: StageToken, Err: ErrTimeout, Detail: why})
	}
}

// freshToken asks u for a token and keeps the answer for the jobs after
// (tokens.go), unless the job has the client's own ID.
func (g *Gateway) freshToken(ctx context.Context, j *job, u string, snap snapshot) tokenResult {
	r := g.askToken(ctx, j, u, snap)
	if j.clientID {
		return r
	}
	return g.tokens.put(u, j.req.Capability, r)
}

// askToken gets and checks one orchestrator's token.
func (g *Gateway) askToken(ctx context.Context, j *job, u string, snap snapshot) tokenResult {
	fail := func(status int, err error, detail string) tokenResult {
		return tokenResult{url: u, err: &AttemptError{Orchestrator: u, Stage: StageToken, Status: status, Err: err, Detail: detail}}
	}
	ctx, cancel := context.WithTimeout(ctx, j.resp)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/process/token", nil)
	if err != nil {
		return fail(0, ErrBadToken, err.Error())
	}
	req.Header.Set(wire.HeaderJobSender, g.senderHdr)
	req.Header.Set(wire.HeaderCapability, j.req.Capability)
	if g.remote != nil && g.remote.Customer() != "" {
		req.Header.Set(wire.HeaderCustomer, g.remote.Customer())
	}
	if j.clientID {
		// The client named the job: if the orchestrator has it open, the
		// token reports the job's own balance too (job_balance).
		req.Header.Set(wire.HeaderJobID, j.id)
	}
	began := g.cfg.Now()
	resp, err := g.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			g.stats.tokenSlow(u, g.cfg.Now().Sub(began))
			return fail(0, ErrTimeout, fmt.Sprintf("no token within %s", j.resp))
		}
		g.stats.failure(u, err)
		return fail(0, ErrTransport, err.Error())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxJobTokenLen+1))
	latency := g.cfg.Now().Sub(began)
	g.m.tokenSeconds.Observe(latency.Seconds())
	if err != nil {
		return fail(resp.StatusCode, ErrTransport, "reading the token: "+err.Error())
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return fail(resp.StatusCode, ErrUnknownCapability, snippet(body))
	case http.StatusServiceUnavailable:
		return fail(resp.StatusCode, ErrNoCapacity, snippet(body))
	default:
		return fail(resp.StatusCode, ErrBadToken, snippet(body))
	}
	tok, err := wire.DecodeJobToken(body)
	if err != nil {
		return fail(resp.StatusCode, ErrBadToken, err.Error())
	}
	o, aerr := g.evaluate(u, tok)
	if aerr != nil {
		return tokenResult{url: u, err: aerr}
	}
	o.latency, o.snap = latency, snap
	g.stats.tokenOK(u, latency, o.recipient)
	return tokenResult{url: u, offer: o, latency: latency}
}

// evaluate turns a token into an offer, or says why it is not usable.
func (g *Gateway) evaluate(u string, tok *wire.JobToken) (*offer, *AttemptError) {
	fail := func(err error, detail string) (*offer, *AttemptError) {
		return nil, &AttemptError{Orchestrator: u, Stage: StageToken, Status: http.StatusOK, Err: err, Detail: detail}
	}
	if tok.AvailableCapacity <= 0 {
		return fail(ErrNoCapacity, "available_capacity 0")
	}
	price, err := tok.PriceWeiPerUnit()
	if err != nil {
		return fail(ErrBadToken, err.Error())
	}
	if g.cfg.MaxPrice != nil && price.Cmp(g.cfg.MaxPrice) > 0 {
		return fail(ErrPriceTooHigh, fmt.Sprintf("%s wei/s > --max-price %s", price.RatString(), g.cfg.MaxPrice.RatString()))
	}
	o := &offer{url: u, service: u, token: tok, price: price}
	if tok.ServiceAddr != "" {
		su, err := url.Parse(tok.ServiceAddr)
		if err != nil || (su.Scheme != "http" && su.Scheme != "https") || su.Host == "" {
			return fail(ErrBadToken, fmt.Sprintf("service_addr %q is not an absolute http(s) URL", tok.ServiceAddr))
		}
		if !g.cfg.AllowForeignServiceAddr && !sameHost(u, su) {
			// The job's body and tickets would go to a host the gateway did
			// not choose (another machine, or one inside our own network).
			g.log.Warn("refusing a token whose service_addr names another host than the orchestrator asked (--allow-foreign-service-addr accepts it)",
				"orchestrator", u, "service_addr", tok.ServiceAddr)
			return fail(ErrForeignServiceAddr, fmt.Sprintf("service_addr %q is not on the host of %s, or drops its TLS", tok.ServiceAddr, u))
		}
		o.service = strings.TrimSuffix(tok.ServiceAddr, "/")
	}
	if tp := tok.TicketParams; tp != nil && len(tp.Recipient) == common.AddressLength {
		o.recipient = common.BytesToAddress(tp.Recipient)
	}
	if price.Sign() == 0 {
		return o, nil // free: no payment, no books
	}
	switch {
	case g.signer == nil && g.remote == nil:
		return fail(ErrNeedsKey, fmt.Sprintf("costs %s wei/s; start the gateway with --eth-keystore or --dev-key to pay", price.RatString()))
	case tok.TicketParams == nil:
		return fail(ErrBadToken, "priced, but no ticket_params")
	case o.recipient == (common.Address{}):
		return fail(ErrBadToken, "ticket_params without a 20-byte recipient")
	case tok.TicketParams.ExpirationParams == nil:
		return fail(ErrBadToken, "ticket_params without expiration_params")
	}
	if tok.PoolBalance != "" {
		pool, err := ledger.ParseAmount(tok.PoolBalance)
		if err != nil {
			return fail(ErrBadToken, "pool_balance: "+err.Error())
		}
		o.exact = true
		o.poolFigure = figure{ok: true, exact: true, v: pool}
		avail := pool
		if tok.JobBalance != "" {
			jb, err := ledger.ParseAmount(tok.JobBalance)
			if err != nil {
				return fail(ErrBadToken, "job_balance: "+err.Error())
			}
			avail = avail.Add(jb)
		}
		o.available = ledger.MaxOf(avail, ledger.Amount{})
	} else {
		// go-livepeer: the capability's balance, floored, saturating at
		// legacyCap; a value at the cap is only a lower bound.
		b := ledger.Wei(tok.Balance)
		o.available = ledger.MaxOf(b, ledger.Amount{})
		o.poolFigure = figure{ok: tok.Balance < legacyCap, v: b}
	}
	return o, nil
}

// sameHost reports whether service names the same host as the
// orchestrator URL u: host names compared case-insensitively without a
// trailing dot, IP addresses in canonical form; the port may differ (an
// orchestrator may answer tokens and jobs on different ports of its host),
// and so may the scheme, except from https to http: tickets asked for
// over TLS are not sent in the clear. Names are not resolved: a name and
// its address do not match.
func sameHost(u string, service *url.URL) bool {
	ou, err := url.Parse(u)
	if err != nil || (ou.Scheme == "https" && service.Scheme != "https") {
		return false
	}
	a, b := canonicalHost(ou.Hostname()), canonicalHost(service.Hostname())
	return a != "" && a == b
}

func canonicalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// legacyCap is where go-livepeer's token balance saturates (docs/protocol.md §8.3).
const legacyCap = 9223372036854775

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxErrorDetail {
		s = s[:maxErrorDetail] + "…"
	}
	return s
}

func outcomeOf(err error) string {
	for _, e := range []struct {
		err  error
		name string
	}{
		{ErrUnknownCapability, "unknown_capability"}, {ErrNoCapacity, "no_capacity"}, {ErrPriceTooHigh, "price_too_high"},
		{ErrNeedsKey, "needs_key"}, {ErrForeignServiceAddr, "foreign_service_addr"}, {ErrBadToken, "bad_token"}, {ErrStaleToken, "stale_token"}, {ErrPayment, "payment_failed"}, {ErrTimeout, "timeout"},
		{ErrTransport, "transport_error"}, {ErrOrchestratorFailed, "failed"}, {ErrBooks, "books_error"}, {ErrJobIDUsed, "job_id_used"},
	} {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "other"
}
