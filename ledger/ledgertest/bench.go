package ledgertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ledger"
)

// Bench runs the ledger benchmarks against stores made by f:
//
//   - Credit: one durable credit at a time, one goroutine.
//   - JobLifecycle: open + charge + close of one job, one goroutine.
//   - Concurrent/G: G goroutines each running job lifecycles (open, credit,
//     charge, close: four durable operations) against pools shared by
//     several senders; reports ops/s, the figure group commit is for.
func Bench(b *testing.B, f Factory) {
	b.Run("Credit", func(b *testing.B) {
		e := newBenchEnv(b, f)
		pool := ledger.PoolKey{Sender: "0xbench", Capability: "echo"}
		b.ResetTimer()
		for i := range b.N {
			if _, err := e.Ledger.Credit(e.Ctx, pool.Ref(), ledger.Wei(1000), fmt.Sprintf("c%d", i)); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b, b.N)
	})
	b.Run("JobLifecycle", func(b *testing.B) {
		e := newBenchEnv(b, f)
		pool := ledger.PoolKey{Sender: "0xbench", Capability: "echo"}
		e.Ledger.Credit(e.Ctx, pool.Ref(), ledger.MustParseAmount("1000000000000000000"), "fund")
		b.ResetTimer()
		for i := range b.N {
			runJob(b, e.Ctx, e.Ledger, pool, fmt.Sprintf("j%d", i), false)
		}
		reportOps(b, 3*b.N)
	})
	for _, g := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("Concurrent/%d", g), func(b *testing.B) {
			e := newBenchEnv(b, f)
			pools := make([]ledger.PoolKey, 8)
			for i := range pools {
				pools[i] = ledger.PoolKey{Sender: fmt.Sprintf("0xsender%d", i), Capability: "echo"}
				e.Ledger.Credit(e.Ctx, pools[i].Ref(), ledger.MustParseAmount("1000000000000000000"), "fund"+fmt.Sprint(i))
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						runJob(b, e.Ctx, e.Ledger, pools[(int(i)+w)%len(pools)], fmt.Sprintf("j%d", i), true)
					}
				}()
			}
			wg.Wait()
			reportOps(b, 4*b.N)
		})
	}
}

func newBenchEnv(b *testing.B, f Factory) *Env {
	open := f(b)
	s := open()
	l := ledger.New(s, ledger.Options{Clock: ledger.SystemClock{}})
	b.Cleanup(func() { l.Close(); s.Close() })
	return &Env{T: b, Ctx: context.Background(), Open: open, Store: s, Ledger: l}
}

func runJob(b *testing.B, ctx context.Context, l *ledger.Ledger, pool ledger.PoolKey, id string, pay bool) {
	job := ledger.JobKey{Sender: pool.Sender, JobID: id}
	if _, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: pool.Capability,
		Reserve: ledger.Wei(60_000), Minimum: ledger.Wei(60_000), TTL: time.Minute}); err != nil {
		b.Error(err)
		return
	}
	if pay {
		if _, err := l.Credit(ctx, job.Ref(), ledger.Wei(8_000), id+"-pay"); err != nil {
			b.Error(err)
		}
	}
	if _, err := l.Charge(ctx, job.Ref(), ledger.Wei(1_000), ledger.Amount{}, id+"-use"); err != nil {
		b.Error(err)
	}
	if _, err := l.CloseJob(ctx, job); err != nil {
		b.Error(err)
	}
}

func reportOps(b *testing.B, ops int) {
	b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "ops/s")
}
