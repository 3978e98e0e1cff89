package gateway

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"byoc/ethsig"
	"byoc/ledger"
	"byoc/wire"
)

// A stream's money in the gateway's books: one hold per stream at its
// orchestrator, as the orchestrator keeps one (docs/gateway.md,
// "Streams"). It opens when the orchestrator starts the stream, with the
// start payment's tickets and what the orchestrator may draw from our pool
// there (the same reserve); each top-up's tickets are credited to it; at
// the end it is charged what the orchestrator says it charged
// (Livepeer-Job-Charged, from a byoc orchestrator's stop), else the price
// of the whole seconds it ran, never more than it holds, and closed, the
// rest released to our pool there. Tickets an orchestrator did not credit
// are written off at once. The hold's TTL is restarted by each top-up; a
// gateway that dies leaves it to the sweeper.

// streamHoldPrefix starts a stream's hold ID in the books: no client job
// ID contains '~', so a stream's hold never takes a job's.
const streamHoldPrefix = "~stream-"

// streamBook is a stream's hold in the books. Its draw from the pool is
// a pending hold (ledger.Pending) from before the start is paid until the
// hold is finished, as a job's is: the books' pool never counts the
// stream's reservation as free, so a job of the same sender and
// orchestrator beginning meanwhile cannot count the same credit twice.
// credited and off are what the hold was paid and what of that was
// written off: its release at the end, with the draw, less the charge.
type streamBook struct {
	key      ledger.JobKey
	pool     poolID
	pending  *ledger.PendingHold
	o        *offer
	began    time.Time // on the ledger's clock
	open     bool
	credited ledger.Amount
	off      ledger.Amount
}

// owed is what the books would charge the stream's hold if it ended at
// now without the orchestrator's figure: the price of the whole seconds
// since its start (the books settle a stream only at its end), an upper
// bound as for jobs; the hold caps it when it is charged.
func (b *streamBook) owed(price *big.Rat, now time.Time) ledger.Amount {
	c, err := ledger.CostOf(price, ledger.UnitsFor(now.Sub(b.began), time.Second))
	if err != nil {
		return ledger.MaxAmount
	}
	return c
}

// reserveStream reserves, in the books' pool at o, what a stream's start
// may count on: at most required, at most what the orchestrator says is
// available (a stream's token is always fresh) and at most what the books'
// pool has that no other hold of ours counts on. Until the start is
// answered (startAnswered) the stream counts as a job open at o, so no
// pool figure of that moment is compared with the books.
func (b *books) reserveStream(ctx context.Context, o *offer, capability, id string, required ledger.Amount) (*streamBook, error) {
	p := poolID{o.recipient, capability}
	ref := p.ref()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.pending.Sync(ctx, ref, b.now(), resyncAfter); err != nil {
		b.m.booksErrors.Inc()
		return nil, fmt.Errorf("%w: reading the pool: %v", ErrBooks, err)
	}
	limit := required
	if !o.reused {
		limit = ledger.MinAmount(limit, o.available)
	}
	sb := &streamBook{key: ledger.JobKey{Sender: ethsig.Hex(p.addr), JobID: streamHoldPrefix + id}, pool: p, o: o,
		pending: b.pending.Reserve(ref, limit)}
	st := b.state(p)
	st.running[sb.key.JobID] = true
	st.open++
	st.epoch++
	return sb, nil
}

// startAnswered records that the orchestrator answered the stream's start
// (or never got it): the pool's figures describe it again. With started
// false the stream's hold never opened: its reservation is given back.
func (b *books) startAnswered(sb *streamBook, started bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(sb.pool)
	st.open--
	st.epoch++
	if !started {
		sb.pending.End(false)
		delete(st.running, sb.key.JobID)
	}
}

// streamHoldTTL is how long a stream's hold in the books may go without
// a payment, for a start that paid start of compute: the longest a
// running stream goes without a top-up (what its start, or a top-up,
// paid beyond StreamTopUpBelow lasts), 3 pay intervals more to notice,
// and HoldTTLMargin. Shorter, a stream whose start pays well above the
// threshold (or whose top-up is large) outlives its hold: its next
// top-up and its end would not be booked.
func (g *Gateway) streamHoldTTL(start time.Duration) time.Duration {
	idle := max(start-g.cfg.StreamTopUpBelow, g.cfg.StreamTopUp, 0)
	return idle + 3*g.cfg.StreamPayInterval + g.cfg.HoldTTLMargin
}

// bookStreamStart opens the stream's hold with the start payment and the
// draw reserveStream reserved.
func (g *Gateway) bookStreamStart(ctx context.Context, s *gwStream, sb *streamBook, pay Payment, resp *http.Response, start time.Duration) {
	b := g.books
	b.startAnswered(sb, true)
	req := ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: sb.key, Capability: sb.pool.capability,
		Reserve: sb.pending.Drawn().Add(sumCredits(pay.Credits)), TTL: g.streamHoldTTL(start)}}
	if len(pay.Credits) > 0 {
		pr := creditsPayment(sb.key.Ref(), pay.Credits)
		req.Payment = &pr
	}
	res, err := g.cfg.Ledger.Admit(ctx, req)
	if err != nil || !res.Admitted && !res.Job.Created {
		s.log.Error("gateway books: the stream's hold did not open", "err", err)
		b.endStream(sb, false)
		return
	}
	sb.began, sb.open, sb.credited = g.cfg.Ledger.Now(), res.Admitted, res.Payment.Credited
	if !res.Admitted {
		// Closed at once, its payment left in the pool.
		sb.pending.Settle(sb.credited, ledger.Amount{}, ledger.Amount{})
		b.endStream(sb, true)
	}
	s.mu.Lock()
	s.book = sb
	s.hold = sb.key.Ref()
	s.mu.Unlock()
	g.writeOff(ctx, s, pay, resp, "start")
}

// endStream ends the stream's pending hold without a finishing write
// (opened: whether its hold opened in the ledger); the pool is read from
// the ledger again once quiet.
func (b *books) endStream(sb *streamBook, opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sb.pending.End(opened)
	delete(b.state(sb.pool).running, sb.key.JobID)
	b.pending.Stale(sb.pool.ref())
}

// bookStreamPayment credits a top-up's tickets to the stream's hold.
func (g *Gateway) bookStreamPayment(ctx context.Context, s *gwStream, pay Payment, resp *http.Response) {
	s.mu.Lock()
	b := s.book
	s.mu.Unlock()
	if b == nil || !b.open || len(pay.Credits) == 0 {
		return
	}
	res, err := g.cfg.Ledger.ReceivePayment(ctx, creditsPayment(b.key.Ref(), pay.Credits))
	if err != nil {
		s.log.Error("gateway books: a stream top-up was not booked", "err", err)
		g.books.pending.Stale(b.pool.ref())
		return
	}
	s.mu.Lock()
	b.credited = b.credited.Add(res.Credited)
	s.mu.Unlock()
	g.writeOff(ctx, s, pay, resp, fmt.Sprintf("%d", pay.Paid().Big()))
}

// writeOff charges what the orchestrator said it did not credit of pay.
func (g *Gateway) writeOff(ctx context.Context, s *gwStream, pay Payment, resp *http.Response, tag string) {
	s.mu.Lock()
	b := s.book
	s.mu.Unlock()
	if b == nil || !b.open || resp == nil {
		return
	}
	if u := uncredited(resp, pay.Paid()); u.Sign() > 0 && len(pay.Credits) > 0 {
		if _, err := g.cfg.Ledger.Charge(ctx, b.key.Ref(), u, u, "uncredited:"+b.key.Sender+":"+b.key.JobID+":"+pay.Credits[0].Key); err != nil {
			s.log.Error("gateway books: uncredited stream tickets not written off", "err", err)
			g.books.pending.Stale(b.pool.ref())
			return
		}
		s.mu.Lock()
		b.off = b.off.Add(u)
		s.mu.Unlock()
	}
}

// bookStreamEnd charges the stream's hold what the orchestrator charged
// (its Livepeer-Job-Charged on the stop answer, resp; else the price of
// the whole seconds since the start) and closes it. The books' pool takes
// the hold's release (its draw and payments, less write-offs and the
// charge) at once, as a job's answer does; without a stop answer the
// orchestrator may close its hold a little later, so the pool's figures
// are not compared for a while.
func (g *Gateway) bookStreamEnd(ctx context.Context, s *gwStream, resp *http.Response) {
	s.mu.Lock()
	b := s.book
	s.book = nil
	var credited, off ledger.Amount
	if b != nil {
		credited, off = b.credited, b.off
	}
	s.mu.Unlock()
	if b == nil || !b.open {
		return
	}
	var charged ledger.Amount
	claimed := false
	if resp != nil {
		charged, claimed = balanceHeader(resp.Header.Get(wire.HeaderJobCharged))
		claimed = claimed && charged.Sign() >= 0
	}
	if !claimed {
		// The gateway's estimate: an upper bound, as for jobs; the hold
		// caps it.
		charged = b.owed(b.o.price, g.cfg.Ledger.Now())
	}
	bk := g.books
	bk.mu.Lock()
	booked, _ := b.pending.Settle(credited, off, charged)
	st := bk.state(b.pool)
	st.epoch++
	if resp == nil {
		st.settleUntil = bk.now().Add(bk.settle)
	}
	bk.mu.Unlock()
	_, err := g.cfg.Ledger.FinishPendingJob(ctx, b.pending, b.key, booked, booked, "stream-end:"+b.key.Sender+":"+b.key.JobID)
	bk.mu.Lock()
	delete(bk.state(b.pool).running, b.key.JobID)
	bk.mu.Unlock()
	if err != nil {
		s.log.Error("gateway books: the stream's hold was not closed; the sweeper will release it", "err", err)
	}
}

// StreamHoldJobID is the job ID of stream id's hold in a gateway's books
// (an orchestrator's ledger holds it under id itself).
func StreamHoldJobID(id string) string { return streamHoldPrefix + id }
