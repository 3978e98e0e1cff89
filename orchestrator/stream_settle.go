package orchestrator

import (
	"context"
	"errors"
	"sync"
	"time"

	"byoc/internal/tick"
	"byoc/orchestrator/meter"
)

// SettleStats is what one batch settlement did.
type SettleStats struct {
	Streams int // settled (running when the batch began)
	Charged int // with a charge committed
	Dry     int // whose hold could not cover what they owe
	Stopped int // dry past the grace, stopped
	Failed  int // a ledger failure (tried again at the next batch)
}

// RunStreams settles every running stream at each tick of one ticker
// (Config.StreamTicker every StreamSettleInterval), until ctx ends: the one
// periodic billing of all streams, with no goroutine or timer per stream.
func (o *Orchestrator) RunStreams(ctx context.Context) {
	tick.Every(ctx, o.cfg.StreamTicker, o.cfg.StreamSettleInterval, func(ctx context.Context) { o.SettleStreams(ctx) })
}

// SettleStreams settles every running stream once, at the ledger's time
// now: each is charged what it owes (lazily computed), through at most
// StreamSettlers settlements at once, whose charges the ledger's committer
// groups into few commits. A stream whose hold cannot cover what it owes
// is dry; one dry for StreamGrace or longer is stopped (stopStreamLater,
// reason insufficient_balance), alone: its hold is finished in the batch,
// its worker told after it (WaitStreamStops), so a hung worker delays no
// other stream's settlement.
func (o *Orchestrator) SettleStreams(ctx context.Context) SettleStats {
	began := time.Now() // the billing lag metric only
	now := o.meter.Now()
	list := o.streams.running()
	var st SettleStats
	st.Streams = len(list)
	var mu sync.Mutex
	work := make(chan *stream)
	var wg sync.WaitGroup
	for range min(o.cfg.StreamSettlers, len(list)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				outcome := o.settleOne(ctx, s, now)
				mu.Lock()
				switch outcome {
				case settleCharged:
					st.Charged++
				case settleDry:
					st.Dry++
				case settleStopped:
					st.Dry++
					st.Stopped++
				case settleExpired:
					st.Stopped++
				case settleFailed:
					st.Failed++
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range list {
		work <- s
	}
	close(work)
	wg.Wait()
	o.m.settleSeconds.Observe(time.Since(began).Seconds())
	if sw, ok := o.cfg.Channels.(interface{ Sweep() }); ok {
		sw.Sweep() // idle channels, on this loop rather than one of their own
	}
	return st
}

type settleOutcome int

const (
	settleNothing settleOutcome = iota
	settleCharged
	settleDry
	settleStopped
	settleExpired
	settleFailed
)

func (o *Orchestrator) settleOne(ctx context.Context, s *stream, now time.Time) settleOutcome {
	c, err := s.money.Settle(ctx, now)
	switch {
	case err == nil && c.Charged.Sign() > 0:
		return settleCharged
	case err == nil:
		return settleNothing
	case errors.Is(err, meter.ErrStreamClosed):
		// Its hold expired under it (no settlement for its TTL): it
		// cannot be billed, so it stops.
		if o.stopStreamLater(ctx, s, StopHoldExpired, []byte("hold expired")) {
			return settleExpired
		}
		return settleNothing
	case errors.Is(err, meter.ErrInsufficientBalance):
		if now.Sub(s.money.DrySince()) < o.cfg.StreamGrace {
			s.log.Info("stream ran dry; stopped after the grace unless paid", "grace", o.cfg.StreamGrace)
			return settleDry
		}
		o.stopStreamLater(ctx, s, StopInsufficientFunds, []byte("insufficient balance"))
		return settleStopped
	default:
		s.log.Error("settle stream", "err", err)
		return settleFailed
	}
}
