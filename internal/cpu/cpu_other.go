//go:build !unix

package cpu

import "time"

// Process is not measured on this platform: 0, and callers report no CPU
// time.
func Process() time.Duration { return 0 }
