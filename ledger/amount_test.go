package ledger

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"
)

// Amounts held as int64 compute exactly as big.Int does, across the
// int64 boundary too, and keep one form for one value.
func TestAmountArithmetic(t *testing.T) {
	vals := []*big.Int{
		big.NewInt(0), big.NewInt(1), big.NewInt(-1), big.NewInt(1000), big.NewInt(-60_000),
		big.NewInt(math.MaxInt64), big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64 - 1), big.NewInt(math.MinInt64 + 1),
		new(big.Int).Add(big.NewInt(math.MaxInt64), big.NewInt(1)), new(big.Int).Sub(big.NewInt(math.MinInt64), big.NewInt(1)),
		new(big.Int).Lsh(big.NewInt(1), 200), MaxAmount.Big(),
	}
	check := func(what string, got Amount, want *big.Int) {
		t.Helper()
		if got.Big().Cmp(want) != 0 || got.String() != want.String() {
			t.Errorf("%s = %s, want %s", what, got, want)
		}
		if (got.i == nil) != want.IsInt64() {
			t.Errorf("%s = %s held as big.Int: %v", what, got, got.i != nil)
		}
		if v, ok := got.Int64(); ok != want.IsInt64() || ok && v != want.Int64() {
			t.Errorf("%s.Int64() = %d, %v", what, v, ok)
		}
		if got.Sign() != want.Sign() || got.IsZero() != (want.Sign() == 0) {
			t.Errorf("%s: sign %d, zero %v", what, got.Sign(), got.IsZero())
		}
		if got.outOfRange() {
			return
		}
		p, err := ParseAmount(want.String())
		if err != nil || p != got && (p.i == nil || got.i == nil || p.i.Cmp(got.i) != 0) {
			t.Errorf("ParseAmount(%s) = %v, %v", want, p, err)
		}
	}
	for _, x := range vals {
		a := AmountFromBig(x)
		check("AmountFromBig", a, x)
		check("Neg", a.Neg(), new(big.Int).Neg(x))
		for _, y := range vals {
			b := AmountFromBig(y)
			check(a.String()+" + "+b.String(), a.Add(b), new(big.Int).Add(x, y))
			check(a.String()+" - "+b.String(), a.Sub(b), new(big.Int).Sub(x, y))
			if got, want := a.Cmp(b), x.Cmp(y); got != want {
				t.Errorf("%s cmp %s = %d, want %d", a, b, got, want)
			}
		}
	}
	if Wei(0) != (Amount{}) || !MustParseAmount("-0").IsZero() || MustParseAmount("+17") != Wei(17) {
		t.Error("one value, two forms")
	}
	var back Amount
	if b, err := json.Marshal(MaxAmount); err != nil || json.Unmarshal(b, &back) != nil || back.Cmp(MaxAmount) != 0 {
		t.Errorf("JSON round trip of %s: %s, %v", MaxAmount, back, err)
	}
	if _, err := ParseAmount(new(big.Int).Add(MaxAmount.Big(), big.NewInt(1)).String()); err == nil {
		t.Error("2^256 parsed")
	}
}
