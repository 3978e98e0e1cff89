package tick

import (
	"context"
	"testing"
	"time"
)

// Every asks its ticker for the period, runs fn once per tick, in order,
// and stops the ticker when its context ends.
func TestEvery(t *testing.T) {
	ticks := make(chan time.Time)
	stopped := make(chan struct{})
	var period time.Duration
	ticker := func(d time.Duration) (<-chan time.Time, func()) {
		period = d
		return ticks, func() { close(stopped) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan int)
	done := make(chan struct{})
	n := 0
	go func() {
		defer close(done)
		Every(ctx, ticker, 23*time.Second, func(context.Context) {
			n++
			runs <- n
		})
	}()
	for want := 1; want <= 3; want++ {
		ticks <- time.Time{}
		if got := <-runs; got != want {
			t.Fatalf("run %d, want %d", got, want)
		}
	}
	cancel()
	<-done
	select {
	case <-stopped:
	default:
		t.Fatal("the ticker was not stopped")
	}
	if period != 23*time.Second {
		t.Fatalf("ticker asked for %s, want 23s", period)
	}
}
