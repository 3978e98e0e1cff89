// Package lazylog defers a logger's With attributes until a record is
// written, so that hot paths can give each job its own logger for free.
package lazylog

import (
	"context"
	"log/slog"
)

// Handler returns h with its WithAttrs deferred: the attributes are kept
// and handed to h only when a record is handled. slog's own handlers
// format them at once (text or JSON for every job, though at the usual
// level almost no job logs anything); the output is the same either way.
// A handler Handler made is returned as it is.
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(*handler); ok {
		return h
	}
	return &handler{h: h}
}

// Logger is l with Handler's deferred attributes.
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(*handler); ok {
		return l
	}
	return slog.New(Handler(l.Handler()))
}

type handler struct {
	h     slog.Handler
	attrs []slog.Attr // not yet given to h
}

func (d *handler) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, l) }

func (d *handler) Handle(ctx context.Context, r slog.Record) error {
	return d.inner().Handle(ctx, r)
}

func (d *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return d
	}
	all := make([]slog.Attr, 0, len(d.attrs)+len(attrs))
	return &handler{h: d.h, attrs: append(append(all, d.attrs...), attrs...)}
}

func (d *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return d
	}
	return &handler{h: d.inner().WithGroup(name)}
}

// inner is h with the deferred attributes.
func (d *handler) inner() slog.Handler {
	if len(d.attrs) == 0 {
		return d.h
	}
	return d.h.WithAttrs(d.attrs)
}
