package pm

import (
	"context"
	"encoding/json"
	"math/big"
	"os"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"byoc/wire"
)

// testdata/transcript-payments.json holds the Livepeer-Payment headers a
// go-livepeer v0.9.1 BYOC gateway sent in the paid recording,
// internal/transcript/testdata/byoc-paid-transcripts.json. The recipient's secret, round and block are
// the vectors' fixed inputs, so the payments validate here exactly as they
// did on the reference orchestrator (which credited all of them).

type transcriptPayment struct {
	Name            string   `json:"name"`
	Header          string   `json:"header"`
	PricePerUnit    int64    `json:"price_per_unit"`
	PixelsPerUnit   int64    `json:"pixels_per_unit"`
	Nonces          []uint32 `json:"nonces"`
	FaceValue       string   `json:"face_value"`
	WinProb         string   `json:"win_prob"`
	ExpirationBlock string   `json:"expiration_block"`
}

func loadTranscriptPayments(t testing.TB) []transcriptPayment {
	t.Helper()
	b, err := os.ReadFile("testdata/transcript-payments.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Payments []transcriptPayment `json:"payments"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Payments) == 0 {
		t.Fatal("no transcript payments")
	}
	return doc.Payments
}

func TestTranscriptPayments(t *testing.T) {
	v := loadVectors(t)
	r := newVectorRecipient(t, v, nil, nil)
	book := NewMemNonceBook(0) // shared: every payment has its own session
	for _, tc := range loadTranscriptPayments(t) {
		t.Run(tc.Name, func(t *testing.T) {
			p, err := wire.DecodePaymentHeader(tc.Header)
			if err != nil {
				t.Fatal(err)
			}
			price := big.NewRat(tc.PricePerUnit, tc.PixelsPerUnit)
			res, err := r.Receive(context.Background(), p, price, book)
			if err != nil {
				t.Fatal(err)
			}
			if res.Err() != nil {
				t.Fatalf("ticket error: %v", res.Err())
			}
			ev := TicketEV(bigDec(t, tc.FaceValue), bigDec(t, tc.WinProb))
			want := new(big.Rat).Mul(ev, big.NewRat(int64(len(tc.Nonces)), 1))
			if res.Credit().Cmp(want) != 0 {
				t.Errorf("credit = %s, want %s", res.Credit().RatString(), want.RatString())
			}
			if res.Params.ExpirationBlock.String() != tc.ExpirationBlock {
				t.Errorf("expiration block %v", res.Params.ExpirationBlock)
			}
			for i, tr := range res.Tickets {
				if tr.Nonce != tc.Nonces[i] || !tr.Credit {
					t.Errorf("ticket %d: %+v", i, tr)
				}
			}

			// Our sender, given the token's params and price, produces the
			// reference gateway's header byte for byte (RFC 6979 signatures).
			snd := vectorSender(t, v)
			id, err := snd.StartSession(p.TicketParams, p.ExpectedPrice)
			if err != nil {
				t.Fatal(err)
			}
			batch, err := snd.CreateTicketBatch(id, len(tc.Nonces))
			if err != nil {
				t.Fatal(err)
			}
			if got := wire.EncodePaymentHeader(batch.Payment(LayoutBYOC)); got != tc.Header {
				t.Errorf("rebuilt header differs:\n got %s\nwant %s", got, tc.Header)
			}
			if batch.Credit().Cmp(want) != 0 {
				t.Errorf("batch credit %s", batch.Credit().RatString())
			}
			if res.Sender != common.HexToAddress(v.Keys.SenderAddress) {
				t.Errorf("sender %v", res.Sender)
			}
		})
	}
}
