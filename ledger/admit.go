package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Admit and FinishJob do in one transaction what a node does around a job,
// so that a job costs two durable commits instead of five: admission (open
// the hold, credit the payment that came with the job, top up from the
// pool, check the minimum) and the end (charge what was used, close).

// AdmitRequest is a job to admit: its hold (OpenJobRequest: Reserve is what
// the hold should reach, Minimum what it must reach) and the payment sent
// with it (Payment.To is ignored: the payment credits the job).
type AdmitRequest struct {
	OpenJobRequest
	Payment *PaymentRequest
}

// AdmitResult is the outcome of Admit.
type AdmitResult struct {
	// Admitted is false when the hold could not reach Minimum. If the
	// payment credited something (or queued a winning ticket), the job was
	// then closed in the same step, the payment staying in the pool, and
	// its ID is used. Otherwise nothing was written (Job.Created is false,
	// Job.PoolBalance is the pool as it stands): the job ID is still
	// unused, and the payment's nonces were not recorded.
	Admitted bool          `json:"admitted"`
	Job      OpenJobResult `json:"job"`
	Payment  PaymentResult `json:"payment"`
	// Released is what went back to the pool when the job was not admitted.
	Released Amount `json:"released"`
}

// ErrJobExists is returned by Admit for a job that is already open: its ID
// is in use by a running job of the same sender.
var ErrJobExists = errors.New("ledger: job already open")

// IsJobIDRefused reports whether err refuses a job ID that is running or
// was used before (ErrJobExists, ErrJobClosed, ErrJobExpired,
// ErrJobMismatch): nothing of the operation happened.
func IsJobIDRefused(err error) bool {
	return errors.Is(err, ErrJobExists) || errors.Is(err, ErrJobClosed) || errors.Is(err, ErrJobExpired) || errors.Is(err, ErrJobMismatch)
}

// Admit opens a new job's hold, credits the job's payment to it, draws from
// the pool up to Reserve and admits the job if the hold covers Minimum;
// otherwise it closes the job at once, so the payment is kept in the pool,
// or, when the payment moved no money, writes nothing at all (a refusal
// that moves no money leaves no durable trace). All of it is one atomic
// step.
//
// Errors (nothing changes): ErrInvalidInput, ErrJobExists, ErrJobMismatch,
// ErrJobClosed, ErrJobExpired, the payment's errors (see ReceivePayment),
// ErrAmountOverflow.
func (l *Ledger) Admit(ctx context.Context, req AdmitRequest) (AdmitResult, error) {
	req, err := l.checkAdmit(req)
	if err != nil {
		return AdmitResult{}, err
	}
	return run[AdmitResult](ctx, l, &admitOp{req: req})
}

// checkAdmit validates req and points its payment at the job.
func (l *Ledger) checkAdmit(req AdmitRequest) (AdmitRequest, error) {
	err := l.checkOpen(&req.OpenJobRequest)
	if err == nil && req.Payment != nil {
		p := *req.Payment
		p.To = req.Job.Ref()
		req.Payment = &p
		err = checkPayment(p)
	}
	return req, err
}

// AdmitDecided is Admit for a caller that may start work before the
// admission is durable. It returns as soon as the batch holding the
// admission has applied it, just before that batch's commit (an fsync
// away), with decided: Admit's outcome, if the commit succeeds. confirm
// waits for the commit and returns the final outcome: decided, unless the
// commit failed (an error: nothing of the admission happened) or the store
// ran the batch again (PostgreSQL, after a conflict with another replica).
//
// Nothing may leave the process on the strength of decided alone: the
// caller acts on it only in ways it can take back (start a worker, read its
// answer) and answers — or reports any figure — only after confirm, which
// may be called more than once. An admission refused when applied (an
// error) is returned only once final, as Admit does.
func (l *Ledger) AdmitDecided(ctx context.Context, req AdmitRequest) (decided AdmitResult, confirm func(context.Context) (AdmitResult, error), err error) {
	if req, err = l.checkAdmit(req); err != nil {
		return AdmitResult{}, nil, err
	}
	r := &request{op: &admitOp{req: req}, done: make(chan result, 1), decided: make(chan result, 1)}
	if err := l.enqueue(ctx, r); err != nil {
		return AdmitResult{}, nil, err
	}
	var got struct {
		sync.Mutex
		ok  bool
		res result
	}
	confirm = func(ctx context.Context) (AdmitResult, error) {
		got.Lock()
		defer got.Unlock()
		if !got.ok {
			select {
			case got.res = <-r.done:
				got.ok = true
			case <-ctx.Done():
				return AdmitResult{}, ctx.Err()
			}
		}
		if got.res.err != nil {
			return AdmitResult{}, got.res.err
		}
		return got.res.val.(AdmitResult), nil
	}
	final := func(res AdmitResult, err error) (AdmitResult, func(context.Context) (AdmitResult, error), error) {
		if err != nil {
			return AdmitResult{}, nil, err
		}
		return res, func(context.Context) (AdmitResult, error) { return res, nil }, nil
	}
	select {
	case d := <-r.decided:
		if d.err == nil {
			return d.val.(AdmitResult), confirm, nil
		}
		return final(confirm(ctx)) // refused: only the final word counts
	case res := <-r.done:
		// Committed (or failed) by the time we looked. If it was applied
		// first, that still comes as decided, and confirm tells the rest.
		got.res, got.ok = res, true
		select {
		case d := <-r.decided:
			if d.err == nil {
				return d.val.(AdmitResult), confirm, nil
			}
		default:
		}
		return final(confirm(ctx))
	case <-ctx.Done():
		return AdmitResult{}, nil, ctx.Err()
	}
}

type admitOp struct {
	req AdmitRequest
}

func (a *admitOp) refs() []Ref { return []Ref{a.req.Job.Ref(), a.req.Pool().Ref()} }
func (a *admitOp) key() string { return "" }
func (a *admitOp) nonceQuery() (NonceQuery, bool) {
	if a.req.Payment == nil {
		return NonceQuery{}, false
	}
	return (&paymentOp{req: *a.req.Payment}).nonceQuery()
}

func (a *admitOp) apply(o *opCtx) (any, error) {
	var res AdmitResult
	open := a.req.OpenJobRequest
	open.Reserve, open.Minimum = Amount{}, Amount{}
	v, err := (&openJobOp{req: open}).apply(o)
	if err != nil {
		return nil, err
	}
	if !v.(OpenJobResult).Created {
		return nil, fmt.Errorf("%w: %s", ErrJobExists, a.req.Job.Ref())
	}
	if a.req.Payment != nil {
		pv, err := (&paymentOp{req: *a.req.Payment}).apply(o)
		if err != nil {
			return nil, err
		}
		res.Payment = pv.(PaymentResult)
	}
	open.Reserve = a.req.Reserve
	v, err = (&openJobOp{req: open}).apply(o)
	if err != nil {
		return nil, err
	}
	res.Job = v.(OpenJobResult)
	res.Job.Created = true
	if res.Job.Balance.Cmp(a.req.Minimum) >= 0 {
		res.Admitted = true
		return res, nil
	}
	if res.Payment.Credited.IsZero() && res.Payment.Winners == 0 {
		// Refused, and the payment moved no money: what the op did nets
		// to nothing (the draw would go straight back), so it writes
		// nothing — no pool, no job, no ticket nonces — and the job ID
		// stays unused. A flood of refusals leaves no trace.
		pool := o.account(a.req.Pool().Ref())
		bal := pool.Balance.Add(res.Job.Drawn) // before the draw
		o.discard()
		res.Job = OpenJobResult{PoolBalance: bal}
		return res, nil
	}
	cv, err := (&closeJobOp{job: a.req.Job}).apply(o)
	if err != nil {
		return nil, err
	}
	c := cv.(CloseJobResult)
	res.Released, res.Job.PoolBalance = c.Released, c.PoolBalance
	return res, nil
}

// FinishJob charges a job for what it used (amount ≥ 0, under key; the
// hold may go below zero by at most grace) and closes it, releasing the rest
// to the pool, in one atomic step. Finishing a job that is already final is
// harmless when amount is 0 (Replayed).
//
// Errors (nothing changes): ErrInvalidInput, ErrIdempotencyConflict,
// ErrNotFound, ErrJobClosed (amount > 0 on a final job), ErrJobExpired,
// ErrInsufficientFunds, ErrAmountOverflow.
func (l *Ledger) FinishJob(ctx context.Context, job JobKey, amount, grace Amount, key string) (CloseJobResult, error) {
	return l.finish(ctx, job, chargeOp{ref: job.Ref(), amount: amount, grace: grace, k: key}, nil)
}

// FinishJobUpTo is FinishJob that never overdraws the hold: it charges
// amount or, if the hold holds less, its balance (nothing when that is not
// positive), and closes the job, in one atomic step. CloseJobResult.Charged says what it
// charged. A retry under the same key answers what the first call charged.
//
// Errors (nothing changes): ErrInvalidInput, ErrIdempotencyConflict,
// ErrNotFound, ErrJobClosed (amount > 0 on a final job), ErrJobExpired.
func (l *Ledger) FinishJobUpTo(ctx context.Context, job JobKey, amount Amount, key string) (CloseJobResult, error) {
	return l.finish(ctx, job, chargeOp{ref: job.Ref(), amount: amount, k: key, upTo: true}, nil)
}

// FinishPendingJob is FinishJob for a hold reserved in memory
// (Pending.Reserve, h) and opened in the ledger: the committer ends h
// (PendingHold.End) once the write has committed, so h's pool is read from
// the ledger again only when the write is there. If the write fails —
// refused, not committed, or never queued — h is ended all the same and
// its pool is read again when quiet (Pending.Stale): the hold stays open
// in the ledger until it expires. h is ended even when ctx ends first.
func (l *Ledger) FinishPendingJob(ctx context.Context, h *PendingHold, job JobKey, amount, grace Amount, key string) (CloseJobResult, error) {
	return l.finish(ctx, job, chargeOp{ref: job.Ref(), amount: amount, grace: grace, k: key}, h)
}

// finish checks and runs a finishOp: charge (none when its amount is 0),
// then close; h, if not nil, is ended with the write's outcome.
func (l *Ledger) finish(ctx context.Context, job JobKey, charge chargeOp, h *PendingHold) (CloseJobResult, error) {
	ended := h.written
	err := firstErr(job.Ref().Validate(), checkAmount("charge", charge.amount), checkAmount("grace", charge.grace))
	if err == nil && !charge.amount.IsZero() {
		err = checkKey(charge.k)
	}
	if err != nil {
		ended(err)
		return CloseJobResult{}, err
	}
	op := &finishOp{close: closeJobOp{job: job}}
	if !charge.amount.IsZero() {
		op.charge = &charge
	}
	return l.runEnding(ctx, op, h)
}

// runEnding runs op, which ends a job; h, if not nil, is ended with the
// write's outcome (also when op is never queued).
func (l *Ledger) runEnding(ctx context.Context, o op, h *PendingHold) (CloseJobResult, error) {
	ended := h.written
	r := &request{op: o, done: make(chan result, 1)}
	if h != nil {
		r.committed = ended
	}
	if err := l.enqueue(ctx, r); err != nil {
		ended(err)
		return CloseJobResult{}, err
	}
	v, err := r.wait(ctx)
	if err != nil {
		return CloseJobResult{}, err
	}
	return v.(CloseJobResult), nil
}

type finishOp struct {
	charge *chargeOp
	close  closeJobOp
}

func (f *finishOp) refs() []Ref { return f.close.refs() }
func (f *finishOp) key() string {
	if f.charge == nil {
		return ""
	}
	return f.charge.k
}

func (f *finishOp) apply(o *opCtx) (any, error) {
	var charged Amount
	if f.charge != nil {
		v, err := f.charge.apply(o)
		if err != nil {
			return nil, err
		}
		charged = v.(ChargeResult).Charged
	}
	v, err := f.close.apply(o)
	if err != nil {
		return nil, err
	}
	res := v.(CloseJobResult)
	res.Charged = charged
	return res, nil
}

// OpenFinishPendingJob is OpenJob then FinishPendingJob in one atomic
// step, for a hold reserved in memory (Pending.Reserve, h) whose work sent
// no payment: nothing was paid to it, so it need not be in the ledger
// while the work runs — Pending already keeps its draw from being counted
// twice, and a hold a crash left open would only expire and release
// everything, as if never opened. It opens the job (req: Reserve is what
// it draws, Minimum is ignored), charges amount under key (the hold may
// go below zero by at most grace) and closes it, writing the same
// accounts and entries as OpenJob and FinishJob would; h is ended as
// FinishPendingJob ends it. A retry under the same key, once the first
// has committed, answers what it charged (Replayed); with amount 0 there
// is no key, and a retry finds the job closed (ErrJobClosed).
//
// Errors (nothing changes): ErrInvalidInput, ErrIdempotencyConflict,
// ErrJobExists (the job is open already), ErrJobMismatch, ErrJobClosed,
// ErrJobExpired, ErrInsufficientFunds, ErrAmountOverflow.
func (l *Ledger) OpenFinishPendingJob(ctx context.Context, h *PendingHold, req OpenJobRequest, amount, grace Amount, key string) (CloseJobResult, error) {
	ended := h.written
	req.Minimum = Amount{}
	err := firstErr(l.checkOpen(&req), checkAmount("charge", amount), checkAmount("grace", grace))
	if err == nil && !amount.IsZero() {
		err = checkKey(key)
	}
	if err != nil {
		ended(err)
		return CloseJobResult{}, err
	}
	op := &openFinishOp{open: openJobOp{req: req}, finish: finishOp{close: closeJobOp{job: req.Job}}}
	if !amount.IsZero() {
		op.finish.charge = &chargeOp{ref: req.Job.Ref(), amount: amount, grace: grace, k: key}
	}
	return l.runEnding(ctx, op, h)
}

type openFinishOp struct {
	open   openJobOp
	finish finishOp
}

func (f *openFinishOp) refs() []Ref { return f.open.refs() }
func (f *openFinishOp) key() string { return f.finish.key() }

func (f *openFinishOp) apply(o *opCtx) (any, error) {
	if c := f.finish.charge; c != nil {
		// A retry of one that committed: the charge answers it (and the
		// close finds the job final), before the open would refuse the ID.
		if e, err := o.replayed(c.k, c.hash()); err != nil {
			return nil, err
		} else if e != nil {
			return f.finish.apply(o)
		}
	}
	v, err := f.open.apply(o)
	if err != nil {
		return nil, err
	}
	if !v.(OpenJobResult).Created {
		return nil, fmt.Errorf("%w: %s", ErrJobExists, f.open.req.Job.Ref())
	}
	return f.finish.apply(o)
}
