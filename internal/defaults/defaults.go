// Package defaults fills in the zero-valued settings of a node's config.
package defaults

import "time"

// Set sets *v to def when it is zero or negative (unset).
func Set[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
