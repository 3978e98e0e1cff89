// Package tick runs the roles' periodic work on a ticker that tests drive
// by hand: the gateway's stream top-ups, the orchestrator's stream
// settlements.
package tick

import (
	"context"
	"time"
)

// Ticker ticks every d until stop is called. Wall is the default; tests
// give one they tick by hand.
type Ticker func(d time.Duration) (ticks <-chan time.Time, stop func())

// Wall ticks on the wall clock (time.NewTicker).
func Wall(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Every runs fn at each tick of t(d), one run at a time, until ctx ends;
// then it stops the ticker. A run that outlasts d delays the next (a wall
// ticker drops the ticks missed meanwhile).
func Every(ctx context.Context, t Ticker, d time.Duration, fn func(context.Context)) {
	ticks, stop := t(d)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			fn(ctx)
		}
	}
}
