package pm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"byoc/wire"
)

// fuzzSeeds returns the raw protobuf of every recorded valid payment.
func fuzzSeeds(t testing.TB, v *vectors) [][]byte {
	var headers []string
	for _, sc := range v.Scenarios {
		headers = append(headers, sc.PaymentHeader)
	}
	headers = append(headers, v.ZeroPrice.PaymentHeader)
	for _, tc := range loadTranscriptPayments(t) {
		headers = append(headers, tc.Header)
	}
	var resp struct {
		Payment string `json:"payment"`
	}
	if err := json.Unmarshal([]byte(v.RemoteSigner.Call1Response), &resp); err != nil {
		t.Fatal(err)
	}
	headers = append(headers, resp.Payment)
	var out [][]byte
	for _, h := range headers {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzValidatePayment feeds arbitrary payments to a recipient holding the
// vectors' secret. Validation must never panic, every error must be fatal,
// and no ticket may earn credit unless it is one of the genuinely signed
// tickets of the seed corpus: without the sender's key the fuzzer cannot
// make new ones, so any other credit would be a forgery.
func FuzzValidatePayment(f *testing.F) {
	v := loadVectors(f)
	seeds := fuzzSeeds(f, v)
	r := newVectorRecipient(f, v, nil, nil)
	genuine := map[common.Hash]bool{}
	for _, s := range seeds {
		var p wire.Payment
		if err := p.Unmarshal(s); err != nil {
			f.Fatal(err)
		}
		res, err := r.Receive(context.Background(), &p, nil, NewMemNonceBook(0))
		if err != nil || res.Err() != nil {
			f.Fatalf("seed does not validate: %v %v", err, res.Err())
		}
		for _, tr := range res.Tickets {
			genuine[tr.TicketHash] = true
		}
		f.Add(s)
	}
	if len(genuine) == 0 {
		f.Fatal("no genuine tickets in the seeds")
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x22, 0x00})

	f.Fuzz(func(t *testing.T, b []byte) {
		var p wire.Payment
		if err := p.Unmarshal(b); err != nil {
			return
		}
		res, err := r.Receive(context.Background(), &p, nil, NewMemNonceBook(0))
		if err != nil {
			var fe *FatalError
			if !errors.As(err, &fe) {
				t.Fatalf("non-fatal error returned: %v", err)
			}
			return
		}
		if len(res.Tickets) != len(p.TicketSenderParams) {
			t.Fatal("one result per ticket")
		}
		for _, tr := range res.Tickets {
			if tr.Credit && (tr.Err != nil || tr.Blocked) {
				t.Fatalf("credited ticket with error: %+v", tr)
			}
			if tr.Credit && !genuine[tr.TicketHash] {
				t.Fatalf("forged ticket credited: %+v", tr)
			}
			if tr.EV.Sign() < 0 {
				t.Fatal("negative EV")
			}
			if tr.Winner != nil && !genuine[tr.Winner.Hash] {
				t.Fatalf("forged winner: %+v", tr)
			}
		}
		if res.Credit().Sign() < 0 {
			t.Fatal("negative credit")
		}
	})
}
