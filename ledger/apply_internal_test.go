package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// inputHash hashes what it always hashed: stored entries keep their hash,
// and a replay is compared with it.
func TestInputHashFormat(t *testing.T) {
	old := func(parts ...string) string {
		h := sha256.New()
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s;", len(p), p)
		}
		return hex.EncodeToString(h.Sum(nil)[:16])
	}
	long := strings.Repeat("x", 300)
	for _, parts := range [][]string{
		{},
		{""},
		{"credit", PoolKey{"0xa", "echo", ""}.Ref().Encode(), "1000"},
		{"charge", "up-to", JobKey{"0xa", "j1"}.Ref().Encode(), "123456789012345678901234567890"},
		{long, "é", long},
	} {
		if got, want := inputHash(parts...), old(parts...); got != want {
			t.Errorf("inputHash(%q) = %s, want %s", parts, got, want)
		}
	}
}

// dedupRefs keeps each reference once, in the order of their encodings.
func TestDedupRefsOrder(t *testing.T) {
	refs := []Ref{
		JobKey{"0xab", "j"}.Ref(), PoolKey{"0xab", "echo", ""}.Ref(), PoolKey{"0xa", "echo", ""}.Ref(),
		PoolKey{"0xab", "echo", "c"}.Ref(), JobKey{"0xa", "jj"}.Ref(), JobKey{"0xa", "j"}.Ref(),
		PoolKey{"0xab", "echo", ""}.Ref(), PoolKey{"0xab", "ech", "z"}.Ref(), JobKey{"0xa", "j"}.Ref(),
		PoolKey{"0xa b", "echo", ""}.Ref(), PoolKey{"0xa~", "echo", ""}.Ref(),
	}
	want := slices.Clone(refs)
	slices.SortFunc(want, func(a, b Ref) int { return strings.Compare(a.Encode(), b.Encode()) })
	want = slices.Compact(want)
	got := dedupRefs(slices.Clone(refs))
	if !slices.Equal(got, want) {
		t.Errorf("dedupRefs:\n got %v\nwant %v", got, want)
	}
}
