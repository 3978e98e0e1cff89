package journal

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"byoc/ledger"
)

func TestCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	big := ledger.MustParseAmount("115792089237316195423570985008687907853269984665640564039457584007913129639935")
	pool := ledger.Ref{Kind: ledger.KindPool, Sender: "0xa", Name: "echo", Customer: "c"}
	forget := int64(77)
	recs := []*record{
		{seq: 1,
			Created: []jAccount{wrap(&ledger.Account{ID: 1, Ref: pool, State: ledger.StateOpen, Balance: big, Credited: big, OpenedAt: at, UpdatedAt: at})},
			Updated: []jAccount{wrap(&ledger.Account{ID: 2, Ref: ledger.Ref{Kind: ledger.KindJob, Sender: "0xa", Name: "j"}, PoolRef: pool, PoolID: 1,
				State: ledger.StateClosed, Balance: big.Neg(), Charged: ledger.Wei(-5).Neg(), TTL: 35*time.Second + time.Microsecond,
				OpenedAt: at, UpdatedAt: at, ClosedAt: at})},
			Entries: []ledger.Entry{{At: at, Kind: ledger.EntryCredit, To: 1, Amount: big, Key: "k", InputHash: "h", BalanceAfter: big},
				{At: at, Kind: ledger.EntryRelease, From: 2, To: 1, Amount: ledger.Wei(3), BalanceAfter: ledger.Wei(-2)}},
			Nonces: []ledger.SessionNonces{{Session: "s", Expiry: 9, Count: 2, Read: 8, Nonces: []uint32{0, 1<<32 - 1}}},
			Winners: []ledger.WinnerRow{{Winner: ledger.Winner{Key: "w", Sender: "0xa", Session: "s", FaceValue: big, RedeemAfter: 9,
				Payload: []byte{1, 2, 3}, Account: pool, QueuedAt: at, State: "queued"}, AccountID: 1}},
		},
		{seq: 2, Forget: &forget},
		{seq: 4,
			Outbox: []ledger.OutboxEvent{{ID: 7, Key: "ev-1", Topic: "usage", Subject: "alice", At: at, Body: []byte(`{"n":1}`)},
				{ID: 8, Key: "ev-2", Topic: "usage", At: at, Body: []byte{}}},
			Delivered: []delivery{{At: at, IDs: []int64{3, 7}}, {At: at.Add(time.Second), IDs: []int64{8}}},
		},
		{seq: 3, Archive: &ledger.ArchiveBatch{Before: at, At: at, File: "f", JobIDs: []int64{2}, EntryIDs: []int64{5, 6},
			Totals: ledger.Flows{Credited: ledger.Wei(1)}, Carry: map[int64]ledger.Flows{1: {Charged: ledger.Wei(2)}}}},
	}
	for _, r := range recs {
		b, err := r.appendEncoded(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(r.seq, b)
		if err != nil {
			t.Fatalf("record %d: %v", r.seq, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(r)) {
			t.Errorf("record %d:\n got %+v\nwant %+v", r.seq, got, r)
		}
		for cut := 0; cut < len(b); cut++ {
			if _, err := decode(r.seq, b[:cut]); err == nil {
				t.Fatalf("record %d cut at %d of %d decodes", r.seq, cut, len(b))
			}
		}
	}
}

// A record written before the outbox (format 1: no outbox parts) still
// decodes, as it is, at recovery.
func TestCodecReadsVersion1(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &record{seq: 9, Entries: []ledger.Entry{{At: at, Kind: ledger.EntryCredit, To: 1, Amount: ledger.Wei(5), Key: "k", BalanceAfter: ledger.Wei(5)}}}
	b, err := r.appendEncoded(nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 2 || b[len(b)-2] != 0 || b[len(b)-1] != 0 {
		t.Fatalf("format 2 record %x: want version 2 and two empty outbox parts at the end", b)
	}
	v1 := append([]byte{1}, b[1:len(b)-2]...)
	got, err := decode(r.seq, v1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(r)) {
		t.Errorf("version 1:\n got %+v\nwant %+v", got, r)
	}
	if _, err := decode(r.seq, append(v1, 0, 0)); err == nil {
		t.Error("a version 1 record with outbox parts decodes")
	}
	if _, err := decode(r.seq, append([]byte{3}, b[1:]...)); err == nil {
		t.Error("a version 3 record decodes")
	}
}

// normalize compares amounts and times by value.
func normalize(r *record) any {
	b, _ := jsonOf(r)
	return b
}

func jsonOf(r *record) (string, error) {
	b, err := json.Marshal(r)
	return string(b), err
}

// TestCodecWinnerUpdates: winning tickets' redemption changes round-trip;
// a record without them is encoded exactly as before they existed (its
// bytes are the prefix), so journals written earlier still decode; every
// other cut fails (the log's length and checksum catch that one).
func TestCodecWinnerUpdates(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	paid := ledger.MustParseAmount("123456789012345678901234567890")
	base := record{seq: 4, Winners: []ledger.WinnerRow{{Winner: ledger.Winner{Key: "w", Sender: "0xa", Session: "s",
		FaceValue: ledger.Wei(5), RedeemAfter: 9, Payload: []byte{1}, QueuedAt: at, State: "queued"}, AccountID: 1}},
		// The outbox (format 2) comes before the winner updates.
		Outbox:    []ledger.OutboxEvent{{ID: 7, Key: "ev-1", Topic: "usage", Subject: "alice", At: at, Body: []byte(`{"n":1}`)}},
		Delivered: []delivery{{At: at, IDs: []int64{7}}}}
	with := base
	with.WinnerUpdates = []winnerUpdate{
		{Key: "w", From: "queued", U: ledger.WinnerUpdate{State: "submitted", TxHash: "0xab", TxNonce: 3, TxRaw: []byte{2, 0xf8}, Attempt: true}, Now: at},
		{Key: "w", From: "submitted", U: ledger.WinnerUpdate{State: "redeemed", TxHash: "0xab", TxNonce: 3, Payout: &paid}, Now: at},
	}
	prefix, err := base.appendEncoded(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := with.appendEncoded(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= len(prefix) || string(b[:len(prefix)]) != string(prefix) {
		t.Fatal("a record without winner updates is not the prefix of one with them")
	}
	got, err := decode(with.seq, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(&with)) {
		t.Errorf("got %+v\nwant %+v", got, with)
	}
	for cut := 0; cut < len(b); cut++ {
		if _, err := decode(with.seq, b[:cut]); (err == nil) != (cut == len(prefix)) {
			t.Fatalf("cut at %d of %d (prefix %d): err %v", cut, len(b), len(prefix), err)
		}
	}
}
