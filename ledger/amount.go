package ledger

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// MaxAmount is the largest magnitude an amount or a balance may have:
// 2^256−1 wei, the range of a uint256 on chain. Anything larger is absurd
// input and is refused.
var MaxAmount = fromBig(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)))

// Amount is a whole number of wei. It is immutable: every operation returns a
// new Amount, so values can be shared freely. The zero value is 0.
//
// An amount that fits in an int64 (all of them, in practice: 2^63 wei is
// 9.2 ether) is held as one, and computed with without allocating; a
// larger one as a *big.Int.
type Amount struct {
	n int64    // the value, when i is nil
	i *big.Int // the value when it does not fit in an int64, else nil; never mutated
}

// fromBig returns b as an Amount, taking it over.
func fromBig(b *big.Int) Amount {
	if b.IsInt64() {
		return Amount{n: b.Int64()}
	}
	return Amount{i: b}
}

// Wei returns n wei.
func Wei(n int64) Amount { return Amount{n: n} }

// AmountFromBig returns a copy of b as an Amount.
func AmountFromBig(b *big.Int) Amount {
	if b == nil {
		return Amount{}
	}
	if b.IsInt64() {
		return Amount{n: b.Int64()}
	}
	return Amount{i: new(big.Int).Set(b)}
}

// ParseAmount parses a decimal integer ("-12", "8000000000"). It rejects
// fractions, exponents, hex and anything beyond ±MaxAmount.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 80 {
		return Amount{}, fmt.Errorf("%w: amount %q is not a decimal integer", ErrInvalidInput, s)
	}
	for i, c := range s {
		if !(c >= '0' && c <= '9' || (i == 0 && (c == '-' || c == '+'))) {
			return Amount{}, fmt.Errorf("%w: amount %q is not a decimal integer", ErrInvalidInput, s)
		}
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Amount{n: v}, nil
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return Amount{}, fmt.Errorf("%w: amount %q is not a decimal integer", ErrInvalidInput, s)
	}
	a := fromBig(b)
	if a.outOfRange() {
		return Amount{}, fmt.Errorf("%w: amount %s exceeds 2^256-1", ErrInvalidInput, s)
	}
	return a, nil
}

// MustParseAmount is ParseAmount for constants in tests and defaults.
func MustParseAmount(s string) Amount {
	a, err := ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

// big returns a as a *big.Int, not to be mutated.
func (a Amount) big() *big.Int {
	if a.i == nil {
		return big.NewInt(a.n)
	}
	return a.i
}

// Big returns a copy of a as a *big.Int.
func (a Amount) Big() *big.Int {
	if a.i == nil {
		return big.NewInt(a.n)
	}
	return new(big.Int).Set(a.i)
}

// Rat returns a as an exact *big.Rat.
func (a Amount) Rat() *big.Rat {
	if a.i == nil {
		return new(big.Rat).SetInt64(a.n)
	}
	return new(big.Rat).SetInt(a.i)
}

// String returns the decimal form, e.g. "-1500".
func (a Amount) String() string {
	if a.i == nil {
		return strconv.FormatInt(a.n, 10)
	}
	return a.i.String()
}

// Sign returns -1, 0 or +1.
func (a Amount) Sign() int {
	if a.i == nil {
		return cmp.Compare(a.n, 0)
	}
	return a.i.Sign()
}

// IsZero reports whether a is 0.
func (a Amount) IsZero() bool { return a.i == nil && a.n == 0 }

// Cmp compares a and b: -1, 0 or +1.
func (a Amount) Cmp(b Amount) int {
	if a.i == nil && b.i == nil {
		return cmp.Compare(a.n, b.n)
	}
	return a.big().Cmp(b.big())
}

// Add returns a+b.
func (a Amount) Add(b Amount) Amount {
	if a.i == nil && b.i == nil {
		if s := a.n + b.n; (a.n^s)&(b.n^s) >= 0 { // no overflow
			return Amount{n: s}
		}
	}
	return fromBig(new(big.Int).Add(a.big(), b.big()))
}

// Sub returns a−b.
func (a Amount) Sub(b Amount) Amount {
	if a.i == nil && b.i == nil {
		if d := a.n - b.n; (a.n^b.n)&(a.n^d) >= 0 { // no overflow
			return Amount{n: d}
		}
	}
	return fromBig(new(big.Int).Sub(a.big(), b.big()))
}

// Neg returns −a.
func (a Amount) Neg() Amount {
	if a.i == nil && a.n != math.MinInt64 {
		return Amount{n: -a.n}
	}
	return fromBig(new(big.Int).Neg(a.big()))
}

// Int64 returns a as an int64 and whether it fits.
func (a Amount) Int64() (int64, bool) {
	if a.i == nil {
		return a.n, true
	}
	return a.i.Int64(), false
}

// outOfRange reports |a| > MaxAmount.
func (a Amount) outOfRange() bool { return a.i != nil && a.i.CmpAbs(MaxAmount.i) > 0 }

// MinAmount returns the smaller of a and b.
func MinAmount(a, b Amount) Amount {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// MaxOf returns the larger of a and b.
func MaxOf(a, b Amount) Amount {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}

// MarshalJSON encodes an amount as a JSON string of decimal digits, so that
// no JSON reader turns a large balance into a float.
func (a Amount) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// UnmarshalJSON accepts a JSON string or a JSON integer.
func (a *Amount) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
