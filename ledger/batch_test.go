package ledger_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
)

// A batch smaller than the last one waits for as many operations as the
// last had, within a bound of the last batch's time (at most 500 µs), and
// goes with what came when that wait ends; a batch as large as the last
// goes at once.
func TestCommitterWaitsForAFullerBatch(t *testing.T) {
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	g := &gated{Store: env.Store, entered: make(chan struct{}, 16), release: make(chan struct{}), done: make(chan struct{})}
	l := ledger.New(g, ledger.Options{})
	waits := make(chan time.Duration, 1)
	fire := make(chan time.Time)
	ledger.SetAfter(l, func(d time.Duration) <-chan time.Time { waits <- d; return fire })
	t.Cleanup(func() { close(g.done); l.Close() })
	ctx := context.Background()
	pool := ledger.PoolKey{Sender: "0xs", Capability: "echo"}.Ref()
	credit := func(n int) chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := l.Credit(ctx, pool, ledger.Wei(1), fmt.Sprint("credit-", n))
			ch <- err
		}()
		return ch
	}
	// batch runs the batch that entered the store and checks the answers
	// of the credits it should hold.
	batch := func(name string, answers ...chan error) {
		t.Helper()
		select {
		case <-g.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no batch reached the store", name)
		}
		g.release <- struct{}{}
		for i, a := range answers {
			if err := <-a; err != nil {
				t.Fatalf("%s: credit %d: %v", name, i, err)
			}
		}
	}
	noWait := func(name string) {
		t.Helper()
		select {
		case d := <-waits:
			t.Fatalf("%s: the committer waited (%s) for a batch as large as the last", name, d)
		default:
		}
	}

	// One alone, then three queued while it is in the store: the three go
	// together, at once.
	a1 := credit(1)
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first batch did not reach the store")
	}
	a2, a3, a4 := credit(2), credit(3), credit(4)
	for deadline := time.Now().Add(10 * time.Second); ledger.Queued(l) < 3; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the three credits were not queued")
		}
	}
	g.release <- struct{}{}
	if err := <-a1; err != nil {
		t.Fatal(err)
	}
	batch("three queued", a2, a3, a4)
	noWait("three queued")

	// One comes: the committer waits, and the two that come meanwhile
	// make a batch of three without the wait's end.
	a5 := credit(5)
	select {
	case d := <-waits:
		if d <= 0 || d > 500*time.Microsecond {
			t.Fatalf("waits %s for a fuller batch; want (0, 500µs]", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a batch smaller than the last did not wait")
	}
	a6, a7 := credit(6), credit(7)
	batch("filled", a5, a6, a7)
	if n := g.updates.Load(); n != 3 {
		t.Fatalf("%d batches for 7 credits; want 3 (1, 3, 3)", n)
	}
	noWait("filled")

	// One comes and nothing else: it goes alone when the wait ends.
	a8 := credit(8)
	select {
	case <-waits:
	case <-time.After(10 * time.Second):
		t.Fatal("a batch smaller than the last did not wait")
	}
	fire <- time.Now()
	batch("alone", a8)
	if n := g.updates.Load(); n != 4 {
		t.Fatalf("%d batches for 8 credits; want 4", n)
	}
	if bal, err := l.Balance(ctx, pool); err != nil || bal.Cmp(ledger.Wei(8)) != 0 {
		t.Fatalf("balance %v, %v; want 8", bal, err)
	}
}

// gated is a store whose writes each wait, once they have said so on
// entered, for a receive on release (or done).
type gated struct {
	ledger.Store
	entered, release, done chan struct{}
	updates                atomic.Int64
}

func (g *gated) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	g.updates.Add(1)
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-g.done:
	}
	return g.Store.Update(ctx, fn)
}
