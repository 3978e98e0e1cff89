package trickle

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// RelayStats counts what a relay did.
type RelayStats struct {
	Segments int   // segments published downstream
	Bytes    int64 // their bytes
	Skipped  int   // upstream segments gone before they could be read (470)
	Dropped  int   // segments that failed downstream and were dropped
}

// Transform rewrites one segment's body on its way through a relay; nil
// passes it unchanged. It may stream (return a reader over r) or read it
// all first.
type Transform func(seq int, r io.Reader) io.Reader

// Relay copies segments from one channel into another as they arrive,
// streaming each segment's bytes through, until ctx ends or either side
// ends. It returns nil when the upstream channel closed (the end of the
// stream); otherwise the error that ended it, wrapped with the side it
// came from ("relay upstream: …", "relay downstream: …"), such as
// ErrNotFound, or ErrClosed when the downstream channel closed. A segment that fails downstream is
// dropped (the publisher moves on to the next number); upstream gaps are
// jumped over by the subscriber.
func Relay(ctx context.Context, from *Subscriber, to *Publisher, transform Transform) (RelayStats, error) {
	var st RelayStats
	for {
		seg, err := from.Read(ctx)
		if errors.Is(err, ErrClosed) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("relay upstream: %w", err)
		}
		st.Skipped += seg.Skipped
		var body io.Reader = seg.Body
		if transform != nil {
			body = transform(seg.Seq, body)
		}
		_, n, err := to.Write(ctx, body)
		seg.Body.Close()
		switch {
		case err == nil:
			st.Segments++
			st.Bytes += n
		case errors.Is(err, ErrClosed), errors.Is(err, ErrNotFound), ctx.Err() != nil:
			return st, fmt.Errorf("relay downstream: %w", err)
		default:
			st.Dropped++
		}
	}
}
