package ledgertest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/internal/cpu"
	"byoc/ledger"
)

// Bench runs the ledger benchmarks against stores made by f:
//
//   - Credit: one durable credit at a time, one goroutine.
//   - JobLifecycle: open + charge + close of one job, one goroutine.
//   - Concurrent/G: G goroutines each running job lifecycles (open, credit,
//     charge, close: four durable operations) against pools shared by
//     several senders; reports ops/s, the figure group commit is for.
//
// BenchPaidJob measures what an orchestrator does per paid job.
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
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(ops), "µs/op")
}

// BenchPaidJob runs the paid-job benchmarks: Serial (one goroutine) and
// Concurrent/16 (16 goroutines). See benchPaidJob.
func BenchPaidJob(b *testing.B, f Factory) {
	b.Run("Serial", func(b *testing.B) { benchPaidJob(b, f, 1) })
	b.Run("Concurrent/16", func(b *testing.B) { benchPaidJob(b, f, 16) })
}

// benchPaidJob runs paid jobs as orchestrator/job.go does, on g goroutines:
// Admit with a payment of one PM ticket (its nonce recorded in a ticket
// session, its credit keyed "pm:<ticket hash>", one ticket in 64 a winner)
// that opens the job's hold and tops it up from a funded pool, then
// FinishJob (charge of what ran, under "compute:<request>:<units>", with
// that charge as grace, and close, its sync deferred as the orchestrator
// defers it: ledger.DeferSync). Two operations per job, one synced; a
// session carries 8 jobs' tickets. Senders' pools are shared by the
// goroutines, 8 senders.
func benchPaidJob(b *testing.B, f Factory, g int) {
	e := newBenchEnv(b, f)
	senders := fundSenders(b, e)
	b.ResetTimer()
	cpu0 := cpu.Process()
	runPaidJobs(b, e, senders, g)
	b.StopTimer()
	reportOps(b, 2*b.N)
	// CPU time of this process (the ledger, the benchmark and, for SQLite,
	// the database; not a PostgreSQL server) per operation: a steadier
	// figure than µs/op on a shared machine.
	b.ReportMetric(float64((cpu.Process()-cpu0).Microseconds())/float64(2*b.N), "cpu-µs/op")
}

// BenchPaidJobCatchUp measures what a store does after the paid jobs'
// operations were acknowledged: b.N paid jobs run on 16 goroutines with
// the timer stopped, then catchUp (a journal store's projection held back
// until then: its Sync) runs alone, timed; cpu-µs/op is its CPU per
// operation, two per job.
func BenchPaidJobCatchUp(b *testing.B, f Factory, catchUp func(context.Context, ledger.Store) error) {
	e := newBenchEnv(b, f)
	senders := fundSenders(b, e)
	b.StopTimer()
	runPaidJobs(b, e, senders, 16)
	b.StartTimer()
	cpu0 := cpu.Process()
	if err := catchUp(e.Ctx, e.Store); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpu.Process()-cpu0).Microseconds())/float64(2*b.N), "cpu-µs/op")
}

// fundSenders funds the pools of the paid-job benchmarks' 8 senders.
func fundSenders(b *testing.B, e *Env) []string {
	senders := make([]string, 8)
	for i := range senders {
		senders[i] = fmt.Sprintf("0x%040x", 0xbe0c0+i)
		pool := ledger.PoolKey{Sender: senders[i], Capability: "echo"}
		if _, err := e.Ledger.Credit(e.Ctx, pool.Ref(), ledger.MustParseAmount("1000000000000000000"), "fund"+fmt.Sprint(i)); err != nil {
			b.Fatal(err)
		}
	}
	return senders
}

// runPaidJobs runs b.N paid jobs on g goroutines.
func runPaidJobs(b *testing.B, e *Env, senders []string, g int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				session := fmt.Sprintf("0x%032x%032x", w, k/8)
				paidJob(b, e.Ctx, e.Ledger, senders[(int(i)+w)%len(senders)], fmt.Sprintf("%032x", i), session, uint32(k%8), i%64 == 0)
			}
		}()
	}
	wg.Wait()
}

func paidJob(b *testing.B, ctx context.Context, l *ledger.Ledger, sender, id, session string, nonce uint32, win bool) {
	ticket := fmt.Sprintf("pm:0x%064x", sha256.Sum256([]byte(session+id)))
	pay := &ledger.PaymentRequest{Session: session, SessionExpiry: 1_000_000, MaxNonces: 600,
		Tickets: []ledger.PaymentTicket{{Nonce: nonce, Credit: ledger.PaymentCredit{Key: ticket, Amount: ledger.Wei(1_000)}}}}
	if win {
		pay.Winners = []ledger.Winner{{Key: ticket, Sender: sender, FaceValue: ledger.Wei(1_000_000),
			RedeemAfter: 1_000_000, Payload: make([]byte, 700)}}
	}
	job := ledger.JobKey{Sender: sender, JobID: id}
	res, err := l.Admit(ctx, ledger.AdmitRequest{Payment: pay, OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: "echo",
		Reserve: ledger.Wei(30_000), Minimum: ledger.Wei(1_000), TTL: 35 * time.Second}})
	if err != nil || !res.Admitted || res.Payment.Tickets != 1 {
		b.Errorf("admit %s: %+v, %v", id, res, err)
		return
	}
	// The orchestrator's finish is acknowledged before its sync
	// (meter.Config.DurableJobs unset): so is this one.
	if _, err := l.FinishJob(ledger.DeferSync(ctx), job, ledger.Wei(1_000), ledger.Wei(1_000), "compute:"+id+":1"); err != nil {
		b.Error(err)
	}
}
