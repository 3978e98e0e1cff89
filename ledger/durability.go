package ledger

import "context"

// Deferred syncs. An operation is acknowledged, by default, only once its
// store has made it durable (an fsync, a synchronous commit). A caller may
// mark an operation as one whose loss in a power cut is acceptable — the
// orchestrator's close of a finished job, whose loss leaves the hold open
// until it expires and returns to the sender's pool: the orchestrator
// forgoes that charge, nobody is charged for what is not recorded.
//
// Such an operation is acknowledged once applied and handed to the
// operating system: a killed process loses nothing, a power cut or an
// operating-system crash may lose it, as it loses the operations after it
// (the journal is a sequence: whatever is durable is a prefix). It becomes
// durable with the next synced commit of the same store, or within a
// bound the store sets (journal.Options.DeferredSyncWithin). A batch is
// deferred only when every operation in it is; stores that cannot defer a
// sync ignore the mark.

type deferSyncKey struct{}

// DeferSync returns ctx marked so that the ledger operations submitted
// with it are acknowledged before they are durable (see above).
func DeferSync(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferSyncKey{}, true)
}

// SyncDeferred reports whether ctx carries DeferSync's mark: for a
// store's Update, the batch it commits may be acknowledged before it is
// durable.
func SyncDeferred(ctx context.Context) bool {
	v, _ := ctx.Value(deferSyncKey{}).(bool)
	return v
}
