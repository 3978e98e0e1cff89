package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/ledgertest"
	"byoc/ledger/sqlite"
)

func TestConformance(t *testing.T) { ledgertest.Run(t, ledgertest.Journal) }

// TestConformanceLagging runs the suite with a projection that lags until
// something reads history: every such read waits for it, and memory
// answers the rest alone.
func TestConformanceLagging(t *testing.T) {
	ledgertest.Run(t, func(t testing.TB) ledgertest.Opener {
		path := filepath.Join(ledgertest.TempDir(t), sqlite.FileName)
		return func() ledger.Store {
			s, err := journal.Open(context.Background(), path, journal.Options{SegmentBytes: 16 << 10, ProjectAfter: 1 << 20, ProjectDelay: time.Hour, MaxLag: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

func BenchmarkLedger(b *testing.B) { ledgertest.Bench(b, ledgertest.Journal) }

// BenchmarkPaidJob runs the paid-job benchmark on the plain SQLite store
// and on the journal store in the same run, for a side-by-side figure.
func BenchmarkPaidJob(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { ledgertest.BenchPaidJob(b, ledgertest.SQLite) })
	b.Run("journal", func(b *testing.B) { ledgertest.BenchPaidJob(b, ledgertest.Journal) })
	// The journal alone: the projection held back until the store
	// closes, after the timer stops (what the acknowledged path costs).
	b.Run("journal-unprojected", func(b *testing.B) { ledgertest.BenchPaidJob(b, heldBack) })
	// The projection alone: the held-back records of b.N paid jobs
	// projected at once, in batches of ProjectBatch.
	b.Run("projection", func(b *testing.B) {
		ledgertest.BenchPaidJobCatchUp(b, heldBack, func(ctx context.Context, s ledger.Store) error {
			return s.(*journal.Store).Sync(ctx)
		})
	})
}

func heldBack(t testing.TB) ledgertest.Opener {
	path := filepath.Join(ledgertest.TempDir(t), sqlite.FileName)
	return func() ledger.Store {
		s, err := journal.Open(context.Background(), path, journal.Options{ProjectAfter: 1 << 30, ProjectDelay: time.Hour, MaxLag: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// Memory holds undelivered outbox events only: a delivered one leaves it
// once the tables hold its delivery, and its key is then found taken in
// the tables.
func TestOutboxMemoryHoldsUndelivered(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(ledgertest.TempDir(t), sqlite.FileName)
	s, err := journal.Open(ctx, path, journal.Options{ProjectAfter: 1 << 20, ProjectDelay: time.Hour, MaxLag: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := func(key string) *ledger.OutboxEvent {
		return &ledger.OutboxEvent{Key: key, Topic: "usage", At: ledgertest.Epoch, Body: []byte(key)}
	}
	insert := func(evs ...*ledger.OutboxEvent) error {
		return s.Update(ctx, func(tx ledger.Tx) error { return tx.InsertOutbox(ctx, evs) })
	}
	if err := insert(ev("a"), ev("b"), ev("c")); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats(); got.Outbox != 3 || got.Projected != 0 {
		t.Fatalf("stats %+v, want 3 events in memory, nothing projected", got)
	}
	var pending []ledger.OutboxEvent
	if err := s.View(ctx, func(tx ledger.ReadTx) (err error) {
		pending, err = tx.PendingOutbox(ctx, 0, 10)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 3 || pending[0].ID != 1 || pending[2].ID != 3 {
		t.Fatalf("pending before any projection: %+v", pending)
	}
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	if err := l.MarkDelivered(ctx, []int64{pending[0].ID, pending[1].ID}); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats(); got.Outbox != 3 {
		t.Fatalf("stats %+v: delivered events left memory before the tables hold their delivery", got)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The next commit evicts what the projection now holds.
	if err := insert(ev("d")); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats(); got.Outbox != 2 {
		t.Fatalf("stats %+v, want the 2 undelivered events in memory", got)
	}
	if err := insert(ev("a")); !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("key of a delivered event, gone from memory: %v, want ErrKeyTaken", err)
	}
	got, err := l.PendingOutbox(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "c" || got[1].Key != "d" || got[1].ID != 4 {
		t.Fatalf("pending %+v, want c and d (ID 4)", got)
	}
	var n, delivered int
	if err := s.DB().QueryRow(`SELECT count(*), count(delivered_at) FROM outbox`).Scan(&n, &delivered); err != nil {
		t.Fatal(err)
	}
	if n != 4 || delivered != 2 {
		t.Fatalf("tables hold %d events, %d delivered; want 4, 2", n, delivered)
	}
}

// TestConformanceNormalSync runs the suite on a journal whose batches are
// written but not synced (the gateway's books): the same semantics; only
// a power cut's window differs.
func TestConformanceNormalSync(t *testing.T) {
	ledgertest.Run(t, func(t testing.TB) ledgertest.Opener {
		path := filepath.Join(ledgertest.TempDir(t), sqlite.FileName)
		return func() ledger.Store {
			s, err := journal.Open(context.Background(), path, journal.Options{NormalSync: true})
			if err != nil {
				t.Fatal(err)
			}
			if !s.NormalSync() {
				t.Fatal("NormalSync() = false for a store opened with it")
			}
			return s
		}
	})
}

// TestConformanceDeferredSync runs the suite with every Update's sync
// deferred (ledger.DeferSync): the same semantics; only a power cut's
// window differs.
func TestConformanceDeferredSync(t *testing.T) {
	ledgertest.Run(t, func(t testing.TB) ledgertest.Opener {
		path := filepath.Join(ledgertest.TempDir(t), sqlite.FileName)
		return func() ledger.Store {
			s, err := journal.Open(context.Background(), path, journal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return deferAll{s}
		}
	})
}

// deferAll marks every Update as one whose sync may be deferred.
type deferAll struct{ *journal.Store }

func (d deferAll) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	return d.Store.Update(ledger.DeferSync(ctx), fn)
}

// A deferred Update is acknowledged before its sync; the next synced
// Update, or the bound, makes it durable; a view does not sync it.
func TestDeferredSync(t *testing.T) {
	ctx := context.Background()
	open := func(within time.Duration) (*journal.Store, *ledger.Ledger) {
		s, err := journal.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName), journal.Options{DeferredSyncWithin: within})
		if err != nil {
			t.Fatal(err)
		}
		l := ledger.New(s, ledger.Options{})
		t.Cleanup(func() { l.Close(); s.Close() })
		return s, l
	}
	pool := ledger.PoolKey{Sender: "0xs", Capability: "echo"}

	s, l := open(time.Hour)
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(10), "a"); err != nil {
		t.Fatal(err)
	}
	st0 := s.Stats()
	if _, err := l.Credit(ledger.DeferSync(ctx), pool.Ref(), ledger.Wei(10), "b"); err != nil {
		t.Fatal(err)
	}
	if bal, err := l.Balance(ctx, pool.Ref()); err != nil || bal.Cmp(ledger.Wei(20)) != 0 {
		t.Fatalf("balance %v, %v; want 20", bal, err)
	}
	st1 := s.Stats()
	if st1.Syncs != st0.Syncs || st1.Deferred != st0.Deferred+1 || st1.Records != st0.Records+1 {
		t.Fatalf("after a deferred credit and a read: syncs %d→%d, deferred %d→%d, records %d→%d; want no sync, one deferred record",
			st0.Syncs, st1.Syncs, st0.Deferred, st1.Deferred, st0.Records, st1.Records)
	}
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(10), "c"); err != nil {
		t.Fatal(err)
	}
	if st2 := s.Stats(); st2.Syncs != st1.Syncs+1 {
		t.Fatalf("a synced credit after a deferred one: %d syncs, want %d (one serves both)", st2.Syncs-st1.Syncs, 1)
	}

	// With a short bound, a lone deferred record is synced by the timer.
	s, l = open(5 * time.Millisecond)
	st0 = s.Stats()
	if _, err := l.Credit(ledger.DeferSync(ctx), pool.Ref(), ledger.Wei(10), "d"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Syncs == st0.Syncs {
		if time.Now().After(deadline) {
			t.Fatal("a deferred record was not synced within 10 s (bound 5 ms)")
		}
		time.Sleep(time.Millisecond)
	}
}

// The journal says when an Update is written (ledger.WhenWritten): after
// its record is written, before that record's sync.
func TestWrittenBeforeSync(t *testing.T) {
	ctx := context.Background()
	s, err := journal.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	pool := ledger.PoolKey{Sender: "0xs", Capability: "echo"}.Ref()
	if _, err := l.Credit(ctx, pool, ledger.Wei(10), "a"); err != nil {
		t.Fatal(err)
	}
	st0 := s.Stats()
	var at journal.Stats
	calls := 0
	err = s.Update(ledger.WhenWritten(ctx, func() { calls++; at = s.Stats() }), func(tx ledger.Tx) error {
		return tx.InsertOutbox(ctx, []*ledger.OutboxEvent{{Key: "e", Topic: "usage", At: ledgertest.Epoch, Body: []byte("e")}})
	})
	if err != nil {
		t.Fatal(err)
	}
	st1 := s.Stats()
	if calls != 1 || at.Records != st0.Records+1 || at.Syncs != st0.Syncs || st1.Syncs != st0.Syncs+1 {
		t.Fatalf("written called %d times, with records %d→%d and syncs %d→%d, then syncs %d; want once, after the write, before the sync",
			calls, st0.Records, at.Records, st0.Syncs, at.Syncs, st1.Syncs)
	}
}

// A segment ends in its zero fill: reopening the journal reads its records
// and reports nothing torn.
func TestReopenZeroFilled(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	var logs bytes.Buffer
	opts := journal.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	for round := range 2 {
		s, err := journal.Open(ctx, path, opts)
		if err != nil {
			t.Fatal(err)
		}
		l := ledger.New(s, ledger.Options{})
		pool := ledger.PoolKey{Sender: "0xs", Capability: "echo"}
		for i := range 50 {
			if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(1), fmt.Sprint(round, "-", i)); err != nil {
				t.Fatal(err)
			}
		}
		if bal, err := l.Balance(ctx, pool.Ref()); err != nil || bal.Cmp(ledger.Wei(int64(50*(round+1)))) != 0 {
			t.Fatalf("round %d: balance %v, %v", round, bal, err)
		}
		l.Close()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(journal.Dir(path), "seg-*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want the current one", segs)
	}
	if b, err := os.ReadFile(segs[0]); err != nil || len(b) < 64<<10 || b[len(b)-1] != 0 {
		t.Fatalf("the segment has %d bytes (%v), want a zero fill of at least 64 KiB", len(b), err)
	}
	if strings.Contains(logs.String(), "torn") {
		t.Fatalf("reopening reported a torn record:\n%s", logs.String())
	}
}
