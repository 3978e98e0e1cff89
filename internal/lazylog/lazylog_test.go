package lazylog

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
)

// TestSameOutput: a logger with deferred attributes writes what the
// handler it wraps writes, through With, WithGroup and levels.
func TestSameOutput(t *testing.T) {
	for _, json := range []bool{false, true} {
		var eager, lazy bytes.Buffer
		mk := func(buf *bytes.Buffer) slog.Handler {
			opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}
			if json {
				return slog.NewJSONHandler(buf, opts)
			}
			return slog.NewTextHandler(buf, opts)
		}
		for _, l := range []*slog.Logger{slog.New(mk(&eager)), Logger(slog.New(mk(&lazy)))} {
			a := l.With("job", "j1", "n", 3)
			a.Info("one", "k", "v")
			a.Debug("hidden", "k", "v")
			b := a.WithGroup("g").With("in", true)
			b.Warn("two", "x", 1)
			a.With().WithGroup("").Error("three")
			l.Info("four")
		}
		if eager.String() != lazy.String() {
			t.Errorf("json %v: deferred attributes wrote\n%s\nwant\n%s", json, lazy.String(), eager.String())
		}
		if eager.Len() == 0 {
			t.Fatal("nothing written")
		}
	}
	l := Logger(slog.Default())
	if Logger(l) != l || Handler(l.Handler()) != l.Handler() {
		t.Error("wrapped twice")
	}
	if !l.Handler().Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled not passed through")
	}
}

// BenchmarkWith gives a logger to a job as the nodes do, at a level where
// the job writes nothing: slog's text handler, then with deferred
// attributes.
func BenchmarkWith(b *testing.B) {
	base := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, l := range []struct {
		name string
		l    *slog.Logger
	}{{"text", base}, {"deferred", Logger(base)}} {
		b.Run(l.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				j := l.l.With("request_id", "0123456789abcdef0123456789abcdef", "capability", "echo",
					"sender", "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F", "job_id", "0123456789abcdef")
				j.Info("job done", "outcome", "ok")
			}
		})
	}
}
