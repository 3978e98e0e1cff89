package node

import (
	"os"
	"runtime/debug"
	"sync"
	"testing"
)

// A node sets GCPercent at start, unless GOGC is set; the setting is the
// process's, so the test puts the old one back.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old); gcOnce = sync.Once{} })

	if v, set := os.LookupEnv("GOGC"); set {
		os.Unsetenv("GOGC")
		t.Cleanup(func() { os.Setenv("GOGC", v) })
	}
	gcOnce = sync.Once{}
	tuneGC()
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Errorf("without GOGC: %d, want %d", got, GCPercent)
	}

	t.Setenv("GOGC", "77")
	debug.SetGCPercent(77)
	gcOnce = sync.Once{}
	tuneGC()
	if got := debug.SetGCPercent(100); got != 77 {
		t.Errorf("with GOGC=77: %d", got)
	}
}
