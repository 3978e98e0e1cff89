package journal_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/ledgertest"
)

// BenchmarkStreamSettlement is the periodic settlement of N live streams:
// N open holds, and each tick charges every one of them once (what a
// stream's meter posts per interval), all at once. On the journal store a
// tick is a few journal appends: the group commit puts up to MaxBatch
// charges in one record, and one sync serves every record written while
// the previous one ran. Reported per tick: charges/s, the journal records
// and syncs a tick took, and on the plain SQLite store the same load for
// comparison.
func BenchmarkStreamSettlement(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		for _, kind := range []string{"sqlite", "journal"} {
			b.Run(fmt.Sprintf("%s/streams=%d", kind, n), func(b *testing.B) {
				f := ledgertest.SQLite
				if kind == "journal" {
					f = ledgertest.Journal
				}
				benchSettlement(b, f, n)
			})
		}
	}
}

func benchSettlement(b *testing.B, f ledgertest.Factory, n int) {
	ctx := context.Background()
	s := f(b)()
	l := ledger.New(s, ledger.Options{})
	b.Cleanup(func() { l.Close(); s.Close() })
	pool := ledger.PoolKey{Sender: "0xstreams", Capability: "live"}
	if _, err := l.Credit(ctx, pool.Ref(), ledger.MustParseAmount("1000000000000000000"), "fund"); err != nil {
		b.Fatal(err)
	}
	jobs := make([]ledger.JobKey, n)
	var wg sync.WaitGroup
	work := func(fn func(i int) error) {
		const workers = 256
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					if err := fn(i); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	work(func(i int) error {
		jobs[i] = ledger.JobKey{Sender: pool.Sender, JobID: fmt.Sprintf("stream-%d", i)}
		_, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: jobs[i], Capability: pool.Capability,
			Reserve: ledger.Wei(1_000_000), Minimum: ledger.Wei(1), TTL: time.Hour})
		return err
	})
	js, _ := s.(*journal.Store)
	var before journal.Stats
	if js != nil {
		before = js.Stats()
	}
	b.ResetTimer()
	for tick := range b.N {
		work(func(i int) error {
			_, err := l.Charge(ctx, jobs[i].Ref(), ledger.Wei(10), ledger.Amount{}, fmt.Sprintf("tick-%d-%d", tick, i))
			return err
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "charges/s")
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/tick")
	if js != nil {
		after := js.Stats()
		b.ReportMetric(float64(after.Records-before.Records)/float64(b.N), "appends/tick")
		b.ReportMetric(float64(after.Syncs-before.Syncs)/float64(b.N), "syncs/tick")
	}
}
