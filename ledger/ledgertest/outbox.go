package ledgertest

import (
	"context"
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
	{"OutboxKeysAndDelivery", testOutboxKeys},
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

// testOutboxKeys: the store's outbox on its own. A key is taken for good
// (by a pending event, a delivered one, one written earlier in the same
// transaction, also after a restart), and a refused insert writes
// nothing; IDs grow; MarkDelivered touches only undelivered events and
// ignores unknown IDs; an event whose key is taken fails its charge,
// which then moves nothing.
func testOutboxKeys(t *testing.T, e *Env) {
	ctx := e.Ctx
	ev := func(key string) *ledger.OutboxEvent {
		return &ledger.OutboxEvent{Key: key, Topic: "usage", Subject: "bob", At: e.Clock.Now(), Body: []byte(key)}
	}
	insert := func(evs ...*ledger.OutboxEvent) error {
		return e.Store.Update(ctx, func(tx ledger.Tx) error { return tx.InsertOutbox(ctx, evs) })
	}
	pending := func() []string {
		t.Helper()
		var keys []string
		var last int64
		err := e.Store.View(ctx, func(tx ledger.ReadTx) error {
			evs, err := tx.PendingOutbox(ctx, 0, 100)
			for _, x := range evs {
				if x.ID <= last || !x.DeliveredAt.IsZero() || string(x.Body) != x.Key || !x.At.Equal(Epoch) {
					t.Errorf("pending event %+v after ID %d", x, last)
				}
				last = x.ID
				keys = append(keys, x.Key)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	want := func(what string, got []string, keys ...string) {
		t.Helper()
		if len(got) != len(keys) {
			t.Fatalf("%s: pending %v, want %v", what, got, keys)
		}
		for i := range keys {
			if got[i] != keys[i] {
				t.Fatalf("%s: pending %v, want %v", what, got, keys)
			}
		}
	}
	if err := insert(ev("a"), ev("b")); err != nil {
		t.Fatal(err)
	}
	if err := insert(ev("a")); !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("pending key again: %v, want ErrKeyTaken", err)
	}
	if err := insert(ev("c"), ev("c")); !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("a key twice in one transaction: %v, want ErrKeyTaken", err)
	}
	if err := insert(ev("d"), ev("b")); !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("a new key with a taken one: %v, want ErrKeyTaken", err)
	}
	want("after refused inserts", pending(), "a", "b")
	var ids []int64
	if err := e.Store.View(ctx, func(tx ledger.ReadTx) error {
		evs, err := tx.PendingOutbox(ctx, 0, 1)
		if len(evs) != 1 {
			t.Fatalf("limit 1: %+v", evs)
		}
		ids = append(ids, evs[0].ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.Ledger.MarkDelivered(ctx, []int64{ids[0], ids[0], 1 << 40}); err != nil {
		t.Fatal(err)
	}
	want("after delivering a", pending(), "b")
	if err := e.Ledger.MarkDelivered(ctx, []int64{ids[0]}); err != nil {
		t.Fatal(err)
	}
	if err := insert(ev("a")); !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("delivered key again: %v, want ErrKeyTaken", err)
	}
	e.Restart()
	if err := insert(ev("a")); !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("delivered key again after a restart: %v, want ErrKeyTaken", err)
	}
	if err := insert(ev("b")); !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("pending key again after a restart: %v, want ErrKeyTaken", err)
	}
	if err := insert(ev("c")); err != nil {
		t.Fatal(err)
	}
	want("after a restart", pending(), "b", "c")

	// A charge whose event key is taken is refused whole.
	pool := ledger.PoolKey{Sender: "0xsigner", Capability: "budget", Customer: "bob"}.Ref()
	e.Credit(pool, 10, "fund")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := e.Ledger.ChargeWithEvent(cctx, pool, ledger.Wei(4), ledger.Amount{}, "spend-a", *ev("a")); err == nil {
		t.Fatal("a charge whose event key is taken succeeded")
	}
	e.WantBalance(pool, 10)
	if err := e.Store.View(ctx, func(tx ledger.ReadTx) error {
		es, err := tx.EntriesByKey(ctx, []string{"spend-a"})
		if len(es) != 0 {
			t.Errorf("refused charge left entries %+v", es)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ledger.ChargeWithEvent(ctx, pool, ledger.Wei(4), ledger.Amount{}, "spend-e", *ev("e")); err != nil {
		t.Fatal(err)
	}
	e.WantBalance(pool, 6)
	want("after a charge with its event", pending(), "b", "c", "e")
}
