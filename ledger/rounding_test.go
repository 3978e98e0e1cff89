package ledger_test

import (
	"testing"
	"time"

	"byoc/ledger"
)

// Billed time is rounded up to whole seconds, at least one, and never more
// than the job's timeout.
func TestBilledUnits(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		elapsed, limit time.Duration
		want           int64
	}{
		{0, 30 * s, 1},
		{-s, 30 * s, 1},
		{time.Microsecond, 30 * s, 1},
		{s, 30 * s, 1},
		{s + time.Millisecond, 30 * s, 2},
		{3 * s, 30 * s, 3},
		{3*s + time.Millisecond, 30 * s, 4},
		{3 * s, 3 * s, 3},
		{3*s + time.Millisecond, 3 * s, 3}, // cut just past its timeout
		{time.Hour, 3 * s, 3},
		{5 * s, 0, 1},
	} {
		if got := ledger.BilledUnits(tc.elapsed, tc.limit, s); got != tc.want {
			t.Errorf("BilledUnits(%v, %v) = %d, want %d", tc.elapsed, tc.limit, got, tc.want)
		}
	}
}
