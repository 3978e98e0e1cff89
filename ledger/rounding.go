package ledger

import (
	"fmt"
	"math/big"
	"time"
)

// This file is the one place where exact fractions become whole wei or whole
// billing units. The rule is stated in docs/ledger.md ("Amounts and the
// rounding rule").

// UnitsFor returns how many whole billing units of length unit a duration d
// costs: d / unit rounded up, and at least 1 (a job that ran at all pays for
// one unit). unit must be positive; a negative d counts as 0 elapsed.
func UnitsFor(d, unit time.Duration) int64 {
	if unit <= 0 {
		panic("ledger.UnitsFor: unit must be positive")
	}
	if d <= 0 {
		return 1
	}
	n := int64(d / unit)
	if d%unit != 0 {
		n++
	}
	return max(n, 1)
}

// BilledUnits is the rule for billing a job's compute time: the units of
// elapsed rounded up, at least 1 (UnitsFor), and never more than the units
// of limit, the time the job was allowed (its timeout_seconds). A job cut
// at its limit is stopped just past it; it pays for the limit, not for the
// moment it was seen to have passed. unit must be positive.
func BilledUnits(elapsed, limit, unit time.Duration) int64 {
	return min(UnitsFor(elapsed, unit), UnitsFor(limit, unit))
}

// CostOf returns the cost of units billing units at price wei per unit,
// rounded up to a whole wei. price must be non-negative and units ≥ 0.
func CostOf(price *big.Rat, units int64) (Amount, error) {
	if price == nil || price.Sign() < 0 || units < 0 {
		return Amount{}, fmt.Errorf("%w: cost of %d units at price %v", ErrInvalidInput, units, price)
	}
	total := new(big.Rat).Mul(price, new(big.Rat).SetInt64(units))
	a := fromBig(ceilRat(total))
	if a.outOfRange() {
		return Amount{}, fmt.Errorf("%w: cost %s exceeds 2^256-1", ErrInvalidInput, a)
	}
	return a, nil
}

// CreditFor returns the whole-wei credit for an exact value, such as a PM
// ticket's expected value: rounded down. A negative value credits 0.
func CreditFor(v *big.Rat) Amount {
	if v == nil || v.Sign() <= 0 {
		return Amount{}
	}
	return fromBig(new(big.Int).Quo(v.Num(), v.Denom()))
}

// ceilRat rounds r up to an integer.
func ceilRat(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}
