package pm

import (
	"context"
	"math/big"
	"reflect"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func TestDecideNonce(t *testing.T) {
	cases := []struct {
		seen     bool
		recorded int
		want     NonceVerdict
	}{
		{false, 0, NonceAccepted},
		{false, 599, NonceAccepted},
		{false, 600, NonceTooMany},
		{true, 3, NonceSeen},
		{true, 600, NonceSeen}, // seen is checked first
	}
	for _, tc := range cases {
		if got := DecideNonce(tc.seen, tc.recorded, 600); got != tc.want {
			t.Errorf("DecideNonce(%v, %d) = %v, want %v", tc.seen, tc.recorded, got, tc.want)
		}
	}
}

type setOf map[uint32]struct{}

func (s setOf) Contains(n uint32) bool { _, ok := s[n]; return ok }
func (s setOf) Len() int               { return len(s) }

func TestApplyNonceRule(t *testing.T) {
	set := setOf{5: {}, 6: {}}
	verdicts, accepted := ApplyNonceRule(set, []uint32{0, 5, 7, 7, 8, 9}, 4)
	want := []NonceVerdict{NonceAccepted, NonceSeen, NonceAccepted, NonceSeen, NonceTooMany, NonceTooMany}
	if !reflect.DeepEqual(verdicts, want) || !reflect.DeepEqual(accepted, []uint32{0, 7}) {
		t.Fatalf("verdicts %v accepted %v", verdicts, accepted)
	}
	if len(set) != 2 {
		t.Fatal("ApplyNonceRule modified the set")
	}
	// A store's snapshot (recorded subset + count) gives the same answer.
	snap := NewNonceSnapshot([]uint32{5}, 2)
	if v2, a2 := ApplyNonceRule(snap, []uint32{0, 5, 7, 7, 8, 9}, 4); !reflect.DeepEqual(v2, want) || !reflect.DeepEqual(a2, accepted) {
		t.Fatalf("snapshot: %v %v", v2, a2)
	}
	v, a := ApplyNonceRule(setOf{}, nil, 0)
	if len(v) != 0 || len(a) != 0 {
		t.Fatal("empty input")
	}
}

func TestMemNonceBook(t *testing.T) {
	ctx := context.Background()
	b := NewMemNonceBook(3)
	s1 := NonceSession{RecipientRandHash: common.Hash{1}, ExpirationBlock: big.NewInt(100)}
	s2 := NonceSession{RecipientRandHash: common.Hash{2}, ExpirationBlock: big.NewInt(200)}
	got, err := b.RecordNonces(ctx, s1, []uint32{1, 2, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []NonceVerdict{NonceAccepted, NonceAccepted, NonceSeen, NonceAccepted, NonceTooMany}) {
		t.Fatalf("verdicts %v", got)
	}
	if got, _ := b.RecordNonces(ctx, s1, []uint32{1}); got[0] != NonceSeen {
		t.Fatal("replay accepted")
	}
	if got, _ := b.RecordNonces(ctx, s2, []uint32{1}); got[0] != NonceAccepted {
		t.Fatal("sessions are not independent")
	}
	// A call that accepts nothing does not create a session.
	if got, _ := b.RecordNonces(ctx, NonceSession{RecipientRandHash: common.Hash{3}}, nil); len(got) != 0 || b.Sessions() != 2 {
		t.Fatal("empty call created a session")
	}
	if n := b.Forget(big.NewInt(150)); n != 1 || b.Sessions() != 1 {
		t.Fatalf("forgot %d", n)
	}
	if got, _ := b.RecordNonces(ctx, s1, []uint32{1}); got[0] != NonceAccepted {
		t.Fatal("forgotten session still remembered")
	}
	if b.Forget(nil) != 0 {
		t.Fatal("forget nil")
	}
	for v, s := range map[NonceVerdict]string{NonceAccepted: "accepted", NonceSeen: "seen", NonceTooMany: "too many", 9: "unknown"} {
		if v.String() != s {
			t.Errorf("%d: %s", v, v.String())
		}
	}
}
