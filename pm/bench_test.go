package pm

import (
	"context"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
	"byoc/wire"
)

// Run the two together to compare validation with raw key recovery:
//
//	go test -run '^$' -bench 'ValidateTicket|RecoverPubkey' -cpu 1 ./pm
//
// Full validation of a one-ticket payment costs one secp256k1 recovery plus
// one HMAC-SHA256, four keccak256 and a few copies; the target is at least
// 85% of the raw recovery rate.

// benchPayment is scenario A's payment cut to its first ticket.
func benchPayment(b *testing.B) (*Recipient, *wire.Payment) {
	v := loadVectors(b)
	r, p, _ := scenarioA(b, v)
	p.TicketSenderParams = p.TicketSenderParams[:1]
	return r, p
}

func BenchmarkValidateTicket(b *testing.B) {
	r, p := benchPayment(b)
	price := big.NewRat(2000, 3)
	if v, err := r.Validate(p, price); err != nil || v.Tickets[0].Err != nil {
		b.Fatalf("%v %v", err, v.Tickets[0].Err)
	}
	b.ReportAllocs()
	for b.Loop() {
		v, err := r.Validate(p, price)
		if err != nil || v.Tickets[0].Err != nil {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkRecoverPubkey(b *testing.B) {
	_, p := benchPayment(b)
	v := loadVectors(b)
	digest := hx(b, v.Scenarios[0].Tickets[0].Digest)
	sig := append([]byte(nil), p.TicketSenderParams[0].Sig...)
	sig[64] -= 27
	if _, err := crypto.Ecrecover(digest, sig); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := crypto.Ecrecover(digest, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// acceptAll is a NonceBook that accepts everything without storing it, to
// measure Settle's own cost.
type acceptAll struct{}

func (acceptAll) RecordNonces(_ context.Context, _ NonceSession, n []uint32) ([]NonceVerdict, error) {
	return make([]NonceVerdict, len(n)), nil
}

func BenchmarkReceiveTicket(b *testing.B) {
	r, p := benchPayment(b)
	price := big.NewRat(2000, 3)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := r.Receive(ctx, p, price, acceptAll{})
		if err != nil || !v.Tickets[0].Credit {
			b.Fatal("not credited")
		}
	}
}

func BenchmarkCreateTicket(b *testing.B) {
	v := loadVectors(b)
	signer, err := ethsig.KeySignerFromHex(v.Keys.SenderKey)
	if err != nil {
		b.Fatal(err)
	}
	s := NewSender(SenderConfig{Signer: signer, MaxNonces: math.MaxUint32})
	var params wire.TicketParams
	if err := params.Unmarshal(hx(b, v.Scenarios[0].ParamsPBHex)); err != nil {
		b.Fatal(err)
	}
	id, err := s.StartSession(&params, &wire.PriceInfo{PricePerUnit: 2000, PixelsPerUnit: 3})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.CreateTicketBatch(id, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateVsRecover alternates one full validation with one raw
// recovery of the same signature and reports both costs and their ratio
// (recover-ns / validate-ns, the share of raw recovery throughput that
// validation keeps), which is steadier than comparing two separate runs on a
// noisy machine.
func BenchmarkValidateVsRecover(b *testing.B) {
	r, p := benchPayment(b)
	price := big.NewRat(2000, 3)
	v := loadVectors(b)
	digest := hx(b, v.Scenarios[0].Tickets[0].Digest)
	sig := append([]byte(nil), p.TicketSenderParams[0].Sig...)
	sig[64] -= 27
	var tv, tr time.Duration
	for b.Loop() {
		t0 := time.Now()
		if res, err := r.Validate(p, price); err != nil || res.Tickets[0].Err != nil {
			b.Fatal("invalid")
		}
		t1 := time.Now()
		if _, err := crypto.Ecrecover(digest, sig); err != nil {
			b.Fatal(err)
		}
		tr += time.Since(t1)
		tv += t1.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tv.Nanoseconds())/n, "validate-ns")
	b.ReportMetric(float64(tr.Nanoseconds())/n, "recover-ns")
	b.ReportMetric(float64(tr)/float64(tv), "recover/validate")
}
