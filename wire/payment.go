package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

//go:generate ../scripts/gen-proto

// The message types (Payment, TicketParams, OrchestratorInfo, …) are
// generated from livepeer.proto into livepeer.pb.go. This file adds the
// encoding byoc uses on top: deterministic Marshal, bounded Unmarshal with
// documented errors, and Clone.

// MaxTicketsPerPayment bounds the number of tickets (ticket_sender_params)
// Payment.Unmarshal accepts. go-livepeer's BYOC gateway sends at most 600 in
// one payment and its remote signer at most 100.
const MaxTicketsPerPayment = 1000

// ErrTooManyTickets is returned (wrapped) by Payment.Unmarshal, and so by
// DecodePaymentHeader, when a payment carries more than MaxTicketsPerPayment
// tickets. It is checked before any ticket is decoded.
var ErrTooManyTickets = errors.New("wire: too many tickets in payment")

// ErrMalformed is returned, wrapped with the message at fault, by every
// Unmarshal method when its input is not a valid encoding of the message: a
// truncated tag or value, an invalid field number, or a string that is not
// valid UTF-8.
var ErrMalformed = errors.New("wire: malformed protobuf")

// marshalOptions makes encodings stable: map entries in key order. Fields
// are written in field-number order and zero scalars left out, which is how
// go-livepeer's generated code writes them, so a message marshals to the
// bytes go-livepeer produces.
var marshalOptions = proto.MarshalOptions{Deterministic: true}

// unmarshalOptions drops unknown fields, so a decoded message holds only
// what byoc reads and re-encodes to only that. A known field sent with
// another wire type counts as unknown, as in go-livepeer.
var unmarshalOptions = proto.UnmarshalOptions{DiscardUnknown: true}

// marshal encodes m. Encoding fails only for a string field that is not
// valid UTF-8 (proto3 forbids it, and go-livepeer refuses it too); marshal
// then returns nil. Decoded messages never have one.
func marshal(m proto.Message) []byte {
	b, err := marshalOptions.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

// unmarshal replaces m with the message decoded from b. Decoded byte fields
// never alias b; a uint32 field sent with a larger varint keeps its low 32
// bits, as go-livepeer's decoder does.
func unmarshal(b []byte, m proto.Message) error {
	if err := unmarshalOptions.Unmarshal(b, m); err != nil {
		proto.Reset(m)
		return fmt.Errorf("%w: %s: %v", ErrMalformed, m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// countTickets returns how many ticket_sender_params fields (number 4) the
// top level of an encoded Payment holds, counting no further than limit+1.
// Malformed input stops the count; Unmarshal reports it.
func countTickets(b []byte, limit int) int {
	n := 0
	for len(b) > 0 && n <= limit {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			break
		}
		v := protowire.ConsumeFieldValue(num, typ, b[l:])
		if v < 0 {
			break
		}
		if num == 4 {
			n++
		}
		b = b[l+v:]
	}
	return n
}

// Marshal returns the proto3 encoding of m; nil or empty gives no bytes.
func (m *Payment) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b. Errors wrap
// ErrMalformed, or ErrTooManyTickets for more than MaxTicketsPerPayment
// tickets. Unknown fields are dropped.
func (m *Payment) Unmarshal(b []byte) error {
	if countTickets(b, MaxTicketsPerPayment) > MaxTicketsPerPayment {
		proto.Reset(m)
		return fmt.Errorf("%w: more than %d", ErrTooManyTickets, MaxTicketsPerPayment)
	}
	return unmarshal(b, m)
}

// Clone returns a deep copy of m.
func (m *Payment) Clone() *Payment { return clone(m) }

// Marshal returns the proto3 encoding of m.
func (m *TicketParams) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *TicketParams) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Clone returns a deep copy of m.
func (m *TicketParams) Clone() *TicketParams { return clone(m) }

// Marshal returns the proto3 encoding of m.
func (m *TicketSenderParams) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *TicketSenderParams) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Clone returns a deep copy of m.
func (m *TicketSenderParams) Clone() *TicketSenderParams { return clone(m) }

// Marshal returns the proto3 encoding of m.
func (m *TicketExpirationParams) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *TicketExpirationParams) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Clone returns a deep copy of m.
func (m *TicketExpirationParams) Clone() *TicketExpirationParams { return clone(m) }

// Marshal returns the proto3 encoding of m.
func (m *PriceInfo) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *PriceInfo) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Clone returns a copy of m.
func (m *PriceInfo) Clone() *PriceInfo { return clone(m) }

// Marshal returns the proto3 encoding of m.
func (m *OrchestratorRequest) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *OrchestratorRequest) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Marshal returns the proto3 encoding of m.
func (m *OrchestratorInfo) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *OrchestratorInfo) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Marshal returns the proto3 encoding of m.
func (m *PaymentResult) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *PaymentResult) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Marshal returns the proto3 encoding of m.
func (m *SegData) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *SegData) Unmarshal(b []byte) error { return unmarshal(b, m) }

// Marshal returns the proto3 encoding of m.
func (m *Capabilities) Marshal() []byte { return marshal(m) }

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *Capabilities) Unmarshal(b []byte) error { return unmarshal(b, m) }

// clone deep-copies a message; nil stays nil.
func clone[M interface {
	comparable
	proto.Message
}](m M) M {
	var zero M
	if m == zero {
		return zero
	}
	return proto.CloneOf(m)
}
