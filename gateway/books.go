package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ethsig"
	"byoc/ledger"
)

// poolID names a pool in the books: the gateway's credit at one
// orchestrator (its PM recipient address) for one capability. Orchestrator
// replicas that share a ledger share a recipient, and so a pool here.
type poolID struct {
	addr       common.Address
	capability string
}

// ref is the pool's account: the ledger's "sender" field holds the
// orchestrator's address, since here the gateway is the one that paid.
func (p poolID) ref() ledger.Ref {
	return ledger.PoolKey{Sender: ethsig.Hex(p.addr), Capability: p.capability}.Ref()
}

// snapshot records a pool's state when a token was asked for: ok when no
// job of ours was open against it and nothing was settling.
type snapshot struct {
	ok    bool
	epoch uint64
}

// poolState is what the books track in memory per pool, beside its
// balance. The balance the books count on is the ledger's, as it will be
// once every answered job's books are posted (ledger.Pending): a job's
// draw leaves it when the job begins, and what its hold will release
// (draw + tickets sent − charge) comes back when the job is answered,
// which is when the orchestrator has released it too. So it is what the
// job about to begin may count on without counting anyone else's
// reservation twice, and, when no job of ours is open at the orchestrator,
// exactly what the orchestrator's pool should be, even while answered jobs
// are still posting their books. A job's hold then draws from the ledger's
// pool what it reserved, or less while releases are still being posted
// (its statement shows what it drew; the money is the same). The sweeper's
// releases of holds a crash left behind are picked up when the pool is
// next read from the ledger (Pending.Sync, when no hold of it is pending).
//
// epoch moves whenever a job begins or is answered. An orchestrator's pool
// figure is compared with the books' only when it describes the same state:
// no other job was open meanwhile (the epoch did not move, the job was
// alone) and no earlier job may still be settling there (a streamed or
// broken one whose hold the orchestrator may close a little after we
// stopped listening: settleUntil).
type poolState struct {
	open    int             // jobs begun and not answered yet
	running map[string]bool // job IDs of holds whose books are not posted yet
	epoch   uint64
	// settleUntil: the orchestrator's figures are not compared before.
	settleUntil time.Time
	// suspect is a shortfall (the orchestrator holds less than the books)
	// seen once; a second comparison showing the same amount confirms it
	// and the books are written down.
	suspect ledger.Amount
	last    *comparison
}

// resyncAfter is how long a quiet pool's memory is trusted before it is
// read from the ledger again.
const resyncAfter = 10 * time.Second

// comparison is the last time the books were compared with an orchestrator.
type comparison struct {
	At           time.Time     `json:"at"`
	Orchestrator ledger.Amount `json:"orchestrator"`
	Books        ledger.Amount `json:"books"`
	Exact        bool          `json:"exact"`
	Source       string        `json:"source"` // token or job
}

// books is the gateway's side of the money: a ledger with one pool per
// (orchestrator, capability) and one hold per job attempt, mirroring what
// the orchestrator keeps for us. See docs/gateway.md, "The books".
type books struct {
	l       *ledger.Ledger
	pending *ledger.Pending // the pools as they will be once our holds are posted
	log     *slog.Logger
	m       *Metrics
	now     func() time.Time
	settle  time.Duration

	mu struct {
		sync.Mutex
		pools map[poolID]*poolState
	}
}

func newBooks(l *ledger.Ledger, log *slog.Logger, m *Metrics, now func() time.Time, settle time.Duration) *books {
	b := &books{l: l, pending: ledger.NewPending(l), log: log, m: m, now: now, settle: settle}
	b.mu.pools = map[poolID]*poolState{}
	return b
}

// state returns p's state; b.mu must be held.
func (b *books) state(p poolID) *poolState {
	st := b.mu.pools[p]
	if st == nil {
		st = &poolState{running: map[string]bool{}}
		b.mu.pools[p] = st
	}
	return st
}

func (b *books) settling(st *poolState) bool { return b.now().Before(st.settleUntil) }

func (b *books) snapshot(p poolID) snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(p)
	return snapshot{ok: st.open == 0 && !b.settling(st), epoch: st.epoch}
}

// hold is one job attempt's hold in the books. Its life: open (reserve
// the draw), book (the tickets, once sent), settle (the answer is known),
// post (the charge and the close, in the ledger), end.
type hold struct {
	b          *books
	pool       poolID
	poolRef    ledger.Ref
	pending    *ledger.PendingHold // its draw and release in the books' pool
	key        ledger.JobKey
	capability string
	ttl        time.Duration
	ctx        context.Context // of the ledger writes: not the client's
	epoch      uint64          // the pool's epoch right after this job began
	alone      bool            // no other job of ours was open at the orchestrator then
	drawn      ledger.Amount
	log        *slog.Logger
	// opened: the hold is open in the ledger (a client's ID); else it is
	// opened alongside the request, together with the payment (book), or,
	// when the request carries no payment, only once the job has ended,
	// together with its charge and close (post).
	opened bool
	// unpaid: the request carries no payment and the hold is not open:
	// post opens, charges and closes it in one ledger step if sent says
	// the request left.
	unpaid bool
	sent   *delivery
	// booked delivers the outcome of book (nil: book was not called); post
	// waits for it.
	booked chan error
	// uncredited is what of the payment sent the orchestrator says it did
	// not credit (it refused the payment): written off the hold when it is
	// posted.
	uncredited ledger.Amount
}

// open begins a job attempt at o: it reserves, from the books' pool, what
// the job may count on — at most required, and at most what the
// orchestrator says is available — so that concurrent jobs never count
// the same prepaid credit twice, and opens the attempt's hold with that
// draw. With wait, open returns once the hold is durably open (and
// refuses an ID the books have seen with this orchestrator); without, the
// ledger write runs alongside the request (book starts it), or, when the
// request carries no payment, once the job has ended (post) — for IDs the
// gateway made up, which cannot have been used. When the token was asked
// for while the pool was quiet, the orchestrator's pool figure is
// compared with the books'.
func (b *books) open(ctx context.Context, o *offer, capability, id string, required ledger.Amount, ttl time.Duration, wait bool, log *slog.Logger) (*hold, error) {
	p := poolID{o.recipient, capability}
	b.mu.Lock()
	st := b.state(p)
	if st.running[id] {
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: a job with this id is running at this orchestrator", ErrJobIDUsed)
	}
	ref := p.ref()
	if err := b.pending.Sync(ctx, ref, b.now(), resyncAfter); err != nil {
		b.mu.Unlock()
		b.m.booksErrors.Inc()
		return nil, fmt.Errorf("%w: reading the pool: %v", ErrBooks, err)
	}
	var after func()
	if o.snap.ok && o.snap.epoch == st.epoch && st.open == 0 && !b.settling(st) && o.poolFigure.ok {
		after = b.compare(p, st, o.poolFigure, "token", log)
	}
	h := &hold{b: b, pool: p, poolRef: ref, key: ledger.JobKey{Sender: ethsig.Hex(p.addr), JobID: id}, capability: capability, ttl: ttl, ctx: ctx,
		alone: st.open == 0, log: log}
	limit := required
	if !o.reused {
		// A fresh token's figure: what the orchestrator holds for us now
		// (a reused one's is stale; the books' figure then decides).
		limit = ledger.MinAmount(limit, o.available)
	}
	h.pending = b.pending.Reserve(ref, limit)
	h.drawn = h.pending.Drawn()
	st.running[id] = true
	st.open++
	st.epoch++
	h.epoch = st.epoch
	b.mu.Unlock()
	if after != nil {
		after()
	}

	if !wait {
		return h, nil
	}
	if err := h.open(); err != nil {
		h.end(true)
		return nil, err
	}
	h.opened = true
	return h, nil
}

// open opens the hold in the ledger with what it drew.
func (h *hold) open() error {
	b := h.b
	res, err := b.l.OpenJob(h.ctx, ledger.OpenJobRequest{Job: h.key, Capability: h.capability, Reserve: h.drawn, TTL: h.ttl})
	switch {
	case ledger.IsJobIDRefused(err):
		return fmt.Errorf("%w with this orchestrator before (%v)", ErrJobIDUsed, err)
	case err != nil:
		b.m.booksErrors.Inc()
		return fmt.Errorf("%w: opening the hold: %v", ErrBooks, err)
	case !res.Created:
		return fmt.Errorf("%w: the books have an open hold for this job id", ErrJobIDUsed)
	}
	if res.Drawn.Cmp(h.drawn) != 0 {
		// Releases of answered jobs not posted yet: the hold holds less,
		// the pool more, until they are.
		h.log.Debug("gateway books: the hold drew less than the job counts on", "reserved", h.drawn.String(), "drawn", res.Drawn.String())
	}
	return nil
}

// admit opens the hold and books the payment sent in one ledger step.
func (h *hold) admit(credits []ledger.PaymentCredit) error {
	pay := creditsPayment(h.key.Ref(), credits)
	_, err := h.b.l.Admit(h.ctx, ledger.AdmitRequest{
		OpenJobRequest: ledger.OpenJobRequest{Job: h.key, Capability: h.capability, Reserve: h.drawn.Add(sumCredits(credits)), TTL: h.ttl},
		Payment:        &pay,
	})
	switch {
	case ledger.IsJobIDRefused(err):
		return fmt.Errorf("%w with this orchestrator before (%v)", ErrJobIDUsed, err)
	case err != nil:
		h.b.m.booksErrors.Inc()
		return fmt.Errorf("%w: opening the hold with its payment: %v", ErrBooks, err)
	}
	return nil
}

// cancel ends an attempt that sent nothing: the hold, if it was opened,
// is closed with nothing booked on it.
func (h *hold) cancel(ctx context.Context) error {
	h.b.mu.Lock()
	h.unopen()
	h.b.mu.Unlock()
	return h.post(ctx)
}

// unopen takes back a job that never reached the orchestrator from the
// pool's state; b.mu held.
func (h *hold) unopen() {
	if h.pending.Cancel() {
		st := h.b.state(h.pool)
		st.open--
		st.epoch++
	}
}

// book books the attempt's payment, one credit per ticket keyed by its
// hash, as soon as it has left the gateway: sent says, once decided,
// whether the job request's headers (which carry it) were written. Once
// sent, the tickets are spent — the orchestrator holds them, whatever it
// answers — so they are booked then, alongside the request, not after the
// answer: a crash mid-job cannot lose them. If the headers were never
// written, nothing is booked. A hold not opened yet is opened in the same
// ledger step as the payment (ledger.Admit). post waits for all this.
//
// A request that carries no payment books nothing now: what its hold
// draws is reserved in memory (ledger.Pending), and until the job ends
// the ledger's hold would protect nothing — nothing was paid, and after a
// crash it would only expire and release everything, as if never opened.
// post then opens, charges and closes the hold in one ledger step.
func (h *hold) book(credits []ledger.PaymentCredit, sent *delivery) {
	if len(credits) == 0 {
		h.unpaid, h.sent = !h.opened, sent
		return
	}
	h.booked = make(chan error, 1)
	go func() { h.booked <- h.bookSent(credits, sent) }()
}

// bookSent is book's work, alongside the request. errNotSent: the hold
// was never opened.
func (h *hold) bookSent(credits []ledger.PaymentCredit, sent *delivery) error {
	b := h.b
	switch {
	case !sent.left() && h.opened:
		return nil // never left: nothing paid
	case !sent.left():
		return errNotSent // never left: the hold is not opened at all
	}
	var err error
	if h.opened {
		_, err = b.l.ReceivePayment(context.Background(), creditsPayment(h.key.Ref(), credits))
	} else if err = h.admit(credits); err != nil {
		return err
	}
	if err != nil {
		b.m.booksErrors.Inc()
		h.log.Error("gateway books: the payment sent could not be booked", "err", err, "tickets", len(credits))
		b.pending.Stale(h.poolRef) // read the ledger again when quiet
		return nil
	}
	b.m.tickets.Add(float64(len(credits)))
	b.m.paidWei.Add(approx(sumCredits(credits)))
	return nil
}

// creditsPayment books the tickets sent to the hold to: one credit each,
// as the orchestrator keys and credits them.
func creditsPayment(to ledger.Ref, credits []ledger.PaymentCredit) ledger.PaymentRequest {
	req := ledger.PaymentRequest{To: to, Tickets: make([]ledger.PaymentTicket, len(credits))}
	for i, c := range credits {
		req.Tickets[i] = ledger.PaymentTicket{Credit: c, NoNonce: true}
	}
	return req
}

// sumCredits is what credits are worth together.
func sumCredits(credits []ledger.PaymentCredit) ledger.Amount {
	var sum ledger.Amount
	for _, c := range credits {
		sum = sum.Add(c.Amount)
	}
	return sum
}

// errNotSent: the attempt's request never left, so its hold was never
// opened; nothing of it is in the books.
var errNotSent = errors.New("the request was not sent")

// settle records that the job is answered: paid is what was sent (booked
// by book), charged what the orchestrator charged, after its pool figure
// once it closed the job (not ok when it gave none, which makes the
// pool's figures settle for a while). If the job was alone at the
// orchestrator from its start, after is compared with the books. Memory
// only: the ledger's pending view of the pool takes the hold's release.
//
// The charge booked is at most what the hold holds for the job — what it
// drew and was paid, less what the orchestrator did not credit (written
// off first; ledger.PendingHold.Settle) — so no claim drives a pool below
// zero. It returns that, which is below charged when the orchestrator
// claimed more than the job held or was paid.
func (h *hold) settle(paid ledger.Amount, charged ledger.Amount, after figure) (booked ledger.Amount) {
	b := h.b
	b.mu.Lock()
	st := b.state(h.pool)
	booked, first := h.pending.Settle(paid, h.uncredited, charged)
	if !first {
		b.mu.Unlock()
		return booked
	}
	st.open--
	quiet := h.alone && st.epoch == h.epoch && st.open == 0 && !b.settling(st) && after.ok
	st.epoch++
	if !after.ok && !after.untouched {
		st.settleUntil = b.now().Add(b.settle)
	}
	var compare func()
	if quiet {
		compare = b.compare(h.pool, st, after, "job", h.log)
	}
	b.mu.Unlock()
	if compare != nil {
		compare()
	}
	return booked
}

// charge is what settle will book for a charge of charged with paid sent
// (ledger.PendingHold.Charge).
func (h *hold) charge(paid, charged ledger.Amount) ledger.Amount {
	return h.pending.Charge(paid, h.uncredited, charged)
}

// post waits for the hold's opening and payment, posts the charge settle
// booked and closes the hold — its remainder goes back to the books' pool —
// then ends the attempt. The hold stays open if the ledger fails; it then
// expires after its TTL and is released the same way, minus what could not
// be posted.
func (h *hold) post(ctx context.Context) error {
	b := h.b
	charged := h.pending.Charged()
	if h.unpaid {
		return h.postUnpaid(ctx, charged)
	}
	if h.booked == nil && !h.opened {
		// Nothing was sent: the hold was never opened.
		h.end(true)
		return nil
	}
	if h.booked != nil {
		if err := <-h.booked; errors.Is(err, errNotSent) {
			h.end(true)
			return nil
		} else if err != nil {
			// The hold never opened: nothing of this attempt is in the books.
			h.end(true)
			h.log.Error("gateway books: the job's hold could not be opened; its payment and charge are not booked", "err", err,
				"charged", charged.String())
			return err
		}
	}
	var err error
	if h.uncredited.Sign() > 0 {
		// Tickets the orchestrator refused: sent, booked, worth nothing there.
		_, err = b.l.Charge(ctx, h.key.Ref(), h.uncredited, h.uncredited, "uncredited:"+h.key.Sender+":"+h.key.JobID)
		if err == nil {
			h.log.Warn("gateway books: the orchestrator did not credit tickets we sent; written off", "uncredited_wei", h.uncredited.String())
		}
	}
	if err != nil {
		// What the hold holds comes back when it expires; the memory
		// catches up at the next resync.
		b.m.booksErrors.Inc()
		h.log.Error("gateway books: could not write off the uncredited payment; the job's hold will expire", "err", err)
		h.end(false)
		b.pending.Stale(h.poolRef)
		return fmt.Errorf("%w: %v", ErrBooks, err)
	}
	// The charge and the close in one step, which ends the pending hold
	// once it commits (or fails: the hold then expires and the pool is
	// read again). The charge is at most what the job drew and was paid
	// (settle); the ledger's hold may still hold less when it drew less
	// than reserved (answered jobs' releases not posted yet), and the pool,
	// which holds the difference, covers it.
	return h.writeEnd("could not finish the job's hold; it will expire", charged, func(key string) error {
		_, err := b.l.FinishPendingJob(ctx, h.pending, h.key, charged, charged, key)
		return err
	})
}

// writeEnd takes the attempt out of its pool's state, runs write — the
// ledger step that posts its charge under key and ends its pending hold —
// and forgets the running job; a failure is counted and logged as
// failed, with the charge it did not post.
func (h *hold) writeEnd(failed string, charged ledger.Amount, write func(key string) error) error {
	b := h.b
	b.mu.Lock()
	h.unopen()
	b.mu.Unlock()
	err := write("charge:" + h.key.Sender + ":" + h.key.JobID)
	b.mu.Lock()
	delete(b.state(h.pool).running, h.key.JobID)
	b.mu.Unlock()
	if err != nil {
		b.m.booksErrors.Inc()
		h.log.Error("gateway books: "+failed, "err", err, "charged", charged.String())
		return fmt.Errorf("%w: %v", ErrBooks, err)
	}
	return nil
}

// postUnpaid is post for a hold whose request carried no payment and
// which is not open in the ledger: one ledger step opens it with what it
// drew, posts the charge and closes it — the same accounts and entries as
// opening it before the request and finishing it after — and ends the
// pending hold once it commits. A request that never left is booked not
// at all, as a paid one is not. If the ledger fails, nothing of the job is
// in it: its draw was never taken, its charge is not booked, and the
// pool is read again when quiet.
func (h *hold) postUnpaid(ctx context.Context, charged ledger.Amount) error {
	b := h.b
	h.unpaid = false // posted once: a second post finds nothing to write
	if charged.IsZero() && !h.sent.left() {
		h.end(true)
		return nil
	}
	return h.writeEnd("could not book the job's hold and charge", charged, func(key string) error {
		_, err := b.l.OpenFinishPendingJob(ctx, h.pending, ledger.OpenJobRequest{Job: h.key, Capability: h.capability, Reserve: h.drawn, TTL: h.ttl},
			charged, charged, key)
		return err
	})
}

// end records that the attempt's books are posted without finishing its
// hold in the ledger; notOpened, that the hold never opened, so nothing of
// it is in the ledger.
func (h *hold) end(notOpened bool) {
	b := h.b
	b.mu.Lock()
	defer b.mu.Unlock()
	h.unopen()
	h.pending.End(!notOpened)
	delete(b.state(h.pool).running, h.key.JobID)
}

// compare reconciles the books' pool (ledger.Pending's figure) with the orchestrator's
// figure for it, st's lock held; what it returns does the rest (logging,
// a write-down) after the lock is released.
//
// The rule is bounded: the books are never credited with anything but
// the tickets the gateway paid, so an orchestrator reporting more than the
// books is logged and counted, nothing else. An orchestrator reporting
// less (it lost state, charged more than it said, another gateway with our
// key spent the pool) is logged and counted too, and once a second
// comparison shows the same shortfall the books are written down by it
// (a charge on the pool), so that later jobs are paid for in full.
func (b *books) compare(p poolID, st *poolState, orch figure, source string, log *slog.Logger) func() {
	ref := p.ref()
	books := b.pending.Projected(ref)
	if !orch.exact && books.Cmp(ledger.Wei(legacyCap)) >= 0 {
		return nil // go-livepeer's token balance saturates there
	}
	diff := orch.v.Sub(books)
	st.last = &comparison{At: b.now(), Orchestrator: orch.v, Books: books, Exact: orch.exact, Source: source}
	writeDown, confirmed := ledger.Amount{}, false
	if diff.Sign() >= 0 {
		st.suspect = ledger.Amount{}
	} else if short := diff.Neg(); st.suspect.Cmp(short) == 0 {
		// Never below zero: a figure under zero (a lie, or a debt the
		// orchestrator claims) takes the books to zero at most.
		writeDown, st.suspect = b.pending.WriteDown(ref, short), ledger.Amount{}
		confirmed = true
	} else {
		st.suspect = short
	}
	// log names the job, its capability and the orchestrator's URL already.
	attrs := []any{"address", p.addr.Hex(), "orchestrator_balance", orch.v.String(),
		"books_balance", books.String(), "exact", orch.exact, "source", source}
	return func() {
		switch diff.Sign() {
		case 0:
			b.m.reconciled.WithLabelValues("agree").Inc()
			return
		case 1:
			b.m.reconciled.WithLabelValues("orchestrator_higher").Inc()
			b.m.discrepancyWei.WithLabelValues("orchestrator_higher").Add(approx(diff))
			if orch.exact {
				log.Warn("gateway books: the orchestrator reports more credit than we paid for; not taken into the books", attrs...)
			} else {
				// go-livepeer credits tickets' exact EV (we book them
				// floored) and charges less than our estimate: expected.
				log.Debug("gateway books: a legacy orchestrator reports more credit than the books", attrs...)
			}
			return
		}
		b.m.reconciled.WithLabelValues("orchestrator_lower").Inc()
		b.m.discrepancyWei.WithLabelValues("orchestrator_lower").Add(approx(diff.Neg()))
		if !confirmed {
			log.Warn("gateway books: the orchestrator reports less credit than the books; writing it down if the next comparison confirms", attrs...)
			return
		}
		if writeDown.IsZero() {
			log.Warn("gateway books: the orchestrator reports less than zero and the books hold nothing there; nothing to write down", attrs...)
			return
		}
		key := "writedown:" + NewJobID()
		if _, err := b.l.Charge(context.Background(), ref, writeDown, writeDown, key); err != nil {
			b.m.booksErrors.Inc()
			b.pending.Restore(ref, writeDown)
			log.Error("gateway books: write-down failed", append(attrs, "err", err)...)
			return
		}
		b.m.writtenDownWei.Add(approx(writeDown))
		log.Warn("gateway books: shortfall confirmed; pool written down to the orchestrator's figure", append(attrs, "written_down", writeDown.String(), "key", key)...)
	}
}

// PoolStatus is one pool of the gateway's books: its credit at one
// orchestrator for one capability.
type PoolStatus struct {
	Orchestrator string        `json:"orchestrator"` // the orchestrator's PM recipient address
	Capability   string        `json:"capability"`
	Balance      ledger.Amount `json:"balance"`
	// WrittenDown is what confirmed shortfalls took off the pool.
	WrittenDown ledger.Amount `json:"written_down"`
	JobsRunning int           `json:"jobs_running"`
	Suspect     ledger.Amount `json:"unconfirmed_shortfall"`
	Last        *comparison   `json:"last_comparison,omitempty"`
}

// pools lists the books' pools with what the gateway last learned of each.
func (b *books) pools(ctx context.Context) ([]PoolStatus, error) {
	out := []PoolStatus{} // JSON []: no pools, not null
	after := int64(0)
	for {
		as, err := b.l.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, AfterID: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		for _, a := range as {
			ps := PoolStatus{Orchestrator: a.Ref.Sender, Capability: a.Ref.Name, Balance: a.Balance, WrittenDown: a.Charged}
			if st := b.mu.pools[poolID{common.HexToAddress(a.Ref.Sender), a.Ref.Name}]; st != nil {
				ps.JobsRunning, ps.Suspect, ps.Last = st.open, st.suspect, st.last
			}
			out = append(out, ps)
			after = a.ID
		}
		b.mu.Unlock()
		if len(as) < 1000 {
			return out, nil
		}
	}
}
