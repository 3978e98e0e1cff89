package journal_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/ledgertest"
	"byoc/ledger/sqlite"
)

// BenchmarkOutboxBacklog is a signer's alert sink reading its 10 pending
// alerts among 100,000 events, the others usage events that wait for a
// usage sink that is down:
// "scan" reads every pending event 100 at a time and keeps the alerts (as
// the sink did), "topic" asks the store for the alerts' topic. ns/op is
// one read of the sink's batch.
func BenchmarkOutboxBacklog(b *testing.B) {
	ctx := context.Background()
	s, err := journal.Open(ctx, filepath.Join(ledgertest.TempDir(b), sqlite.FileName), journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	pool := ledger.PoolKey{Sender: "0xsigner", Capability: "budget", Customer: "alice"}.Ref()
	const events, alerts = 100_000, 10
	for i := range events {
		topic := "usage"
		if i%(events/alerts) == 0 {
			topic = "alert"
		}
		ev := ledger.OutboxEvent{Key: fmt.Sprint("ev-", i), Topic: topic, Subject: "alice", Body: []byte("{}")}
		if _, err := l.CreditWithEvent(ledger.DeferSync(ctx), pool, ledger.Wei(1), fmt.Sprint("credit-", i), ev); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			var out []ledger.OutboxEvent
			var after int64
			for len(out) < 100 {
				evs, err := l.PendingOutbox(ctx, after, 100)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range evs {
					if e.Topic == "alert" && len(out) < 100 {
						out = append(out, e)
					}
					after = e.ID
				}
				if len(evs) < 100 {
					break
				}
			}
			if len(out) != alerts {
				b.Fatalf("%d alerts", len(out))
			}
		}
	})
	b.Run("topic", func(b *testing.B) {
		for b.Loop() {
			evs, err := l.PendingOutbox(ctx, 0, 100, "alert")
			if err != nil || len(evs) != alerts {
				b.Fatalf("%d alerts, %v", len(evs), err)
			}
		}
	})
}
