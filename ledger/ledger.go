package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// Options configure a Ledger. Zero values take the defaults.
type Options struct {
	// Clock defaults to the wall clock.
	Clock Clock
	// MaxBatch bounds how many operations share one transaction (default 512).
	MaxBatch int
	// DefaultTTL is the idle lifetime of a job opened without one (default 5 min).
	DefaultTTL time.Duration
	// Logger receives store errors the committer could not hand to a caller.
	Logger *slog.Logger
}

// Ledger applies operations to a Store. It is safe for concurrent use. All
// writes go through a committer that groups concurrent operations into one
// transaction; each method returns after its operation is durable.
type Ledger struct {
	store Store
	clock Clock
	opts  Options

	queue chan *request
	stop  chan struct{}
	wg    sync.WaitGroup
	// after is time.After for the committer's wait for a fuller batch
	// (commitLoop); tests replace it.
	after func(time.Duration) <-chan time.Time

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against sends on queue
	closed    bool
}

type request struct {
	op   op
	done chan result
	// decided, if set, gets the op's result once its batch has applied it,
	// before the commit (see AdmitDecided).
	decided chan result
	// committed, if set, is called with the op's outcome once its batch
	// has committed (nil) or failed, before done is sent: what the op's
	// caller must learn even if it stopped waiting (FinishPendingJob).
	committed func(error)
	// deferSync: submitted under DeferSync (acknowledged before durable:
	// once its batch is written, or synced if the store cannot tell).
	deferSync bool
}

type result struct {
	val any
	err error
}

// New returns a Ledger on store and starts its committers. Call Close to stop them.
func New(store Store, opts Options) *Ledger {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Ledger{store: store, clock: opts.Clock, opts: opts,
		queue: make(chan *request, 4*opts.MaxBatch), stop: make(chan struct{}), after: time.After}
	for range max(store.Writers(), 1) {
		l.wg.Add(1)
		go l.commitLoop()
	}
	return l
}

// Store returns the store the ledger writes to.
func (l *Ledger) Store() Store { return l.store }

// Now is the ledger clock's time.
func (l *Ledger) Now() time.Time { return l.clock.Now() }

// Close stops the committers after the queued operations are done. It does
// not close the store.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
		l.wg.Wait()
	})
	return nil
}

// submit queues op and waits for its result. If ctx ends first, the op may
// still be applied later; since every op is idempotent, the caller may retry.
func (l *Ledger) submit(ctx context.Context, op op) (any, error) {
	r := &request{op: op, done: make(chan result, 1)}
	if err := l.enqueue(ctx, r); err != nil {
		return nil, err
	}
	return r.wait(ctx)
}

// enqueue hands r to the committer.
func (l *Ledger) enqueue(ctx context.Context, r *request) error {
	r.deferSync = SyncDeferred(ctx)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.queue <- r:
		l.mu.RUnlock()
		return nil
	case <-ctx.Done():
		l.mu.RUnlock()
		return ctx.Err()
	}
}

// wait returns r's result once its batch is committed (or failed).
func (r *request) wait(ctx context.Context) (any, error) {
	select {
	case res := <-r.done:
		return res.val, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run submits op and returns its result as a T.
func run[T any](ctx context.Context, l *Ledger, op op) (T, error) {
	v, err := l.submit(ctx, op)
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

// A batch smaller than the last one waits for the rest a little: at most
// fillShare of the time the last batch took, and never more than
// maxFillWait. The clients the last batch answered are usually about to
// send their next operations, and a commit costs much the same for 10
// operations as for 16 (on PostgreSQL a batch is two round trips and a
// WAL flush, about 2 ms), so the wait is repaid whenever they come. A
// lone client never waits: its batch is never smaller than its last.
const (
	fillShare   = 20 // the wait is at most 1/fillShare of the last batch's time
	maxFillWait = 500 * time.Microsecond
)

func (l *Ledger) commitLoop() {
	defer l.wg.Done()
	batch := make([]*request, 0, l.opts.MaxBatch)
	var last int           // the last batch's size
	var took time.Duration // and how long it took
	for {
		batch = batch[:0]
		select {
		case r := <-l.queue:
			batch = append(batch, r)
		case <-l.stop:
			// Drain what is queued, then stop.
			for {
				select {
				case r := <-l.queue:
					l.runBatch([]*request{r})
				default:
					return
				}
			}
		}
		// Let the goroutines the last batch woke queue their next
		// operations first: fuller batches, fewer commits.
		runtime.Gosched()
	fill:
		for len(batch) < l.opts.MaxBatch {
			select {
			case r := <-l.queue:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if want := min(last, l.opts.MaxBatch); len(batch) < want && took > 0 {
			timeout := l.after(min(took/fillShare, maxFillWait))
		wait:
			for len(batch) < want {
				select {
				case r := <-l.queue:
					batch = append(batch, r)
				case <-timeout:
					break wait
				}
			}
		}
		start := time.Now()
		l.runBatch(batch)
		last, took = len(batch), time.Since(start)
	}
}

// runBatch applies a batch in one transaction and hands out the results.
// A batch is synced unless every operation in it was submitted under
// DeferSync; in a synced batch, the deferred ones are answered once the
// batch is written, before its sync, if the store says when that is.
func (l *Ledger) runBatch(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ops := make([]op, len(batch))
	deferred, someDeferred := true, false
	for i, r := range batch {
		ops[i] = r.op
		deferred = deferred && r.deferSync
		someDeferred = someDeferred || r.deferSync
	}
	if deferred {
		ctx = DeferSync(ctx)
	}
	decided := func(results []result) {
		for i, r := range batch {
			if r.decided != nil {
				r.decided <- results[i] // buffered; sent once
			}
		}
	}
	// early: the deferred operations were answered once written.
	early := false
	var written func([]result)
	if !deferred && someDeferred {
		written = func(results []result) {
			if early {
				return
			}
			early = true
			for i, r := range batch {
				if r.deferSync {
					r.answer(results[i])
				}
			}
		}
	}
	results, err := l.applyOps(ctx, ops, decided, written)
	for i, r := range batch {
		if early && r.deferSync {
			continue
		}
		res := result{err: err}
		if err != nil {
			res.err = fmt.Errorf("ledger: batch of %d not committed: %w", len(batch), err)
		} else {
			res = results[i]
		}
		r.answer(res)
	}
}

// answer hands r its outcome: committed, then done.
func (r *request) answer(res result) {
	if r.committed != nil {
		r.committed(res.err)
	}
	r.done <- res
}

// applyOps applies ops in one store transaction. decided, if not nil, is
// called with the results the first time they are applied and flushed, just
// before the commit. written, if not nil, is called with the results once
// the store has written them, before it syncs them, if it writes before it
// syncs (WhenWritten).
func (l *Ledger) applyOps(ctx context.Context, ops []op, decided, written func([]result)) ([]result, error) {
	now := l.clock.Now().UTC().Truncate(time.Microsecond)
	var results []result
	if written != nil {
		ctx = WhenWritten(ctx, func() { written(results) })
	}
	// First take the batch's idempotency keys to be new, which saves a
	// lookup per key; if one was taken after all, apply the batch again,
	// looking them up (see batchState.lookupKeys).
	for _, lookupKeys := range []bool{false, true} {
		err := l.store.Update(ctx, func(tx Tx) error {
			st := newBatchState(ctx, tx, now, lookupKeys, len(ops))
			if err := st.prefetch(ops); err != nil {
				return err
			}
			results = make([]result, len(ops))
			for i, op := range ops {
				var err error
				if results[i], err = st.apply(op); err != nil {
					return err
				}
			}
			err := st.flush()
			if lookupKeys && errors.Is(err, ErrKeyTaken) {
				// Taken since it was looked up: a concurrent writer.
				err = fmt.Errorf("%w: %w", ErrConflict, err)
			}
			if err == nil && decided != nil {
				decided(results)
				decided = nil
			}
			return err
		})
		if !lookupKeys && errors.Is(err, ErrKeyTaken) {
			continue
		}
		return results, err
	}
	panic("unreachable")
}

// ---- Operations ----

// CreditResult is the outcome of Credit.
type CreditResult struct {
	// Balance is the account's balance right after the credit (for a replay:
	// right after the original credit).
	Balance Amount `json:"balance"`
	// Replayed is true when the key was seen before with the same inputs and
	// nothing changed now.
	Replayed bool `json:"replayed,omitempty"`
}

// Credit adds amount (≥ 0) to a pool, creating it if needed, or to an open
// job. key makes the credit happen at most once.
//
// Errors: ErrInvalidInput, ErrIdempotencyConflict, ErrNotFound (job),
// ErrJobClosed, ErrJobExpired, ErrAmountOverflow.
func (l *Ledger) Credit(ctx context.Context, to Ref, amount Amount, key string) (CreditResult, error) {
	if err := firstErr(to.Validate(), checkAmount("credit", amount), checkKey(key)); err != nil {
		return CreditResult{}, err
	}
	return run[CreditResult](ctx, l, &creditOp{ref: to, amount: amount, k: key})
}

// ChargeResult is the outcome of Charge.
type ChargeResult struct {
	Balance Amount `json:"balance"`
	// Charged is what the charge took: its amount.
	Charged  Amount `json:"charged"`
	Replayed bool   `json:"replayed,omitempty"`
	// Events are the further outbox events ChargeWithEvents wrote.
	Events []OutboxEvent `json:"-"`
}

// Charge posts usage of amount (≥ 0) against an open job, or against a pool
// for a legacy request that has no job. The balance may go below zero by at
// most grace (≥ 0); beyond that the charge is refused, never cut silently.
//
// Errors: ErrInvalidInput, ErrIdempotencyConflict, ErrNotFound,
// ErrJobClosed, ErrJobExpired, ErrInsufficientFunds, ErrAmountOverflow.
func (l *Ledger) Charge(ctx context.Context, from Ref, amount, grace Amount, key string) (ChargeResult, error) {
	if err := firstErr(from.Validate(), checkAmount("charge", amount), checkAmount("grace", grace), checkKey(key)); err != nil {
		return ChargeResult{}, err
	}
	return run[ChargeResult](ctx, l, &chargeOp{ref: from, amount: amount, grace: grace, k: key})
}

// OpenJobRequest describes a hold to open (or top up).
type OpenJobRequest struct {
	Job        JobKey
	Capability string
	Customer   string
	// Reserve is what the hold should hold after opening; the missing part
	// is drawn from the pool, as far as the pool's positive balance goes.
	Reserve Amount
	// Minimum is the least the hold must hold for the job to be admitted.
	Minimum Amount
	// TTL is how long the job may stay idle before the sweeper releases it
	// (0: the ledger default).
	TTL time.Duration
}

// Pool returns the key of the pool the job draws from.
func (r OpenJobRequest) Pool() PoolKey { return PoolKey{r.Job.Sender, r.Capability, r.Customer} }

// OpenJobResult is the outcome of OpenJob.
type OpenJobResult struct {
	Balance     Amount `json:"balance"`      // the job's balance now
	Drawn       Amount `json:"drawn"`        // moved from the pool by this call
	PoolBalance Amount `json:"pool_balance"` // the pool's balance now
	Created     bool   `json:"created"`      // false: the job was already open
}

// OpenJob opens a job's hold, or tops up an open one: it draws from the pool
// up to Reserve and admits the job only if the hold then covers Minimum.
// Calling it again for an open job is safe (it draws what is missing and
// refreshes the TTL).
//
// Errors: ErrInvalidInput, ErrJobMismatch, ErrJobClosed, ErrJobExpired,
// ErrInsufficientFunds (nothing changes: the job is not opened).
func (l *Ledger) OpenJob(ctx context.Context, req OpenJobRequest) (OpenJobResult, error) {
	if err := l.checkOpen(&req); err != nil {
		return OpenJobResult{}, err
	}
	return run[OpenJobResult](ctx, l, &openJobOp{req: req})
}

// checkOpen validates an OpenJobRequest and gives it the default TTL.
func (l *Ledger) checkOpen(req *OpenJobRequest) error {
	if req.TTL == 0 {
		req.TTL = l.opts.DefaultTTL
	}
	err := firstErr(req.Job.Ref().Validate(), req.Pool().Ref().Validate(),
		checkAmount("reserve", req.Reserve), checkAmount("minimum", req.Minimum))
	if err == nil && req.TTL < 0 {
		err = fmt.Errorf("%w: negative TTL %s", ErrInvalidInput, req.TTL)
	}
	return err
}

// CloseJobResult is the outcome of CloseJob and of expiry.
type CloseJobResult struct {
	State State `json:"state"`
	// Released is what went back to the pool (negative: a deficit the pool covered).
	Released    Amount `json:"released"`
	PoolBalance Amount `json:"pool_balance"`
	// Charged is what FinishJob or FinishJobUpTo charged before closing.
	Charged Amount `json:"charged"`
	// Replayed is true when the job was already final and nothing changed.
	Replayed bool `json:"replayed,omitempty"`
}

// CloseJob ends a job: no more credits or charges, and its whole balance goes
// back to its pool in the same atomic step. Closing a final job is harmless.
//
// Errors: ErrInvalidInput, ErrNotFound (including another sender's job).
func (l *Ledger) CloseJob(ctx context.Context, job JobKey) (CloseJobResult, error) {
	if err := job.Ref().Validate(); err != nil {
		return CloseJobResult{}, err
	}
	return run[CloseJobResult](ctx, l, &closeJobOp{job: job})
}

// ExpireJobs releases every open job idle past its TTL, as CloseJob would,
// marking it expired. It returns how many jobs it expired.
func (l *Ledger) ExpireJobs(ctx context.Context) (int, error) {
	const page = 256
	total := 0
	for {
		var refs []Ref
		now := l.clock.Now()
		err := l.store.View(ctx, func(tx ReadTx) (err error) {
			refs, err = tx.ExpiredJobs(ctx, now, page)
			return err
		})
		if err != nil || len(refs) == 0 {
			return total, err
		}
		var wg sync.WaitGroup
		errs := make([]error, len(refs))
		expired := make([]bool, len(refs))
		for i, r := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := l.submit(ctx, &closeJobOp{job: r.Job(), expire: true})
				if err == nil {
					expired[i] = !v.(CloseJobResult).Replayed
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		n := 0
		for _, e := range expired {
			if e {
				n++
			}
		}
		total += n
		if err := errors.Join(errs...); err != nil {
			return total, err
		}
		if len(refs) < page || n == 0 {
			return total, nil
		}
	}
}

// RunSweeper expires idle jobs until ctx ends: at once, then when the next
// open job's TTL runs out, and at least every interval (a job opened by
// another process in between is found then).
func (l *Ledger) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := l.ExpireJobs(ctx); err != nil && ctx.Err() == nil {
			l.opts.Logger.Error("ledger sweeper", "err", err)
		} else if n > 0 {
			l.opts.Logger.Info("ledger sweeper released idle jobs", "expired", n)
		}
		wait := interval
		var next time.Time
		var open bool
		err := l.store.View(ctx, func(tx ReadTx) (err error) {
			next, open, err = tx.NextExpiry(ctx)
			return err
		})
		if err == nil && open {
			if d := next.Sub(l.clock.Now()); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		t.Reset(wait)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
