package nodefiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the lock's name in a data directory.
const LockFile = "LOCK"

// DirLock is a data directory held by this process: an exclusive lock on
// dir/LOCK, released by Release or when the process ends.
type DirLock struct {
	dir  string
	f    *os.File
	made string // the outermost directory Lock created, or ""
}

// Lock creates dir if needed and takes its lock, so that one node at a
// time uses it. A directory that is a file, cannot be created or cannot be
// written, and a directory another holder has locked (another process, or
// another node in this one), are errors that say so.
func Lock(dir string) (*DirLock, error) {
	fi, err := os.Stat(dir)
	made := ""
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("data dir %s is a file, not a directory", dir)
	case errors.Is(err, fs.ErrNotExist):
		made = outermostMissing(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s: cannot create it: %w", dir, err)
		}
	case errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("data dir %s cannot be created: a directory above it is a file", dir)
	case err != nil:
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	l := &DirLock{dir: dir, made: made}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		l.removeCreated()
		return nil, fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			b, _ := os.ReadFile(filepath.Join(dir, LockFile))
			who := "another byoc process"
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				who += fmt.Sprintf(" (pid %d)", pid)
			}
			return nil, fmt.Errorf("data dir %s is in use by %s", dir, who)
		}
		l.removeCreated()
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	l.f = f
	// The holder's pid, for the message another process gets.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return l, nil
}

// Release gives the lock up. The lock file stays: removing it would let a
// process that opened it before the removal lock a file nobody else sees.
func (l *DirLock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// Abandon releases the lock after a start that failed and, if Lock made
// the directory (and its parents), removes them with whatever the failed
// start wrote there, so that a failed start leaves nothing half-made.
func (l *DirLock) Abandon() {
	if l == nil {
		return
	}
	if l.f != nil {
		// Still held: nobody else can be writing there.
		l.removeCreated()
	}
	l.Release()
}

func (l *DirLock) removeCreated() {
	if l.made != "" {
		os.RemoveAll(l.made)
	}
}

// outermostMissing is the outermost directory on dir's path that does not
// exist yet: what MkdirAll(dir) creates.
func outermostMissing(dir string) string {
	top := filepath.Clean(dir)
	for {
		parent := filepath.Dir(top)
		if parent == top {
			return top
		}
		if _, err := os.Stat(parent); err == nil {
			return top
		}
		top = parent
	}
}
