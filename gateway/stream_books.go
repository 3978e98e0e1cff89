package gateway

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"time"

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

// streamBook is a stream's hold in the books.
type streamBook struct {
	key   ledger.JobKey
	began time.Time // on the ledger's clock
	open  bool
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

// bookStreamStart opens the stream's hold with the start payment.
func (g *Gateway) bookStreamStart(ctx context.Context, s *gwStream, o *offer, pay Payment, resp *http.Response, reserve ledger.Amount) {
	p := poolID{addr: o.recipient, capability: s.req.Capability}
	key := ledger.JobKey{Sender: p.addr.Hex(), JobID: streamHoldPrefix + s.id}
	req := ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: key, Capability: p.capability, Reserve: reserve,
		TTL: 3*g.cfg.StreamPayInterval + g.cfg.HoldTTLMargin}}
	if len(pay.Credits) > 0 {
		pr := creditsPayment(key.Ref(), pay.Credits)
		req.Payment = &pr
	}
	res, err := g.cfg.Ledger.Admit(ctx, req)
	if err != nil || !res.Admitted && !res.Job.Created {
		s.log.Error("gateway books: the stream's hold did not open", "err", err)
		return
	}
	s.mu.Lock()
	s.book = &streamBook{key: key, began: g.cfg.Ledger.Now(), open: res.Admitted}
	s.hold = key.Ref()
	s.mu.Unlock()
	g.writeOff(ctx, s, pay, resp, "start")
}

// bookStreamPayment credits a top-up's tickets to the stream's hold.
func (g *Gateway) bookStreamPayment(ctx context.Context, s *gwStream, pay Payment, resp *http.Response) {
	s.mu.Lock()
	b := s.book
	s.mu.Unlock()
	if b == nil || !b.open || len(pay.Credits) == 0 {
		return
	}
	if _, err := g.cfg.Ledger.ReceivePayment(ctx, creditsPayment(b.key.Ref(), pay.Credits)); err != nil {
		s.log.Error("gateway books: a stream top-up was not booked", "err", err)
		return
	}
	g.writeOff(ctx, s, pay, resp, fmt.Sprintf("%d", pay.Paid().Big()))
}

// writeOff charges what the orchestrator said it did not credit of pay.
func (g *Gateway) writeOff(ctx context.Context, s *gwStream, pay Payment, resp *http.Response, tag string) {
	s.mu.Lock()
	b := s.book
	s.mu.Unlock()
	if b == nil || resp == nil {
		return
	}
	if u := uncredited(resp, pay.Paid()); u.Sign() > 0 && len(pay.Credits) > 0 {
		if _, err := g.cfg.Ledger.Charge(ctx, b.key.Ref(), u, u, "uncredited:"+b.key.Sender+":"+b.key.JobID+":"+pay.Credits[0].Key); err != nil {
			s.log.Error("gateway books: uncredited stream tickets not written off", "err", err)
		}
	}
}

// bookStreamEnd charges the stream's hold what the orchestrator charged
// (its Livepeer-Job-Charged on the stop answer, resp; else the price of
// the whole seconds since the start) and closes it.
func (g *Gateway) bookStreamEnd(ctx context.Context, s *gwStream, resp *http.Response) {
	s.mu.Lock()
	b, o := s.book, s.orch
	s.book = nil
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
		charged = b.owed(o.price, g.cfg.Ledger.Now())
	}
	if _, err := g.cfg.Ledger.FinishJobUpTo(ctx, b.key, charged, "stream-end:"+b.key.JobID); err != nil {
		s.log.Error("gateway books: the stream's hold was not closed; the sweeper will release it", "err", err)
	}
}
