package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// PaymentHeader is the name of the HTTP header that carries a Payment.
const PaymentHeader = "Livepeer-Payment"

// MaxPaymentHeaderLen bounds the length, in bytes, of a Livepeer-Payment
// header value DecodePaymentHeader accepts. A ticket takes about 71 bytes,
// so the 600 tickets a go-livepeer BYOC gateway may send need about 57 KB of
// protobuf, 76 KB of base64; 128 KiB leaves room for MaxTicketsPerPayment.
const MaxPaymentHeaderLen = 128 << 10

// ErrHeaderTooLarge is returned (wrapped) by DecodePaymentHeader when the
// header value is longer than MaxPaymentHeaderLen.
var ErrHeaderTooLarge = errors.New("wire: payment header too large")

// ErrBadBase64 is returned (wrapped) by DecodePaymentHeader when the header
// value is not standard, padded base64.
var ErrBadBase64 = errors.New("wire: payment header is not valid base64")

// EncodePaymentHeader returns the Livepeer-Payment header value for p: the
// standard, padded base64 encoding of its protobuf. A nil or empty payment
// gives "" (what an offchain go-livepeer gateway sends).
func EncodePaymentHeader(p *Payment) string {
	return base64.StdEncoding.EncodeToString(p.Marshal())
}

// DecodePaymentHeader decodes a Livepeer-Payment header value. An empty value
// decodes to an empty Payment without error, as go-livepeer does for an
// offchain gateway. Errors wrap ErrHeaderTooLarge, ErrBadBase64,
// ErrMalformed or ErrTooManyTickets.
func DecodePaymentHeader(s string) (*Payment, error) {
	if len(s) > MaxPaymentHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrHeaderTooLarge, len(s), MaxPaymentHeaderLen)
	}
	p := new(Payment)
	if s == "" {
		return p, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBase64, err)
	}
	if err := p.Unmarshal(b); err != nil {
		return nil, err
	}
	return p, nil
}
