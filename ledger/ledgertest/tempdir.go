package ledgertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Scratch makes a new directory for files a test run leaves, such as a
// binary it builds. Under go test it is inside go test's own work
// directory (where the test binary runs from), which go test removes when
// it ends, even when a process of the run is killed before its cleanups
// run (fuzz workers are); otherwise in the system's temporary directory.
func Scratch(prefix string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "go-build") {
			return os.MkdirTemp(dir, prefix)
		}
	}
	return os.MkdirTemp("", prefix)
}

// TempDir is t.TempDir in Scratch: removed when the test ends, and by go
// test when a fuzz worker ends without running its cleanups.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := Scratch("byoc-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
