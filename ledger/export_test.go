package ledger

import (
	"context"
	"time"
)

// RunCredits runs one credit per ctxs[i] (keyed keys[i], to to), submitted
// under that context, as one batch of the committer, and returns what
// each is answered, in order, on its own channel.
func RunCredits(l *Ledger, ctxs []context.Context, to Ref, amount Amount, keys []string) []chan error {
	batch := make([]*request, len(ctxs))
	out := make([]chan error, len(ctxs))
	for i, ctx := range ctxs {
		batch[i] = &request{op: &creditOp{ref: to, amount: amount, k: keys[i]}, done: make(chan result, 1), deferSync: SyncDeferred(ctx)}
		out[i] = make(chan error, 1)
	}
	go func() {
		for i, r := range batch {
			go func() { out[i] <- (<-r.done).err }()
		}
		l.runBatch(batch)
	}()
	return out
}

// SetAfter replaces the timer of the committer's wait for a fuller batch;
// call it before the first operation.
func SetAfter(l *Ledger, after func(time.Duration) <-chan time.Time) { l.after = after }

// Queued is how many operations wait for the committer.
func Queued(l *Ledger) int { return len(l.queue) }
