package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"byoc/ledger"
	"byoc/pm"
	"byoc/pmledger"
	"byoc/wire"
)

// Payer makes the payments the gateway sends orchestrators: for one job
// (an attempt's ID) at one orchestrator, at the price and in the ticket
// params of its token, a Livepeer-Payment worth at least what the job's
// hold is missing there. The gateway's own key pays here (localPayer: PM
// tickets signed in this process); a remote signer holding the key is the
// other kind — it keeps its signed state per PaySession, and takes the
// token as its OrchestratorInfo. What a payment is worth is what the
// orchestrator credits for it (each ticket's EV rounded down to a whole
// wei, ledger.CreditFor), so the books record exactly that.
type Payer interface {
	// Pay makes the payment req asks for; nothing when req.Amount ≤ 0.
	// ErrSessionSpent: req.Shared cannot take it (retired, or out of
	// nonces); pay from a session of its own or from fresh params.
	Pay(ctx context.Context, req PayRequest) (Payment, error)
	// Share returns the session the payments of the jobs reusing tok share
	// (one nonce counter for its params; a signer's state). Nothing starts
	// before its first payment.
	Share(tok *wire.JobToken) PaySession
}

// PaySession is what the payments made from one token share.
type PaySession interface {
	// Retire takes no new payments; the session ends once none is being
	// made from it.
	Retire()
}

// ErrSessionSpent: a shared payment session cannot take a payment.
var ErrSessionSpent = errors.New("the token's payment session is spent")

// PayRequest is one payment to make.
type PayRequest struct {
	// Orchestrator is the orchestrator's URL; Token its offer for the
	// capability, with the ticket params and the price (PriceInfo) the
	// payment must quote; Price that price in wei per second.
	Orchestrator string
	Token        *wire.JobToken
	Price        *big.Rat
	// Amount is the least the payment must be worth to the orchestrator.
	// (A stream's payments will be sized by a duration at Price.)
	Amount ledger.Amount
	// JobID (the attempt's ID), Capability and Customer ("" unless one was
	// attested) name what is paid for.
	JobID, Capability, Customer string
	// Shared is the session of the jobs reusing Token, if it is kept;
	// nil: a session of this payment's own.
	Shared PaySession
}

// Payment is what Pay made: the header to send and what it is worth.
type Payment struct {
	// Header is the Livepeer-Payment value; "" when nothing is paid.
	Header string
	// Credits are the tickets, one each, keyed and valued as the
	// orchestrator credits them.
	Credits []ledger.PaymentCredit
}

// Paid is what the payment is worth to the orchestrator.
func (p Payment) Paid() ledger.Amount { return sumCredits(p.Credits) }

// localPayer pays with the gateway's own key: PM tickets from a pm.Sender.
// A session is ended once no payment uses it; the sender then keeps its
// last nonce, so the next session with the same params (an orchestrator
// may send them again) continues after it instead of repeating nonces
// the orchestrator has already seen.
type localPayer struct {
	sender *pm.Sender
	budget uint32 // nonces one shared session may take

	mu    sync.Mutex
	users map[pm.SessionID]int // payments and shared sessions using a session
}

// start starts (or joins) the session of tok's params; end(sid) must
// follow once its tickets are made.
func (p *localPayer) start(tok *wire.JobToken) (pm.SessionID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sid, err := p.sender.StartSession(tok.TicketParams, tok.Price)
	if err != nil {
		return sid, err
	}
	if p.users == nil {
		p.users = make(map[pm.SessionID]int)
	}
	p.users[sid]++
	return sid, nil
}

// end ends the session once its last user is done: two payments with the
// same params share one session, which the first to finish must not end
// under the other.
func (p *localPayer) end(sid pm.SessionID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users[sid]--; p.users[sid] <= 0 {
		delete(p.users, sid)
		p.sender.EndSession(sid)
	}
}

// Pay makes n = pm.TicketsNeeded(req.Amount, credit per ticket) tickets,
// where a ticket earns what the orchestrator credits for it — its EV
// rounded down to a whole wei (ledger.CreditFor), never the exact EV — so
// n tickets always cover req.Amount. They come from req.Shared, or from a
// session of the payment's own started from the token's params.
func (p *localPayer) Pay(ctx context.Context, req PayRequest) (Payment, error) {
	if req.Amount.Sign() <= 0 {
		return Payment{}, nil
	}
	tok := req.Token
	n, perTicket, err := ticketsFor(tok.TicketParams, req.Amount)
	if err != nil {
		return Payment{}, err
	}
	if req.Shared != nil {
		s, ok := req.Shared.(*localSession)
		if !ok {
			return Payment{}, fmt.Errorf("a payment session of another payer (%T)", req.Shared)
		}
		sid, release, err := s.take(n)
		if err != nil {
			return Payment{}, err
		}
		defer release()
		return p.tickets(sid, n, perTicket)
	}
	sid, err := p.start(tok)
	if err != nil {
		return Payment{}, err
	}
	defer p.end(sid)
	return p.tickets(sid, n, perTicket)
}

// tickets signs n tickets in session sid and encodes the payment.
func (p *localPayer) tickets(sid pm.SessionID, n int, perTicket ledger.Amount) (Payment, error) {
	batch, err := p.sender.CreateTicketBatch(sid, n)
	if err != nil {
		return Payment{}, err
	}
	pay := Payment{Header: wire.EncodePaymentHeader(batch.Payment(pm.LayoutBYOC)), Credits: make([]ledger.PaymentCredit, len(batch.Tickets))}
	for i, t := range batch.Tickets {
		pay.Credits[i] = ledger.PaymentCredit{Key: pmledger.TicketKey(t.Hash), Amount: perTicket}
	}
	return pay, nil
}

// ticketsFor is how many tickets of params pay need, and what the
// orchestrator credits for each.
func ticketsFor(tp *wire.TicketParams, need ledger.Amount) (int, ledger.Amount, error) {
	ev := pm.TicketEV(new(big.Int).SetBytes(tp.FaceValue), new(big.Int).SetBytes(tp.WinProb))
	perTicket := ledger.CreditFor(ev)
	if perTicket.IsZero() {
		return 0, perTicket, fmt.Errorf("a ticket's expected value (%s wei) is below 1 wei", ev.FloatString(3))
	}
	n, _, err := pm.TicketsNeeded(need.Rat(), perTicket.Rat(), nil)
	if err != nil {
		return 0, perTicket, err
	}
	if n > wire.MaxTicketsPerPayment {
		return 0, perTicket, fmt.Errorf("the job needs %d tickets of %s wei (more than %d in one payment): use a shorter timeout_seconds or an orchestrator with a larger ticket EV",
			n, perTicket, wire.MaxTicketsPerPayment)
	}
	return n, perTicket, nil
}

// Share returns a PM session for tok's params, started on first use.
func (p *localPayer) Share(tok *wire.JobToken) PaySession { return &localSession{p: p, tok: tok} }

// localSession is one PM session shared by the jobs reusing a token:
// nonces come from one counter, so no two tickets repeat one, and its
// params take at most the payer's budget of nonces (the recipient accepts
// a few more per recipientRandHash), counting those taken before under
// the same params.
type localSession struct {
	p   *localPayer
	tok *wire.JobToken

	mu      sync.Mutex
	id      pm.SessionID
	started bool
	nonces  uint32 // taken by tickets of its params so far
	users   int    // payments using the session now
	retired bool   // no new users
}

// take reserves n nonces of the session for one payment, starting the
// session on first use; ErrSessionSpent when it is retired or cannot take
// n more. release must be called once the payment's tickets are made.
func (s *localSession) take(n int) (sid pm.SessionID, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired || n < 0 || uint64(s.nonces)+uint64(n) > uint64(s.p.budget) {
		return pm.SessionID{}, nil, ErrSessionSpent
	}
	if !s.started {
		if s.id, err = s.p.start(s.tok); err != nil {
			return pm.SessionID{}, nil, err
		}
		s.started = true
		// The params may have been paid from before (the orchestrator
		// sent them again): their nonces count.
		s.nonces, _ = s.p.sender.Nonce(s.id)
		if uint64(s.nonces)+uint64(n) > uint64(s.p.budget) {
			s.retired = true
			s.endIfIdle()
			return pm.SessionID{}, nil, ErrSessionSpent
		}
	}
	s.nonces += uint32(n)
	s.users++
	return s.id, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.users--
		s.endIfIdle()
	}, nil
}

func (s *localSession) Retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired = true
	s.endIfIdle()
}

// endIfIdle ends a retired session nobody pays from; s.mu held.
func (s *localSession) endIfIdle() {
	if s.retired && s.started && s.users == 0 {
		s.p.end(s.id)
		s.started = false
	}
}
