// Package wire holds the protocol messages byoc exchanges with go-livepeer
// nodes for probabilistic micropayments (PM) and their codecs.
//
// The messages (Payment, TicketParams, TicketSenderParams,
// TicketExpirationParams, PriceInfo, OrchestratorRequest) mirror go-livepeer's
// net/lp_rpc.proto (proto3, package net) with the same field numbers. They are
// encoded by hand with google.golang.org/protobuf/encoding/protowire instead of
// generated code:
//
//   - Marshal writes fields in field-number order and omits zero scalars and
//     empty bytes, as proto3 does, so a message marshals to exactly the bytes
//     go-livepeer's generated code produces. Set sub-messages are always
//     written, even when empty (they have presence in proto3).
//   - Unmarshal skips unknown fields, rejects a known field sent with the wrong
//     wire type, rejects varints that do not fit the field's type, never
//     panics, and is bounded: a Payment carries at most MaxTicketsPerPayment
//     tickets. Decoded byte fields never alias the input.
//
// Big integers (face value, win probability, seed, expiration block) stay raw
// big-endian bytes here; package pm turns them into numbers and checks them.
//
// The struct tags make encoding/json produce the same keys as go-livepeer's
// generated structs (proto field names, bytes as standard base64, everything
// omitempty), which is how BYOC job tokens carry ticket_params and price.
//
// The Livepeer-Payment HTTP header is the standard, padded base64 encoding of
// a marshalled Payment; see EncodePaymentHeader and DecodePaymentHeader.
package wire
