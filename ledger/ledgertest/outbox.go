package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	{"OutboxByTopic", testOutboxByTopic},
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

// testOutboxByTopic: PendingOutbox with topics returns only their
// undelivered events, by ID, above after, at most limit (a topic named
// twice counts once), written, delivered, and after a restart; with many
// delivered among many pending, the rest still come in order.
func testOutboxByTopic(t *testing.T, e *Env) {
	pool := ledger.PoolKey{Sender: "0xsigner", Capability: "budget", Customer: "alice"}.Ref()
	write := func(i int, topic string) {
		t.Helper()
		ev := ledger.OutboxEvent{Key: fmt.Sprint("ev-", i), Topic: topic, Subject: "alice", Body: []byte("{}")}
		if _, err := e.Ledger.CreditWithEvent(e.Ctx, pool, ledger.Wei(1), fmt.Sprint("credit-", i), ev); err != nil {
			t.Fatal(err)
		}
	}
	for i, topic := range []string{"usage", "alert", "usage", "refund", "alert", "usage"} {
		write(i, topic)
	}
	all, err := e.Ledger.PendingOutbox(e.Ctx, 0, 100)
	if err != nil || len(all) != 6 {
		t.Fatalf("pending %d, %v; want 6", len(all), err)
	}
	check := func(when string, after int64, limit int, want string, topics ...string) {
		t.Helper()
		evs, err := e.Ledger.PendingOutbox(e.Ctx, after, limit, topics...)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var keys []string
		for i, ev := range evs {
			keys = append(keys, ev.Key)
			if i > 0 && ev.ID <= evs[i-1].ID {
				t.Fatalf("%s %v: IDs out of order: %+v", when, topics, evs)
			}
		}
		if got := strings.Join(keys, " "); got != want {
			t.Fatalf("%s: pending %v after %d, at most %d: %q, want %q", when, topics, after, limit, got, want)
		}
	}
	checks := func(when string, alerts, others, firstTwo, afterThird string) {
		t.Helper()
		check(when, 0, 10, alerts, "alert")
		check(when, 0, 10, others, "usage", "refund")
		check(when, 0, 2, firstTwo, "usage", "refund", "usage")
		check(when, all[2].ID, 10, afterThird, "refund", "usage")
		check(when, 0, 10, "", "none")
	}
	checks("written", "ev-1 ev-4", "ev-0 ev-2 ev-3 ev-5", "ev-0 ev-2", "ev-3 ev-5")
	e.Restart()
	checks("after a restart", "ev-1 ev-4", "ev-0 ev-2 ev-3 ev-5", "ev-0 ev-2", "ev-3 ev-5")
	if err := e.Ledger.MarkDelivered(e.Ctx, []int64{all[1].ID, all[2].ID}); err != nil {
		t.Fatal(err)
	}
	checks("delivered", "ev-4", "ev-0 ev-3 ev-5", "ev-0 ev-3", "ev-3 ev-5")
	e.Restart()
	checks("delivered, after a restart", "ev-4", "ev-0 ev-3 ev-5", "ev-0 ev-3", "ev-3 ev-5")

	// A backlog: 200 more usage events, 150 of them delivered.
	var ids []int64
	for i := 6; i < 206; i++ {
		write(i, "usage")
	}
	evs, err := e.Ledger.PendingOutbox(e.Ctx, all[5].ID, 500, "usage")
	if err != nil || len(evs) != 200 {
		t.Fatalf("backlog: %d, %v; want 200", len(evs), err)
	}
	var want []string
	for i, ev := range evs {
		if i%4 == 0 {
			want = append(want, ev.Key)
		} else {
			ids = append(ids, ev.ID)
		}
	}
	if err := e.Ledger.MarkDelivered(e.Ctx, ids); err != nil {
		t.Fatal(err)
	}
	check("backlog delivered", all[5].ID, 500, strings.Join(want, " "), "usage")
	check("backlog delivered", all[5].ID, 3, strings.Join(want[:3], " "), "usage", "alert")
	check("backlog delivered", 0, 10, "ev-4", "alert")
	e.Restart()
	check("backlog delivered, after a restart", all[5].ID, 500, strings.Join(want, " "), "usage")
}
