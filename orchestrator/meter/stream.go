package meter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"byoc/ledger"
	"byoc/pm"
	"byoc/pmledger"
	"byoc/wire"
)

// ErrStreamClosed: the stream's hold was finished (the stream stopped);
// nothing more is charged or credited to it.
var ErrStreamClosed = errors.New("stream closed")

// Stream is the money side of one stream: one hold, whose job ID is the
// stream's ID, opened at start (OpenStream), charged by elapsed whole
// seconds since the start at the price pinned then, topped up by payments
// (Pay) and finished at stop (Finish). Billing is lazy: what the stream
// owes is computed when read (Owed) and committed by Settle, Pay and
// Finish; nothing runs per stream between them. Its methods may be called
// from any goroutine; they are serialized.
type Stream struct {
	mu     sync.Mutex
	j      *Job
	closed bool
	dry    time.Time // when a settlement could not be charged; zero otherwise
	// unsure is a charge whose outcome is not known (the ledger failed,
	// or the caller gave up, after it may have committed): it is sent
	// again, with the same key and amount, before anything else is
	// charged, so it counts once whatever happened.
	unsure *charge
}

// charge is one charge of a stream: cost, bringing it to units.
type charge struct {
	units int64
	cost  ledger.Amount
}

// resolve sends an unsure charge again: the ledger applies it, or answers
// with its first outcome (same key). ErrInsufficientBalance means it never
// happened.
func (s *Stream) resolve(ctx context.Context) error {
	if s.unsure == nil {
		return nil
	}
	c := s.unsure
	err := s.j.debit(ctx, c.cost, c.units)
	switch {
	case err == nil:
		s.j.units = c.units
	case !errors.Is(err, ErrInsufficientBalance):
		return err // still unsure
	}
	s.unsure = nil
	return nil
}

// OpenStream admits a stream as a job is admitted (Admit: the hold opens
// with the start payment and a reservation from the pool, and must cover
// MinCompute), waits for the admission to be durable, and starts billing:
// elapsed time counts from now, on the ledger's clock. req.JobID is the
// stream's ID and req.TTL the hold's idle lifetime, which every charge
// restarts.
func (m *Meter) OpenStream(ctx context.Context, req Request) (*Stream, Admission, error) {
	j, a, err := m.Admit(ctx, req)
	if err != nil {
		return nil, a, err
	}
	if a, err = j.Confirm(ctx); err != nil {
		return nil, a, err
	}
	j.Start()
	return &Stream{j: j}, a, nil
}

// Hold is the stream's account in the ledger (its pool when it is free).
func (s *Stream) Hold() ledger.Ref { return s.j.account }

// Free reports whether the stream costs nothing.
func (s *Stream) Free() bool { return s.j.Free() }

// owed is what the stream owes at at beyond what it was charged, and the
// whole seconds that is for: ledger.UnitsFor of the time since its start
// (the one rounding rule) less the units charged.
func (s *Stream) owed(at time.Time) (ledger.Amount, int64) {
	if s.j.Free() || s.closed {
		return ledger.Amount{}, 0
	}
	units := ledger.UnitsFor(at.Sub(s.j.began), Unit) - s.j.units
	if units <= 0 {
		return ledger.Amount{}, 0
	}
	c, err := ledger.CostOf(s.j.req.Price, units)
	if err != nil {
		return ledger.MaxAmount, units
	}
	return c, units
}

// Owed is what the stream owes at at and has not been charged yet.
func (s *Stream) Owed(at time.Time) ledger.Amount {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _ := s.owed(at)
	return c
}

// DrySince is when a settlement of the stream last failed for want of
// money (zero when the last one succeeded).
func (s *Stream) DrySince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dry
}

// Settle charges what the stream owes at at. When the hold cannot cover
// it, nothing is charged, the stream is dry from at (DrySince) and the
// error is ErrInsufficientBalance; the time stays owed. A finished stream
// is ErrStreamClosed: no debit after release.
func (s *Stream) Settle(ctx context.Context, at time.Time) (Charge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settle(ctx, at)
}

func (s *Stream) settle(ctx context.Context, at time.Time) (Charge, error) {
	if s.closed {
		return Charge{Total: s.j.charged}, s.j.refuse("settle", ErrStreamClosed, nil)
	}
	before := s.j.charged
	if err := s.resolve(ctx); err != nil {
		return Charge{Total: s.j.charged}, err
	}
	cost, units := s.owed(at)
	if units == 0 {
		return Charge{Charged: s.j.charged.Sub(before), Total: s.j.charged}, nil
	}
	if err := s.j.debit(ctx, cost, s.j.units+units); err != nil {
		switch {
		case errors.Is(err, ErrInsufficientBalance):
			if s.dry.IsZero() {
				s.dry = at
			}
		case errors.Is(err, ledger.ErrJobClosed) || errors.Is(err, ledger.ErrJobExpired):
			s.closed = true // expired under us (the sweeper): nothing more moves
			return Charge{Total: s.j.charged}, s.j.refuse("settle", ErrStreamClosed, err)
		default:
			s.unsure = &charge{units: s.j.units + units, cost: cost}
		}
		return Charge{Total: s.j.charged}, err
	}
	s.j.units += units
	s.dry = time.Time{}
	return Charge{Charged: s.j.charged.Sub(before), Total: s.j.charged}, nil
}

// Paid is what a stream payment did.
type Paid struct {
	// Credited is what the payment's tickets credited to the hold.
	Credited ledger.Amount
	// Charge is the settlement that followed it.
	Charge Charge
	// Balance is the hold after both, less what is still owed (negative
	// when the stream owes more than it holds).
	Balance ledger.Amount
}

// Pay credits a payment to the stream's hold (each ticket once, by its
// key) and then settles at at. Refusals: ErrInvalidPayment (a fatal ticket
// error credits nothing; a bad ticket after good ones leaves those
// credited), ErrStreamClosed, ErrInsufficientBalance (credited, but the
// stream still owes more than it holds), ErrLedger.
func (s *Stream) Pay(ctx context.Context, p *wire.Payment, at time.Time) (Paid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Paid
	if s.closed {
		return out, s.j.refuse("pay", ErrStreamClosed, nil)
	}
	var verr error
	if p != nil && len(p.TicketSenderParams) > 0 {
		m := s.j.m
		if m.cfg.Receiver == nil {
			return out, s.j.refuse("pay", ErrInvalidPayment, errors.New("this meter takes no tickets"))
		}
		v, req, err := m.cfg.Receiver.Prepare(ctx, p, s.j.req.Price, s.j.account)
		if err != nil {
			if pm.IsFatal(err) {
				m.cfg.Recorder.PaymentRefused(len(p.TicketSenderParams))
			}
			return out, s.j.refuse("pay", ErrInvalidPayment, err)
		}
		if req != nil {
			res, err := m.cfg.Ledger.ReceivePayment(ctx, *req)
			switch {
			case errors.Is(err, ledger.ErrJobClosed) || errors.Is(err, ledger.ErrJobExpired):
				s.closed = true // expired under us: nothing more moves
				return out, s.j.refuse("pay", ErrStreamClosed, err)
			case err != nil:
				return out, s.j.fail("pay", err)
			}
			// The tickets' outcome comes from the ledger's verdicts on their nonces.
			if serr := pmledger.Settle(v, res); serr != nil {
				return out, s.j.fail("pay", serr)
			}
			m.cfg.Recorder.PaymentRecorded(len(v.Tickets), res)
			out.Credited = res.Credited
		}
		if v != nil {
			verr = v.Err()
		}
	}
	var err error
	out.Charge, err = s.settle(ctx, at)
	if bal, berr := s.balance(ctx, at); berr == nil {
		out.Balance = bal
	} else if err == nil {
		err = s.j.fail("pay", berr)
	}
	if verr != nil {
		return out, s.j.refuse("pay", ErrInvalidPayment, verr)
	}
	return out, err
}

// balance is the hold less what is owed at at.
func (s *Stream) balance(ctx context.Context, at time.Time) (ledger.Amount, error) {
	if s.j.Free() {
		return ledger.Amount{}, nil
	}
	held, err := s.j.m.cfg.Ledger.Balance(ctx, s.j.account)
	if err != nil {
		return ledger.Amount{}, err
	}
	owed, _ := s.owed(at)
	return held.Sub(owed), nil
}

// Balance is what the stream has left at at: its hold less what it owes
// (negative when it owes more than it holds).
func (s *Stream) Balance(ctx context.Context, at time.Time) (ledger.Amount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.balance(ctx, at)
}

// Finish ends the stream's money side, once: it charges what is owed at
// at, never more than the hold holds, and closes the hold, releasing the
// rest to the pool, in one ledger step whose charge key names reason (why
// the stream ended, for the statement). From its first call nothing more
// is charged or credited (no debit after release). On a ledger error the
// hold stays open and the sweeper releases it after its TTL.
func (s *Stream) Finish(ctx context.Context, at time.Time, reason string) (Final, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.j
	if s.closed || j.Free() {
		s.closed = true
		return Final{Total: j.charged}, nil
	}
	if err := s.resolve(ctx); err != nil {
		j.log.Warn("an earlier charge of the stream is still unsure; finishing without it", "err", err)
		s.unsure = nil
	}
	cost, units := s.owed(at)
	s.closed = true
	if j.hold == nil {
		return Final{Total: j.charged}, nil
	}
	key := fmt.Sprintf("stream-end:%s:%s:%d", j.req.RequestID, reason, j.units+units)
	if cost.IsZero() {
		// Nothing owed: the reason still goes on the hold's statement, as
		// an entry of 0 under its key (the finish writes none for 0).
		if _, err := j.m.cfg.Ledger.Charge(ctx, j.hold.Ref(), cost, cost, key); err != nil {
			j.log.Warn("record why the stream ended", "reason", reason, "err", err)
		}
	}
	res, err := j.m.cfg.Ledger.FinishJobUpTo(ctx, *j.hold, cost, key)
	if err != nil {
		j.log.Error("finish stream; the sweeper will release its hold", "err", err)
		return Final{Total: j.charged}, j.fail("finish", err)
	}
	j.hold = nil
	if res.Charged.Cmp(cost) < 0 {
		j.log.Info("the stream's hold did not cover its last seconds; charged what it held", "units", units, "cost", cost, "charged", res.Charged, "reason", reason)
	}
	j.units += units
	j.charged = j.charged.Add(res.Charged)
	j.m.cfg.Recorder.Charged(res.Charged)
	return Final{PoolBalance: res.PoolBalance, Released: res.Released, Charged: res.Charged, Total: j.charged}, nil
}

// Total is all the stream was charged so far.
func (s *Stream) Total() ledger.Amount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.j.charged
}
