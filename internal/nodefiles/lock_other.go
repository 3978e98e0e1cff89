//go:build !unix

package nodefiles

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// lockFile does nothing where flock is not available: the data directory
// is not guarded against a second process there.
func lockFile(*os.File) error { return nil }
