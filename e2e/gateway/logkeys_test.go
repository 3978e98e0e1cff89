package gateway_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// keyCheck is a slog.Handler that notes every log line naming one key
// twice (its logger's With attributes included) and passes records on to
// next. The test fails at its end if there was one.
type keyCheck struct {
	next  slog.Handler
	keys  []string // from WithAttrs, with their group prefix
	group string
	s     *keyCheckState
}

type keyCheckState struct {
	mu   sync.Mutex
	done bool
	bad  []string
}

func newKeyCheck(t *testing.T, next slog.Handler) slog.Handler {
	s := &keyCheckState{}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.done = true
		for _, b := range s.bad {
			t.Errorf("a log line names a key twice: %s", b)
		}
	})
	return &keyCheck{next: next, s: s}
}

func (h *keyCheck) Enabled(context.Context, slog.Level) bool { return true }

func (h *keyCheck) Handle(ctx context.Context, r slog.Record) error {
	seen := map[string]bool{}
	var dup []string
	for _, k := range h.keys {
		if seen[k] {
			dup = append(dup, k)
		}
		seen[k] = true
	}
	r.Attrs(func(a slog.Attr) bool {
		k := h.group + a.Key
		if seen[k] {
			dup = append(dup, k)
		}
		seen[k] = true
		return true
	})
	if len(dup) > 0 {
		h.s.mu.Lock()
		if !h.s.done {
			h.s.bad = append(h.s.bad, r.Message+" "+dup[0])
		}
		h.s.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *keyCheck) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.keys = append(h.keys[:len(h.keys):len(h.keys)], nil...)
	for _, a := range as {
		c.keys = append(c.keys, h.group+a.Key)
	}
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *keyCheck) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.group + name + "."
	c.next = h.next.WithGroup(name)
	return &c
}
