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
// sync ignore the mark. In a batch that is synced, the deferred operations
// are acknowledged once the batch is written, before its sync, where the
// store says when that is (WhenWritten); the others after the sync.

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

type writtenKey struct{}

// WhenWritten returns ctx carrying f for a store's Update: a store that
// writes a transaction before it makes it durable calls f once, after the
// write succeeded and before the sync (the journal store). A store that
// commits in one step never calls it. f must not block.
func WhenWritten(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, writtenKey{}, f)
}

// Written returns the function WhenWritten put in ctx, or nil.
func Written(ctx context.Context) func() {
	f, _ := ctx.Value(writtenKey{}).(func())
	return f
}

type finalWriteKey struct{}

// FinalWrite returns ctx marked, for a RowWriter's WriteRows, as the
// transaction's last write: nothing else is written or read in it after
// WriteRows returns, so a store may commit with the write (a round trip
// less); an error of WriteRows then covers the commit's.
func FinalWrite(ctx context.Context) context.Context {
	return context.WithValue(ctx, finalWriteKey{}, true)
}

// KeepCommit returns ctx marked, for a store's Update, so that the
// transaction commits after fn returns, never with a final write: for a
// wrapper of Update that may still fail the transaction after fn.
func KeepCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepCommitKey{}, true)
}

// CommitKept reports whether ctx carries KeepCommit's mark.
func CommitKept(ctx context.Context) bool {
	v, _ := ctx.Value(keepCommitKey{}).(bool)
	return v
}

type keepCommitKey struct{}

// WriteIsFinal reports whether ctx carries FinalWrite's mark.
func WriteIsFinal(ctx context.Context) bool {
	v, _ := ctx.Value(finalWriteKey{}).(bool)
	return v
}
