package wire

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodePaymentHeader checks that decoding any header never panics, that
// failures carry one of the documented errors, and that a decoded payment is
// a fixed point of encode/decode.
func FuzzDecodePaymentHeader(f *testing.F) {
	f.Add("")
	f.Add(vectorAHeader)
	f.Add(zeroPriceHeader)
	f.Add("CgA=")
	f.Add("////")
	for _, tc := range loadTranscriptPayments(f) {
		f.Add(tc.Header)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := DecodePaymentHeader(s)
		if err != nil {
			if p != nil {
				t.Fatal("payment returned with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadBase64) &&
				!errors.Is(err, ErrHeaderTooLarge) && !errors.Is(err, ErrTooManyTickets) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if len(p.TicketSenderParams) > MaxTicketsPerPayment {
			t.Fatal("ticket limit not enforced")
		}
		h := EncodePaymentHeader(p)
		p2, err := DecodePaymentHeader(h)
		if err != nil {
			t.Fatalf("re-decoding our own encoding: %v", err)
		}
		if !proto.Equal(p, p2) {
			t.Fatalf("decode(encode(p)) != p:\n%+v\n%+v", p, p2)
		}
		if EncodePaymentHeader(p2) != h {
			t.Fatal("encoding is not stable")
		}
	})
}
