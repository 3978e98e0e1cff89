package lazylog

import (
	"bytes"
	"context"
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
