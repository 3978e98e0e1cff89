package orchestrator

import (
	"errors"
	"math/big"
	"sort"
	"sync"
)

// The registry holds the capabilities workers registered and their capacity
// slots. Unlike go-livepeer (docs/protocol.md, D9, D10) every read takes the lock,
// a slot is only handed out while load < capacity, a slot is released at
// most once, and re-registering a worker keeps the slots in use.

// errNoCapacity is returned by reserve when every worker is busy.
var errNoCapacity = errors.New("no capacity available for capability")

// errUnknownCapability is returned for a capability nobody registered.
var errUnknownCapability = errors.New("unknown capability")

// workerEntry is one worker serving a capability.
type workerEntry struct {
	url      string
	token    string
	capacity int
	load     int
}

// capability is a registered capability and its workers.
type capability struct {
	name        string
	description string
	price       *big.Rat // wei per second, exact
	workers     []*workerEntry
}

type registry struct {
	mu   sync.Mutex
	caps map[string]*capability
}

func newRegistry() *registry { return &registry{caps: map[string]*capability{}} }

// register adds a worker to a capability, or updates it when its URL is
// already registered (capacity, token, price, description). The price is
// the capability's: the latest registration sets it for all its workers.
func (r *registry) register(name, description, url, token string, capacity int, price *big.Rat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.caps[name]
	if c == nil {
		c = &capability{name: name}
		r.caps[name] = c
	}
	c.description, c.price = description, new(big.Rat).Set(price)
	for _, w := range c.workers {
		if w.url == url {
			w.token, w.capacity = token, capacity
			return
		}
	}
	c.workers = append(c.workers, &workerEntry{url: url, token: token, capacity: capacity})
}

// unregister removes a capability and all its workers; running jobs keep
// their slots until they end. It reports whether the capability existed.
func (r *registry) unregister(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.caps[name]
	delete(r.caps, name)
	return ok
}

// removeWorker removes one worker (it failed: unreachable or refused our
// token), and the capability when no worker is left.
func (r *registry) removeWorker(name, url string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.caps[name]
	if c == nil {
		return
	}
	for i, w := range c.workers {
		if w.url == url {
			c.workers = append(c.workers[:i], c.workers[i+1:]...)
			break
		}
	}
	if len(c.workers) == 0 {
		delete(r.caps, name)
	}
}

// capInfo is a snapshot of a capability for quoting.
type capInfo struct {
	name      string
	price     *big.Rat
	available int
	capacity  int
	workers   int
}

// info returns a snapshot of a capability.
func (r *registry) info(name string) (capInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.caps[name]
	if c == nil {
		return capInfo{}, errUnknownCapability
	}
	ci := capInfo{name: name, price: new(big.Rat).Set(c.price), workers: len(c.workers)}
	for _, w := range c.workers {
		ci.capacity += w.capacity
		ci.available += max(w.capacity-w.load, 0)
	}
	return ci, nil
}

// list returns snapshots of every capability, by name.
func (r *registry) list() []capInfo {
	r.mu.Lock()
	names := make([]string, 0, len(r.caps))
	for n := range r.caps {
		names = append(names, n)
	}
	r.mu.Unlock()
	sort.Strings(names)
	var out []capInfo
	for _, n := range names {
		if ci, err := r.info(n); err == nil {
			out = append(out, ci)
		}
	}
	return out
}

// slot is one reserved unit of a worker's capacity.
type slot struct {
	r        *registry
	w        *workerEntry
	capName  string
	url      string
	token    string
	price    *big.Rat
	released bool // guarded by r.mu
}

// reserve takes a slot on the least loaded worker with room.
func (r *registry) reserve(name string) (*slot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.caps[name]
	if c == nil {
		return nil, errUnknownCapability
	}
	var best *workerEntry
	for _, w := range c.workers {
		if w.load < w.capacity && (best == nil || w.capacity-w.load > best.capacity-best.load) {
			best = w
		}
	}
	if best == nil {
		return nil, errNoCapacity
	}
	best.load++
	return &slot{r: r, w: best, capName: name, url: best.url, token: best.token, price: new(big.Rat).Set(c.price)}, nil
}

// release gives the slot back; calling it again does nothing.
func (s *slot) release() {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	if s.w.load > 0 {
		s.w.load--
	}
}
