package gateway

import (
	"sync"
	"time"
)

// Token reuse.
//
// A token is an orchestrator's offer for a capability: its price, fresh
// ticket params, free capacity and our balance there. Asking for one costs
// a round trip, a signature check and a ledger read at the orchestrator —
// for a quick worker as much as the job itself — so the gateway keeps each
// orchestrator's answer per capability for Config.TokenReuse (2 s by
// default) and jobs in that time skip the request:
//
//   - A usable token's ticket params serve the jobs that reuse it through
//     one payment session shared by them (the Payer's: with the local key
//     a PM session, whose nonces come from one counter, so no two tickets
//     repeat one, and which takes at most the sender's refresh threshold
//     of nonces, 500; the recipient accepts 600 per recipientRandHash). A
//     job whose payment the session cannot take asks for a fresh token
//     there and then, which replaces the old one.
//   - A refusal (unknown capability, no capacity, too dear, a transport
//     error) is kept as long, so a bad orchestrator is not asked on every
//     job. Timeouts are not kept: they say nothing of the next request.
//   - An attempt that fails at an orchestrator drops its token at once
//     (forget), whatever the failure: the next job asks again.
//   - A job with the client's own ID always asks (its token may report the
//     job's own balance at the orchestrator), and so does every job when
//     TokenReuse is negative.
//
// A reused token's balance figures are not used: they describe the pool as
// it was when the token came, before the jobs since. The books' own figure
// sizes those jobs' payments, and answers keep reconciling the books
// (Livepeer-Balance).
type tokenCache struct {
	ttl   time.Duration // ≤ 0: off
	now   func() time.Time
	payer Payer

	mu sync.Mutex
	m  map[tokenKey]*cachedToken
}

type tokenKey struct{ url, capability string }

// cachedToken is one orchestrator's answer to a token request, and for a
// usable token the payment session the jobs reusing it share.
type cachedToken struct {
	res     tokenResult
	at      time.Time
	session PaySession // nil without an offer; retired with the token
}

func newTokenCache(ttl time.Duration, now func() time.Time, payer Payer) *tokenCache {
	return &tokenCache{ttl: ttl, now: now, payer: payer, m: map[tokenKey]*cachedToken{}}
}

// get returns the answer u gave for capability within the reuse time:
// either an offer (a copy, marked reused, with the shared session) or why
// it is not usable.
func (c *tokenCache) get(u, capability string) (tokenResult, bool) {
	if c.ttl <= 0 {
		return tokenResult{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := c.m[tokenKey{u, capability}]
	if ct == nil {
		return tokenResult{}, false
	}
	if c.now().Sub(ct.at) >= c.ttl {
		c.retireLocked(tokenKey{u, capability}, ct)
		return tokenResult{}, false
	}
	r := ct.res
	if r.offer != nil {
		o := *r.offer
		o.reused, o.cached = true, ct
		o.snap, o.poolFigure, o.latency = snapshot{}, figure{}, 0
		r.offer = &o
	}
	return r, true
}

// put keeps u's answer r (replacing what was kept) unless it is a timeout,
// and returns r with its offer tied to the kept entry.
func (c *tokenCache) put(u, capability string, r tokenResult) tokenResult {
	if c.ttl <= 0 || (r.err != nil && r.err.Err == ErrTimeout) {
		return r
	}
	ct := &cachedToken{res: r, at: c.now()}
	if r.offer != nil {
		o := *r.offer
		ct.res.offer = &o
		ct.session = c.payer.Share(o.token)
		o2 := o
		o2.cached = ct
		r.offer = &o2
	}
	k := tokenKey{u, capability}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[k]; old != nil {
		c.retireLocked(k, old)
	}
	c.m[k] = ct
	// Expired entries of other orchestrators and capabilities go too, so
	// their sessions end.
	for k2, ct2 := range c.m {
		if c.now().Sub(ct2.at) >= c.ttl {
			c.retireLocked(k2, ct2)
		}
	}
	return r
}

// forget drops u's token for capability, if it is still ct (nil: any).
func (c *tokenCache) forget(u, capability string, ct *cachedToken) {
	k := tokenKey{u, capability}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.m[k]; cur != nil && (ct == nil || cur == ct) {
		c.retireLocked(k, cur)
	}
}

func (c *tokenCache) retireLocked(k tokenKey, ct *cachedToken) {
	if c.m[k] == ct {
		delete(c.m, k)
	}
	if ct.session != nil {
		ct.session.Retire()
	}
}
