//go:build !unix

package journal

import "os"

// lockDir only creates dir/LOCK where flock is not available: the data
// directory must not be shared between processes there.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(dir+"/LOCK", os.O_CREATE|os.O_RDWR, 0o600)
}
