package pm

import (
	"context"
	"errors"
	"math/big"
	"sync"
	"testing"

	"byoc/wire"
)

func TestSenderNonces(t *testing.T) {
	f := newFixture(t)
	id := f.session(t)
	if n, _ := f.snd.Nonce(id); n != 0 {
		t.Fatalf("fresh session nonce %d", n)
	}
	b1, err := f.snd.CreateTicketBatch(id, 3)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := f.snd.CreateTicketBatch(id, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, b := range []*TicketBatch{b1, b2} {
		for _, tk := range b.Tickets {
			got = append(got, tk.Nonce)
		}
	}
	if len(got) != 5 || got[0] != 1 || got[4] != 5 {
		t.Fatalf("nonces %v", got)
	}
	// Starting the same params again keeps the session and its nonces.
	params := b1.Params.Clone()
	again, err := f.snd.StartSession(params, b1.ExpectedPrice)
	if err != nil || again != id {
		t.Fatalf("restart: %v", err)
	}
	if n, _ := f.snd.Nonce(id); n != 5 {
		t.Fatalf("nonce reset to %d", n)
	}
	// Both batches validate, in either order.
	book := NewMemNonceBook(0)
	for _, b := range []*TicketBatch{b2, b1} {
		v, err := f.rcpt.Receive(context.Background(), b.Payment(LayoutSegment), f.price, book)
		if err != nil || v.Err() != nil || v.Credit().Cmp(b.Credit()) != 0 {
			t.Fatalf("batch: %v %v", err, v.Err())
		}
	}
	f.snd.EndSession(id)
	if _, err := f.snd.CreateTicketBatch(id, 1); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("ended session: %v", err)
	}
	if _, err := f.snd.EV(id); !errors.Is(err, ErrUnknownSession) {
		t.Fatal("EV of ended session")
	}
	if _, err := f.snd.CreateTicketBatch(id, -1); !errors.Is(err, ErrTicketCount) {
		t.Fatalf("negative count: %v", err)
	}
}

// A recipient that sends the same params again (same recipientRandHash)
// has the nonces already used recorded: a session started again with
// them after it ended continues after its last nonce, and the recipient
// accepts every ticket of both.
func TestSenderNoncesContinueAcrossRepeatedParams(t *testing.T) {
	f := newFixture(t)
	f.snd = NewSender(SenderConfig{Signer: f.snd.cfg.Signer, MaxSessions: 2})
	id := f.session(t)
	b1, err := f.snd.CreateTicketBatch(id, 3)
	if err != nil {
		t.Fatal(err)
	}
	f.snd.EndSession(id)
	if _, err := f.snd.StartSession(b1.Params.Clone(), b1.ExpectedPrice); err != nil {
		t.Fatal(err)
	}
	b2, err := f.snd.CreateTicketBatch(id, 2)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Tickets[0].Nonce != 4 || b2.Tickets[1].Nonce != 5 {
		t.Fatalf("nonces after the same params came again: %d, %d; want 4, 5", b2.Tickets[0].Nonce, b2.Tickets[1].Nonce)
	}
	book := NewMemNonceBook(0)
	for _, b := range []*TicketBatch{b1, b2} {
		v, err := f.rcpt.Receive(context.Background(), b.Payment(LayoutSegment), f.price, book)
		if err != nil || v.Err() != nil || v.Credit().Cmp(b.Credit()) != 0 {
			t.Fatalf("batch: %v %v", err, v.Err())
		}
	}
	f.snd.EndSession(id)

	// Remembered while other sessions end, in at most two generations of
	// MaxSessions (bounded memory).
	others := make([]SessionID, 3)
	for i := range others {
		others[i] = f.session(t)
		if _, err := f.snd.CreateTicketBatch(others[i], 1); err != nil {
			t.Fatal(err)
		}
		f.snd.EndSession(others[i])
		if i == 0 {
			if _, err := f.snd.StartSession(b1.Params.Clone(), b1.ExpectedPrice); err != nil {
				t.Fatal(err)
			}
			if n, _ := f.snd.Nonce(id); n != 5 {
				t.Fatalf("nonce %d after one other session ended, want 5", n)
			}
			f.snd.EndSession(id)
		}
	}
	if len(f.snd.ended)+len(f.snd.endedOld) > 4 {
		t.Fatalf("%d ended sessions kept, want at most 2 generations of 2", len(f.snd.ended)+len(f.snd.endedOld))
	}
}

func TestSenderRefreshAndCap(t *testing.T) {
	f := newFixture(t)
	f.snd = NewSender(SenderConfig{Signer: f.snd.cfg.Signer, MaxNonces: 10, RefreshThreshold: 6})
	id := f.session(t)
	if f.snd.NeedsRefresh(id) {
		t.Fatal("fresh session needs refresh")
	}
	if _, err := f.snd.CreateTicketBatch(id, 6); err != nil {
		t.Fatal(err)
	}
	if !f.snd.NeedsRefresh(id) {
		t.Fatal("no refresh flag at the threshold")
	}
	if _, err := f.snd.CreateTicketBatch(id, 5); !errors.Is(err, ErrSessionExhausted) {
		t.Fatalf("past the cap: %v", err)
	}
	if n, _ := f.snd.Nonce(id); n != 6 {
		t.Fatalf("refused batch used nonces: %d", n)
	}
	if _, err := f.snd.CreateTicketBatch(id, 4); err != nil {
		t.Fatalf("up to the cap: %v", err)
	}
	if !f.snd.NeedsRefresh([32]byte{1}) {
		t.Fatal("unknown session should need refresh")
	}
	// Defaults: refresh at 500 of 600.
	d := NewSender(SenderConfig{})
	if d.cfg.MaxNonces != 600 || d.cfg.RefreshThreshold != 500 {
		t.Fatalf("defaults %d/%d", d.cfg.RefreshThreshold, d.cfg.MaxNonces)
	}
}

func TestSenderParamChecks(t *testing.T) {
	f := newFixture(t)
	id := f.session(t)
	f.blocks.Block = big.NewInt(20_000_039) // expiration 20000040 − 1 <= 1
	if _, err := f.snd.CreateTicketBatch(id, 1); !errors.Is(err, ErrTicketParamsExpired) {
		t.Fatalf("nearly expired: %v", err)
	}
	f.blocks.Block = big.NewInt(20_000_000)
	f.snd.maxTicketEV = big.NewRat(1, 1)
	if _, err := f.snd.CreateTicketBatch(id, 1); !errors.Is(err, ErrTicketEVTooHigh) {
		t.Fatalf("max ticket EV: %v", err)
	}
	f.snd.maxTicketEV = big.NewRat(DefaultMaxTicketEV, 1)
	if _, err := f.snd.CreateTicketBatch(id, 2501); !errors.Is(err, ErrTotalEVTooHigh) {
		t.Fatalf("max total EV: %v", err)
	}
	if n, _ := f.snd.Nonce(id); n != 0 {
		t.Fatalf("failed checks used nonces: %d", n)
	}
	// EV >= face value.
	params, _ := f.rcpt.TicketParams(f.snd.Address(), f.price)
	w := params.Wire()
	w.WinProb = MaxWinProb().Bytes()
	id2, err := f.snd.StartSession(w, &wire.PriceInfo{PricePerUnit: 2000, PixelsPerUnit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.snd.CreateTicketBatch(id2, 1); !errors.Is(err, ErrFaceValueTooLow) {
		t.Fatalf("face value too low: %v", err)
	}
}

func TestStartSessionChecks(t *testing.T) {
	f := newFixture(t)
	params, _ := f.rcpt.TicketParams(f.snd.Address(), f.price)
	price := &wire.PriceInfo{PricePerUnit: 2000, PixelsPerUnit: 3}
	if _, err := f.snd.StartSession(nil, price); !errors.Is(err, ErrNoTicketParams) {
		t.Error(err)
	}
	w := params.Wire()
	w.ExpirationParams = nil
	if _, err := f.snd.StartSession(w, price); !errors.Is(err, ErrMissingExpirationParams) {
		t.Error(err)
	}
	if _, err := f.snd.StartSession(params.Wire(), nil); !errors.Is(err, ErrInvalidExpectedPrice) {
		t.Error(err)
	}
	if _, err := f.snd.StartSession(params.Wire(), &wire.PriceInfo{PricePerUnit: 1}); !errors.Is(err, ErrInvalidExpectedPrice) {
		t.Error(err)
	}
	w = params.Wire()
	w.Recipient = w.Recipient[:3]
	if _, err := f.snd.StartSession(w, price); !errors.Is(err, ErrInvalidRecipient) {
		t.Error(err)
	}
	// Session limit, with expired sessions pruned first.
	s := NewSender(SenderConfig{Signer: f.snd.cfg.Signer, MaxSessions: 2, Blocks: f.blocks})
	for i := 0; i < 2; i++ {
		p, _ := f.rcpt.TicketParams(s.Address(), f.price)
		if _, err := s.StartSession(p.Wire(), price); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := f.rcpt.TicketParams(s.Address(), f.price)
	if _, err := s.StartSession(p.Wire(), price); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("third session: %v", err)
	}
	f.blocks.Block = big.NewInt(20_000_040)
	if _, err := s.StartSession(p.Wire(), price); err != nil || s.Sessions() != 1 {
		t.Fatalf("after expiry: %v, %d sessions", err, s.Sessions())
	}
}

// TestSenderConcurrent hands out nonces from many goroutines: every nonce
// is used once and the recipient accepts them all.
func TestSenderConcurrent(t *testing.T) {
	f := newFixture(t)
	id := f.session(t)
	const workers, per = 8, 5
	batches := make([]*TicketBatch, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := f.snd.CreateTicketBatch(id, per)
			if err != nil {
				t.Error(err)
				return
			}
			batches[i] = b
		}()
	}
	wg.Wait()
	seen := map[uint32]bool{}
	book := NewMemNonceBook(0)
	for _, b := range batches {
		for _, tk := range b.Tickets {
			if seen[tk.Nonce] {
				t.Fatalf("nonce %d handed out twice", tk.Nonce)
			}
			seen[tk.Nonce] = true
		}
		v, err := f.rcpt.Receive(context.Background(), b.Payment(LayoutBYOC), f.price, book)
		if err != nil || v.Err() != nil {
			t.Fatalf("%v %v", err, v.Err())
		}
	}
	if len(seen) != workers*per {
		t.Fatalf("%d nonces", len(seen))
	}
}

func TestTicketsNeeded(t *testing.T) {
	ev := big.NewRat(8_000_000_000, 1)
	cases := []struct {
		fee, existing string
		n             int
		credit        string
	}{
		{"18432000000", "0", 3, "24000000000"},
		{"0", "0", 1, "8000000000"}, // minimum credit is one ticket EV
		{"1", "8000000000", 0, "0"}, // existing covers EV
		{"8000000001", "0", 2, "16000000000"},
		{"16000000000", "-1000", 3, "24000000000"},
		{"1/3", "0", 1, "8000000000"},
	}
	for _, tc := range cases {
		n, credit, err := TicketsNeeded(rat(t, tc.fee), ev, rat(t, tc.existing))
		if err != nil || n != tc.n || credit.Cmp(rat(t, tc.credit)) != 0 {
			t.Errorf("fee %s existing %s: %d %v %v", tc.fee, tc.existing, n, credit, err)
		}
	}
	// Exact EVs with huge denominators (scenario A's EV).
	v := loadVectors(t)
	evA := rat(t, v.Scenarios[0].TicketEV)
	n, credit, err := TicketsNeeded(big.NewRat(18_432_000_000, 1), evA, nil)
	if err != nil || n != 3 || credit.Cmp(new(big.Rat).Mul(evA, big.NewRat(3, 1))) != 0 {
		t.Fatalf("EV A: %d %v", n, err)
	}
	if _, _, err := TicketsNeeded(big.NewRat(1, 1), new(big.Rat), nil); !errors.Is(err, ErrZeroEV) {
		t.Fatalf("zero EV: %v", err)
	}
	if n, _, err := TicketsNeeded(nil, nil, nil); err != nil || n != 0 {
		t.Fatalf("all zero: %d %v", n, err)
	}
	if _, _, err := TicketsNeeded(new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), 100)), big.NewRat(1, 1), nil); !errors.Is(err, ErrTicketCount) {
		t.Fatalf("overflow: %v", err)
	}
}
