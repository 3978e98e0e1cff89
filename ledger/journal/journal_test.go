package journal_test

import (
	"context"
	"path/filepath"
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
