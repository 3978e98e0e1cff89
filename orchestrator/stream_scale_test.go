package orchestrator

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator/meter"
	"byoc/pm"
)

// TestStreamScale keeps N idle-but-billed streams open on one orchestrator
// (an SQLite ledger on disk) and settles them all in batches, one debit
// interval (23 s) apart on the ledger's clock, measuring the billing lag
// (the wall time a batch takes), the charges committed per second and the
// memory each stream costs. Every batch must charge every stream exactly
// 23 s. N is 300 by default; BYOC_STREAM_SCALE="1000,10000" tries more
// (docs/performance.md has the figures).
func TestStreamScale(t *testing.T) {
	ns := []int{300}
	if v := os.Getenv("BYOC_STREAM_SCALE"); v != "" {
		ns = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				t.Fatalf("BYOC_STREAM_SCALE: %q", s)
			}
			ns = append(ns, n)
		}
	}
	for _, n := range ns {
		t.Run(fmt.Sprint(n), func(t *testing.T) { streamScale(t, n) })
	}
}

func streamScale(t *testing.T, n int) {
	e := ledgertest.NewEnv(t, ledgertest.SQLite)
	blocks, err := pm.NewOffchainBlocks(e.Clock.Now, 0, common.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	rc := pm.RecipientConfig{Address: common.HexToAddress("0xb2"), Blocks: blocks, TicketEV: big.NewInt(1000)}
	rc.Secret[0] = 1
	recipient, err := pm.NewRecipient(rc)
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(Config{ServiceAddr: "https://127.0.0.1:1", Secret: "s", Ledger: e.Ledger, Recipient: recipient,
		MinCompute: time.Minute, StreamSettleInterval: 23 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const senders = 100
	const perStream = 600_000 // 600 s at 1000 wei per second
	price := big.NewRat(1000, 1)
	o.reg.register("live", "", "http://127.0.0.1:1", "", n, price)
	pools := make([]meter.Pool, senders)
	for i := range pools {
		pools[i] = meter.Pool{Sender: common.BigToAddress(big.NewInt(int64(0x1000 + i))), Capability: "live"}
		e.Credit(pools[i].Ref(), int64(perStream*(n/senders+1)), fmt.Sprintf("fund-%d", i))
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	openStart := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	var mu sync.Mutex
	var failed []error
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := o.openIdleStream(e.Ctx, pools[i%senders], fmt.Sprintf("s%d", i), price, 600*time.Second); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d streams did not open: %v", len(failed), failed[0])
	}
	opened := time.Since(openStart)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perStreamMem := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)

	var worst time.Duration
	for batch := 1; batch <= 3; batch++ {
		e.Clock.Advance(23 * time.Second)
		began := time.Now()
		st := o.SettleStreams(e.Ctx)
		lag := time.Since(began)
		worst = max(worst, lag)
		if st.Streams != n || st.Charged != n || st.Dry != 0 || st.Failed != 0 {
			t.Fatalf("batch %d: %+v, want all %d charged", batch, st, n)
		}
		t.Logf("N=%d batch %d: lag %v, %.0f charges/s", n, batch, lag.Round(time.Millisecond), float64(n)/lag.Seconds())
	}
	t.Logf("N=%d: opened in %v (%.0f/s); heap %.0f B per stream; worst lag %v (interval 23 s): %s",
		n, opened.Round(time.Millisecond), float64(n)/opened.Seconds(), perStreamMem, worst.Round(time.Millisecond),
		map[bool]string{true: "holds", false: "DOES NOT HOLD"}[worst < 23*time.Second])
	// Baseline, the same run: what a goroutine and a timer per stream (the
	// reference's monitor) would hold, idle, before any billing.
	runtime.GC()
	var b0, b1 runtime.MemStats
	runtime.ReadMemStats(&b0)
	stop := make(chan struct{})
	var idle sync.WaitGroup
	for range n {
		idle.Add(1)
		go func() {
			defer idle.Done()
			tk := time.NewTicker(23 * time.Second)
			defer tk.Stop()
			select {
			case <-stop:
			case <-tk.C:
			}
		}()
	}
	runtime.GC()
	runtime.ReadMemStats(&b1)
	close(stop)
	idle.Wait()
	t.Logf("N=%d baseline: a goroutine and a ticker per stream hold %.0f B per stream (heap + stacks) before billing anything",
		n, float64(int64(b1.HeapAlloc+b1.StackInuse)-int64(b0.HeapAlloc+b0.StackInuse))/float64(n))
	// Each stream: 23 s per batch, all charged.
	for _, id := range []string{"s0", fmt.Sprintf("s%d", n-1)} {
		s := o.streams.m[id]
		if got := s.money.Total(); got.Cmp(ledger.Wei(1000*3*23)) != 0 {
			t.Errorf("%s charged %s, want %d", id, got, 1000*3*23)
		}
	}
}

// openIdleStream opens a stream's slot and hold as a start would, with no
// worker and no channels: the billing side alone.
func (o *Orchestrator) openIdleStream(ctx context.Context, pool meter.Pool, id string, price *big.Rat, timeout time.Duration) error {
	sl, err := o.reg.reserve(pool.Capability)
	if err != nil {
		return err
	}
	s := &stream{id: id, pool: pool, slot: sl, log: o.log}
	if !o.streams.claim(s) {
		return fmt.Errorf("stream %s exists", id)
	}
	money, _, err := o.meter.OpenStream(ctx, meter.Request{Pool: pool, JobID: id, RequestID: "r-" + id, Price: price, Timeout: timeout,
		TTL: time.Hour})
	if err != nil {
		return err
	}
	s.money = money
	s.state = streamRunning
	return nil
}
