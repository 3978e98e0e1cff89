// Package meter bills work done for a sender — a job today, a stream next.
// Admit opens the work's hold with the payment sent with it and a top-up
// from the sender's pool, Debit charges what has been used while it runs,
// Finish charges the rest and closes the hold, releasing what is left to
// the pool. Every move is one ledger operation, on the ledger's clock; the
// meter returns what moved as values and refuses with typed errors, which
// the HTTP handlers map (orchestrator/httperr.go).
package meter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ethsig"
	"byoc/internal/defaults"
	"byoc/internal/tick"
	"byoc/ledger"
	"byoc/pm"
	"byoc/pmledger"
	"byoc/wire"
)

// LegacyJobPrefix starts the internal job ID under which a legacy request
// (one without an id) is held: LegacyJobPrefix + its request ID. Client job
// IDs may not start with it.
const LegacyJobPrefix = "~legacy-"

// Unit is what time is billed in: whole seconds (ledger.BilledUnits).
const Unit = time.Second

// Pool is the full key of the pool that pays for work: whose credit
// (Sender), for what (Capability) and, within a sender, for whom
// (Customer: a remote signer's customer bound into the signed request,
// "" for none). It is the one place a pool or job key is built.
type Pool struct {
	Sender     common.Address
	Capability string
	Customer   string
}

// Key is the ledger's key of the pool.
func (p Pool) Key() ledger.PoolKey {
	return ledger.PoolKey{Sender: ethsig.Hex(p.Sender), Capability: p.Capability, Customer: p.Customer}
}

// Ref is the pool's account.
func (p Pool) Ref() ledger.Ref { return p.Key().Ref() }

// Job is the ledger's key of one of the sender's jobs.
func (p Pool) Job(id string) ledger.JobKey {
	return ledger.JobKey{Sender: ethsig.Hex(p.Sender), JobID: id}
}

// Ticker paces periodic debits: ticks every d until stop is called.
// WallTicker is the default; tests tick by hand.
type Ticker = tick.Ticker

// WallTicker ticks on the wall clock (time.NewTicker).
var WallTicker Ticker = tick.Wall

// Recorder is told the meter's money outcomes, for metrics.
type Recorder interface {
	// PaymentRefused: a payment of n tickets refused whole before the
	// ledger saw it (a fatal ticket error: wrong recipient, bad params...).
	PaymentRefused(n int)
	// PaymentRecorded: a payment of n tickets the ledger recorded.
	PaymentRecorded(n int, res ledger.PaymentResult)
	// Charged: what a debit or a finish took.
	Charged(ledger.Amount)
}

// Config configures a Meter.
type Config struct {
	// Ledger keeps the money, and its clock is the meter's; required.
	Ledger *ledger.Ledger
	// Receiver validates PM payments into ledger requests; required for
	// work that is paid with tickets.
	Receiver *pmledger.Receiver
	// MinCompute is how much compute a hold must cover for the work to be
	// admitted (default 60 s).
	MinCompute time.Duration
	// HoldTTLMargin is added to the work's timeout to get its hold's idle
	// TTL (default 2 min).
	HoldTTLMargin time.Duration
	// Ticker paces periodic debits (default WallTicker).
	Ticker Ticker
	// Recorder is told the money outcomes (default: nobody).
	Recorder Recorder
	// DurableJobs acknowledges a job's ledger changes only once the ledger
	// has made them durable. By default the operations that credit
	// nothing — a job's finish (its charge and close), a close, and an
	// admission that carries no tickets — are acknowledged once written
	// (ledger.DeferSync): a killed process loses nothing; a power cut may
	// lose the last few milliseconds of them: an admission lost with its
	// finish leaves no trace (the orchestrator did that work for free),
	// a finish lost alone leaves a hold that expires back to the sender's
	// pool — the orchestrator forgoes those charges, nobody pays for what
	// is not recorded. An admission that carries tickets, which credits
	// them, is always durable before anything is answered: a ticket's
	// credit can never be lost and presented again.
	DurableJobs bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Meter admits, debits and finishes billed work through the ledger.
type Meter struct {
	cfg Config
}

// New returns a Meter; zero settings take their defaults.
func New(cfg Config) (*Meter, error) {
	if cfg.Ledger == nil {
		return nil, errors.New("meter: no ledger")
	}
	defaults.Set(&cfg.MinCompute, 60*time.Second)
	defaults.Set(&cfg.HoldTTLMargin, 2*time.Minute)
	if cfg.Ticker == nil {
		cfg.Ticker = WallTicker
	}
	if cfg.Recorder == nil {
		cfg.Recorder = noRecorder{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Meter{cfg: cfg}, nil
}

// uncreditedCtx is the context of the ledger operations that credit no
// tickets (a job's finish or close, a ticketless admission): their sync
// deferred unless Config.DurableJobs.
func (m *Meter) uncreditedCtx(ctx context.Context) context.Context {
	if m.cfg.DurableJobs {
		return ctx
	}
	return ledger.DeferSync(ctx)
}

// Now is the time on the ledger's clock: the time billing goes by.
func (m *Meter) Now() time.Time { return m.cfg.Ledger.Now() }

// Ticks paces periodic debits every d (Config.Ticker).
func (m *Meter) Ticks(d time.Duration) (<-chan time.Time, func()) { return m.cfg.Ticker(d) }

// CostFor is the price of d of compute at price wei per second, with the
// ledger's one rounding rule; ledger.MaxAmount for a price so absurd that
// nothing can pay it.
func CostFor(price *big.Rat, d time.Duration) ledger.Amount {
	c, err := ledger.CostOf(price, ledger.UnitsFor(d, Unit))
	if err != nil {
		return ledger.MaxAmount
	}
	return c
}

// Request is work to admit.
type Request struct {
	Pool Pool
	// JobID is the client's job ID; "" for a legacy request, held under
	// LegacyJobPrefix + RequestID.
	JobID string
	// RequestID is unique per request: it keys the work's charges.
	RequestID string
	// Price is in wei per second; 0 is free (nothing is held or charged).
	Price *big.Rat
	// Timeout bounds the time billed (timeout_seconds) and sets the
	// reserve (Timeout, and at least MinCompute, at Price).
	Timeout time.Duration
	// Payment is what came with the request (nil or without tickets: none).
	Payment *wire.Payment
	// Log is where the work's troubles are logged (default: the meter's
	// logger, with the job and sender).
	Log *slog.Logger
	// TTL is the hold's idle lifetime (0: Timeout + HoldTTLMargin). A
	// stream's hold is kept alive by its charges, not by its timeout.
	TTL time.Duration
}

// Admission is what an admission moved.
type Admission struct {
	// Paid is set when the request's tickets have a final outcome:
	// Credited is what they credited (0 when the payment was refused whole).
	Paid     bool
	Credited ledger.Amount
	// Pending is set when the admission is decided but not yet durable: the
	// work may start, but nothing may be answered before Job.Confirm.
	Pending bool
	// Held is what the hold holds; PoolBalance the pool after the
	// admission; Released what went back to the pool from a job refused
	// after its payment credited it.
	Held, PoolBalance, Released ledger.Amount
}

// Job is one admitted piece of work. Its methods are for the one goroutine
// that runs the work.
type Job struct {
	m       *Meter
	req     Request
	log     *slog.Logger
	key     ledger.JobKey
	account ledger.Ref     // the hold once admitted, else the pool
	hold    *ledger.JobKey // open, to be closed by Finish or Close
	v       *pm.Validation
	pay     *ledger.PaymentRequest
	confirm func(context.Context) (ledger.AdmitResult, error) // while Pending
	final   Admission                                         // once confirmed
	began   time.Time
	units   int64         // billing units charged so far
	charged ledger.Amount // what the ledger took for them
}

// Free reports whether the work costs nothing: no hold, no charges.
func (j *Job) Free() bool { return j.req.Price.Sign() == 0 }

// Admit opens the work's hold with the payment sent with it and a top-up
// from the pool, in one ledger step (ledger.AdmitDecided). A legacy request
// (no JobID) is held the same way, under an internal job ID, so concurrent
// legacy requests cannot spend the pool twice. When Admission.Pending is
// set the work may start at once, but must be confirmed (Job.Confirm)
// before anything is answered. On a refusal (an *Error) the Admission
// still says what the payment credited; that stays the sender's, in its
// pool, and no hold is left open.
func (m *Meter) Admit(ctx context.Context, req Request) (*Job, Admission, error) {
	j := &Job{m: m, req: req, account: req.Pool.Ref(), key: req.Pool.Job(req.JobID)}
	if j.key.JobID == "" {
		j.key.JobID = LegacyJobPrefix + req.RequestID
	}
	if j.log = req.Log; j.log == nil {
		j.log = m.cfg.Logger.With("job_id", j.key.JobID, "sender", j.key.Sender)
	}
	if j.Free() {
		return j, Admission{}, nil
	}
	if req.Payment != nil && len(req.Payment.TicketSenderParams) > 0 {
		if m.cfg.Receiver == nil {
			return nil, Admission{Paid: true}, j.refuse("admit", ErrInvalidPayment, errors.New("this meter takes no tickets"))
		}
		v, pay, err := m.cfg.Receiver.Prepare(ctx, req.Payment, req.Price, j.account)
		if err != nil {
			if pm.IsFatal(err) {
				m.cfg.Recorder.PaymentRefused(len(req.Payment.TicketSenderParams))
			}
			return nil, Admission{Paid: true}, j.refuse("admit", ErrInvalidPayment, err)
		}
		j.v, j.pay = v, pay
	}
	actx := ctx
	if j.pay == nil {
		// Credits nothing: its sync is deferred, as a finish's is.
		actx = m.uncreditedCtx(ctx)
	}
	res, confirm, err := m.cfg.Ledger.AdmitDecided(actx, ledger.AdmitRequest{Payment: j.pay, OpenJobRequest: ledger.OpenJobRequest{
		Job: j.key, Capability: req.Pool.Capability, Customer: req.Pool.Customer,
		Reserve: CostFor(req.Price, max(req.Timeout, m.cfg.MinCompute)), Minimum: CostFor(req.Price, m.cfg.MinCompute),
		TTL: cmp.Or(req.TTL, req.Timeout+m.cfg.HoldTTLMargin)}})
	// The tickets' outcome comes from the ledger's verdicts on their nonces.
	if err == nil && res.Admitted && (j.v == nil || pmledger.Settle(j.v, res.Payment) == nil && j.v.Err() == nil) {
		// Admitted once its commit (an fsync) is done: the work may start
		// meanwhile; nothing is answered before Confirm.
		j.hold, j.account, j.confirm = &j.key, j.key.Ref(), confirm
		return j, Admission{Pending: true, Held: res.Job.Balance, PoolBalance: res.Job.PoolBalance}, nil
	}
	if err == nil {
		res, err = confirm(ctx) // nothing to start early: the final word
	}
	a, err := j.admitted(ctx, res, err)
	if err != nil {
		return nil, a, err
	}
	return j, a, nil
}

// Confirm waits for an admission decided ahead of its commit to be
// durable and returns its final outcome; an error means the work must not
// be answered (the commit failed, or a replica's conflict changed the
// outcome): its output is dropped. Confirming an admission that is final
// already returns it again, without error.
func (j *Job) Confirm(ctx context.Context) (Admission, error) {
	if j.confirm == nil {
		return j.final, nil
	}
	confirm := j.confirm
	j.confirm = nil
	res, err := confirm(ctx)
	return j.admitted(ctx, res, err)
}

// admitted settles an admission once it is final (durable, or refused).
func (j *Job) admitted(ctx context.Context, res ledger.AdmitResult, err error) (Admission, error) {
	var a Admission
	switch {
	case err == nil && j.pay != nil:
		a.Paid, a.Credited = true, res.Payment.Credited
	case j.pay != nil && ledger.IsJobIDRefused(err):
		a.Paid = true // refused: nothing of the op happened
	}
	j.hold, j.account = nil, j.req.Pool.Ref()
	switch {
	case errors.Is(err, ledger.ErrJobExists):
		return a, j.refuse("admit", ErrJobRunning, err)
	case ledger.IsJobIDRefused(err):
		return a, j.refuse("admit", ErrJobIDUsed, err)
	case err != nil:
		j.log.Error("admit", "err", err)
		return a, j.refuse("admit", ErrLedger, err)
	}
	a.Held, a.PoolBalance, a.Released = res.Job.Balance, res.Job.PoolBalance, res.Released
	if res.Admitted {
		j.hold, j.account = &j.key, j.key.Ref()
	}
	if j.v != nil {
		// Settled again: the final outcome may differ from the decided one.
		if serr := pmledger.Settle(j.v, res.Payment); serr != nil {
			j.log.Error("admit", "err", serr)
			j.Close(context.WithoutCancel(ctx))
			return a, j.refuse("admit", ErrLedger, serr)
		}
		j.m.cfg.Recorder.PaymentRecorded(len(j.v.Tickets), res.Payment)
		if verr := j.v.Err(); verr != nil {
			// A bad ticket after valid ones: those stay credited, the
			// work does not run.
			j.Close(context.WithoutCancel(ctx))
			return a, j.refuse("admit", ErrInvalidPayment, verr)
		}
	}
	if !res.Admitted {
		return a, j.refuse("admit", ErrInsufficientBalance, nil)
	}
	j.final = a
	return a, nil
}

// Start marks the work as started (given to the worker): the time billed
// runs from here, on the ledger's clock.
func (j *Job) Start() { j.began = j.m.Now() }

// Charge is what a debit moved.
type Charge struct {
	// Charged is what this debit took; Total all the work was charged.
	Charged, Total ledger.Amount
}

// billedUnits is how many seconds work that ran until at pays for, in
// all: ledger.BilledUnits, the one billing rule (whole seconds rounded up,
// at least one, never more than the timeout).
func (j *Job) billedUnits(at time.Time) int64 {
	return ledger.BilledUnits(at.Sub(j.began), j.req.Timeout, Unit)
}

// Debit charges the work so that, in all, it has paid for the time from
// Start up to at. A debit the hold cannot cover is refused with
// ErrInsufficientBalance (the caller stops the work): a hold never goes
// below zero. A debit up to a time already paid for charges nothing.
func (j *Job) Debit(ctx context.Context, at time.Time) (Charge, error) {
	if j.Free() {
		return Charge{}, nil
	}
	units := j.billedUnits(at) - j.units
	if units <= 0 {
		return Charge{Total: j.charged}, nil
	}
	cost, err := ledger.CostOf(j.req.Price, units)
	if err != nil {
		return Charge{Total: j.charged}, j.fail("debit", err)
	}
	if err := j.debit(ctx, cost, j.units+units); err != nil {
		return Charge{Total: j.charged}, err
	}
	j.units += units
	return Charge{Charged: cost, Total: j.charged}, nil
}

// DebitAmount charges the work so that, in all, it has paid total: for
// work priced by what it produced rather than by time. A job is debited by
// time or by amount, not both. The same refusals as Debit.
func (j *Job) DebitAmount(ctx context.Context, total ledger.Amount) (Charge, error) {
	if j.Free() || total.Cmp(j.charged) <= 0 {
		return Charge{Total: j.charged}, nil
	}
	cost := total.Sub(j.charged)
	if err := j.debit(ctx, cost, -1); err != nil {
		return Charge{Total: j.charged}, err
	}
	return Charge{Charged: cost, Total: j.charged}, nil
}

// debit charges cost to the work's account under the key of the units
// (or, below 0, of the total) it brings the work to.
func (j *Job) debit(ctx context.Context, cost ledger.Amount, units int64) error {
	key := j.chargeKey(units)
	if units < 0 {
		key = fmt.Sprintf("charge:%s:%s", j.req.RequestID, j.charged.Add(cost))
	}
	if _, err := j.m.cfg.Ledger.Charge(ctx, j.account, cost, ledger.Amount{}, key); err != nil {
		if errors.Is(err, ledger.ErrInsufficientFunds) {
			return j.refuse("debit", ErrInsufficientBalance, err)
		}
		j.log.Error("charge for compute", "cost", cost, "err", err)
		return j.fail("debit", err)
	}
	j.charged = j.charged.Add(cost)
	j.m.cfg.Recorder.Charged(cost)
	return nil
}

// chargeKey is the idempotency key of the charge that brings the work to
// units billed.
func (j *Job) chargeKey(units int64) string {
	return fmt.Sprintf("compute:%s:%d", j.req.RequestID, units)
}

// Final is what finishing moved.
type Final struct {
	// PoolBalance is the pool after the work: what the sender has left.
	PoolBalance ledger.Amount
	// Released is what went back from the hold to the pool.
	Released ledger.Amount
	// Charged is what the finish took; Total all the work was charged
	// (Livepeer-Job-Charged), which a hold that ran dry keeps below the
	// price of the time used.
	Charged, Total ledger.Amount
}

// Finish ends the work's money side: it charges the time up to at not
// charged yet, but never more than the hold holds, and closes the hold,
// releasing the rest to the pool, in one ledger step. On an error the
// hold stays open and the sweeper releases it after its TTL; Final.Total
// still says what was charged before.
func (j *Job) Finish(ctx context.Context, at time.Time) (Final, error) {
	if j.Free() {
		return Final{}, nil
	}
	return j.finish(ctx, max(j.billedUnits(at)-j.units, 0))
}

// FinishUnused is Finish charging nothing more: the work was not done
// (the worker never got it) or could not be paid for.
func (j *Job) FinishUnused(ctx context.Context) (Final, error) {
	if j.Free() {
		return Final{}, nil
	}
	return j.finish(ctx, 0)
}

func (j *Job) finish(ctx context.Context, units int64) (Final, error) {
	cost, err := ledger.CostOf(j.req.Price, units)
	if err != nil {
		cost, units = ledger.Amount{}, 0
	}
	l := j.m.cfg.Ledger
	var f Final
	if j.hold != nil {
		res, err := l.FinishJobUpTo(j.m.uncreditedCtx(ctx), *j.hold, cost, j.chargeKey(j.units+units))
		if err != nil {
			j.log.Error("finish job; the sweeper will release its hold", "err", err)
			return Final{Total: j.charged}, j.fail("finish", err)
		}
		j.hold = nil
		f.PoolBalance, f.Released, f.Charged = res.PoolBalance, res.Released, res.Charged
	} else if f.PoolBalance, err = l.Balance(ctx, j.account); err != nil {
		// No hold (already closed): nothing may be charged, only the
		// balance is reported.
		return Final{Total: j.charged}, j.fail("finish", err)
	}
	if f.Charged.Cmp(cost) < 0 {
		j.log.Warn("the hold did not cover the compute used; charged what it held", "units", units, "cost", cost, "charged", f.Charged)
	}
	j.units += units
	j.charged = j.charged.Add(f.Charged)
	j.m.cfg.Recorder.Charged(f.Charged)
	f.Total = j.charged
	return f, nil
}

// Close closes a hold still open — work that ended without Finish —
// releasing all of it to the pool. It does nothing once the work is
// finished; a failure is logged (the sweeper releases the hold after its
// TTL).
func (j *Job) Close(ctx context.Context) {
	if j == nil || j.hold == nil {
		return
	}
	if _, err := j.m.cfg.Ledger.CloseJob(j.m.uncreditedCtx(ctx), *j.hold); err != nil {
		j.log.Error("close hold; the sweeper will release it", "err", err)
		return
	}
	j.hold = nil
}

// Balance is what the work's account holds now: its hold once admitted,
// else its pool.
func (j *Job) Balance(ctx context.Context) (ledger.Amount, error) {
	if j.Free() {
		return ledger.Amount{}, nil
	}
	return j.m.cfg.Ledger.Balance(ctx, j.account)
}

// Total is all the work was charged so far.
func (j *Job) Total() ledger.Amount { return j.charged }

type noRecorder struct{}

func (noRecorder) PaymentRefused(int)                        {}
func (noRecorder) PaymentRecorded(int, ledger.PaymentResult) {}
func (noRecorder) Charged(ledger.Amount)                     {}
