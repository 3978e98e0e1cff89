package wire

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is returned, wrapped with the message and field at fault, by
// every Unmarshal method when its input is not a valid encoding of the
// message: a truncated tag or value, an invalid field number, a known field
// sent with the wrong wire type, a varint that does not fit the field's type,
// or a string that is not valid UTF-8.
var ErrMalformed = errors.New("wire: malformed protobuf")

// field is one field occurrence met while decoding. A handler consumes the
// value that starts at b by calling exactly one of the typed readers (or
// skip), which records in n how many bytes the value took.
type field struct {
	msg string
	num protowire.Number
	typ protowire.Type
	b   []byte
	n   int
}

func (f *field) fail(reason string) error {
	return fmt.Errorf("%w: %s field %d: %s", ErrMalformed, f.msg, f.num, reason)
}

func (f *field) wrongType() error {
	return f.fail(fmt.Sprintf("wrong wire type %d", f.typ))
}

// walk calls handle for each field in b, in order. It stops at the first
// error.
func walk(b []byte, msg string, handle func(f *field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, msg, protowire.ParseError(n))
		}
		if !num.IsValid() {
			return fmt.Errorf("%w: %s: invalid field number %d", ErrMalformed, msg, num)
		}
		f := field{msg: msg, num: num, typ: typ, b: b[n:]}
		if err := handle(&f); err != nil {
			return err
		}
		b = f.b[f.n:]
	}
	return nil
}

// skip consumes an unknown field of any wire type.
func (f *field) skip() error {
	n := protowire.ConsumeFieldValue(f.num, f.typ, f.b)
	if n < 0 {
		return f.fail(protowire.ParseError(n).Error())
	}
	f.n = n
	return nil
}

// raw consumes a length-delimited value and returns it without copying.
func (f *field) raw() ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, f.wrongType()
	}
	v, n := protowire.ConsumeBytes(f.b)
	if n < 0 {
		return nil, f.fail(protowire.ParseError(n).Error())
	}
	f.n = n
	return v, nil
}

// bytes stores a copy of a bytes field in dst (last occurrence wins, as in
// proto3). An empty value is stored as nil.
func (f *field) bytes(dst *[]byte) error {
	v, err := f.raw()
	if err != nil {
		return err
	}
	*dst = clone(v)
	return nil
}

// appendBytes appends a copy of one element of a repeated bytes field.
func (f *field) appendBytes(dst *[][]byte) error {
	v, err := f.raw()
	if err != nil {
		return err
	}
	c := clone(v)
	if c == nil {
		c = []byte{}
	}
	*dst = append(*dst, c)
	return nil
}

func (f *field) string(dst *string) error {
	v, err := f.raw()
	if err != nil {
		return err
	}
	if !utf8.Valid(v) {
		return f.fail("string is not valid UTF-8")
	}
	*dst = string(v)
	return nil
}

func (f *field) appendString(dst *[]string) error {
	var s string
	if err := f.string(&s); err != nil {
		return err
	}
	*dst = append(*dst, s)
	return nil
}

// message decodes a sub-message by merging it into an existing value, as
// proto3 does when a message field occurs more than once.
func (f *field) message(merge func([]byte) error) error {
	v, err := f.raw()
	if err != nil {
		return err
	}
	return merge(v)
}

func (f *field) varint() (uint64, error) {
	if f.typ != protowire.VarintType {
		return 0, f.wrongType()
	}
	v, n := protowire.ConsumeVarint(f.b)
	if n < 0 {
		return 0, f.fail(protowire.ParseError(n).Error())
	}
	f.n = n
	return v, nil
}

// int64 reads a proto3 int64 (two's complement varint, up to 10 bytes).
func (f *field) int64(dst *int64) error {
	v, err := f.varint()
	if err != nil {
		return err
	}
	*dst = int64(v)
	return nil
}

// uint32 reads a proto3 uint32. Unlike generated code, which silently keeps
// the low 32 bits, a value above 2^32-1 is rejected.
func (f *field) uint32(dst *uint32) error {
	v, err := f.varint()
	if err != nil {
		return err
	}
	if v > math.MaxUint32 {
		return f.fail("varint overflows uint32")
	}
	*dst = uint32(v)
	return nil
}

func (f *field) bool(dst *bool) error {
	v, err := f.varint()
	if err != nil {
		return err
	}
	*dst = v != 0
	return nil
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func cloneAll(bs [][]byte) [][]byte {
	if bs == nil {
		return nil
	}
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = append([]byte{}, b...)
	}
	return out
}

// Encoding helpers. Each size* function returns the encoded size of one
// field as the matching append* function writes it; zero values are omitted.

func sizeBytes(num protowire.Number, v []byte) int {
	if len(v) == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(v))
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func sizeVarint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func boolVarint(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// sizeMessage is the size of a present sub-message whose body is size bytes.
func sizeMessage(num protowire.Number, size int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(size)
}

func appendMessageHeader(b []byte, num protowire.Number, size int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(size))
}

// sizeRaw and appendRaw handle a sub-message kept as its encoded bytes: nil
// means absent, non-nil (even empty) means present.
func sizeRaw(num protowire.Number, v []byte) int {
	if v == nil {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(v))
}

func appendRaw(b []byte, num protowire.Number, v []byte) []byte {
	if v == nil {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// rawMessage stores a sub-message kept as bytes so that presence survives:
// an empty message decodes to a non-nil empty slice.
func (f *field) rawMessage(dst *[]byte) error {
	v, err := f.raw()
	if err != nil {
		return err
	}
	// Repeated occurrences of a message field merge; for an encoded message
	// merging is concatenation.
	if *dst == nil {
		*dst = make([]byte, 0, len(v))
	}
	*dst = append(*dst, v...)
	return nil
}
