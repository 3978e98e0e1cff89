package ledger

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// MaxAmount is the largest magnitude an amount or a balance may have:
// 2^256−1 wei, the range of a uint256 on chain. Anything larger is absurd
// input and is refused.
var MaxAmount = Amount{new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))}

// Amount is a whole number of wei. It is immutable: every operation returns a
// new Amount, so values can be shared freely. The zero value is 0.
type Amount struct {
	i *big.Int // nil means 0; never mutated after construction
}

// Wei returns n wei.
func Wei(n int64) Amount { return Amount{big.NewInt(n)} }

// AmountFromBig returns a copy of b as an Amount.
func AmountFromBig(b *big.Int) Amount {
	if b == nil {
		return Amount{}
	}
	return Amount{new(big.Int).Set(b)}
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
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return Amount{}, fmt.Errorf("%w: amount %q is not a decimal integer", ErrInvalidInput, s)
	}
	a := Amount{b}
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

func (a Amount) big() *big.Int {
	if a.i == nil {
		return new(big.Int)
	}
	return a.i
}

// Big returns a copy of a as a *big.Int.
func (a Amount) Big() *big.Int { return new(big.Int).Set(a.big()) }

// Rat returns a as an exact *big.Rat.
func (a Amount) Rat() *big.Rat { return new(big.Rat).SetInt(a.big()) }

// String returns the decimal form, e.g. "-1500".
func (a Amount) String() string { return a.big().String() }

// Sign returns -1, 0 or +1.
func (a Amount) Sign() int { return a.big().Sign() }

// IsZero reports whether a is 0.
func (a Amount) IsZero() bool { return a.Sign() == 0 }

// Cmp compares a and b: -1, 0 or +1.
func (a Amount) Cmp(b Amount) int { return a.big().Cmp(b.big()) }

// Add returns a+b.
func (a Amount) Add(b Amount) Amount { return Amount{new(big.Int).Add(a.big(), b.big())} }

// Sub returns a−b.
func (a Amount) Sub(b Amount) Amount { return Amount{new(big.Int).Sub(a.big(), b.big())} }

// Neg returns −a.
func (a Amount) Neg() Amount { return Amount{new(big.Int).Neg(a.big())} }

// Int64 returns a as an int64 and whether it fits.
func (a Amount) Int64() (int64, bool) { return a.big().Int64(), a.big().IsInt64() }

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
