package ledgertest

import (
	"errors"
	"testing"
	"time"

	"byoc/ledger"
)

var outboxTests = []struct {
	name string
	fn   func(t *testing.T, e *Env)
}{
	{"OutboxWrittenWithTheMove", testOutboxWithMove},
}

// testOutboxWithMove: an event is written exactly when its charge or
// credit is (not for a refused or replayed one), survives a restart, and
// leaves the pending list once marked delivered.
func testOutboxWithMove(t *testing.T, e *Env) {
	pool := ledger.PoolKey{Sender: "0xsigner", Capability: "budget", Customer: "alice"}.Ref()
	ev := func(key string) ledger.OutboxEvent {
		return ledger.OutboxEvent{Key: key, Topic: "usage", Subject: "alice", Body: []byte(`{"k":"` + key + `"}`)}
	}
	if _, err := e.Ledger.CreditWithEvent(e.Ctx, pool, ledger.Wei(100), "grant-1", ev("ev-grant")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ledger.ChargeWithEvent(e.Ctx, pool, ledger.Wei(60), ledger.Amount{}, "spend-1", ev("ev-1")); err != nil {
		t.Fatal(err)
	}
	// Replayed: no second event. Refused: none.
	if r, err := e.Ledger.ChargeWithEvent(e.Ctx, pool, ledger.Wei(60), ledger.Amount{}, "spend-1", ev("ev-1-again")); err != nil || !r.Replayed {
		t.Fatalf("replay: %+v %v", r, err)
	}
	if _, err := e.Ledger.ChargeWithEvent(e.Ctx, pool, ledger.Wei(60), ledger.Amount{}, "spend-2", ev("ev-2")); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("overdraw: %v", err)
	}
	if _, err := e.Ledger.ChargeWithEvent(e.Ctx, pool, ledger.Wei(1), ledger.Amount{}, "spend-3", ledger.OutboxEvent{Topic: "usage"}); !errors.Is(err, ledger.ErrInvalidInput) {
		t.Fatalf("event without key: %v", err)
	}
	e.Clock.Advance(time.Second)
	e.Restart()
	got, err := e.Ledger.PendingOutbox(e.Ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "ev-grant" || got[1].Key != "ev-1" || string(got[1].Body) != `{"k":"ev-1"}` ||
		got[1].Subject != "alice" || got[1].Topic != "usage" || !got[1].At.Equal(Epoch) || got[0].ID >= got[1].ID {
		t.Fatalf("pending %+v", got)
	}
	if later, _ := e.Ledger.PendingOutbox(e.Ctx, got[0].ID, 10); len(later) != 1 || later[0].Key != "ev-1" {
		t.Fatalf("after %d: %+v", got[0].ID, later)
	}
	if err := e.Ledger.MarkDelivered(e.Ctx, []int64{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	if left, _ := e.Ledger.PendingOutbox(e.Ctx, 0, 10); len(left) != 1 || left[0].Key != "ev-1" {
		t.Fatalf("after delivery: %+v", left)
	}
	e.WantBalance(pool, 40)
}
