package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

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
	return ledger.PoolKey{Sender: p.addr.Hex(), Capability: p.capability}.Ref()
}

// snapshot records a pool's state when a token was asked for: ok when none
// of our jobs was running against it and nothing was settling.
type snapshot struct {
	ok    bool
	epoch uint64
}

// poolState is what the books track in memory per pool.
//
// avail is the part of the pool's balance no job has reserved yet: the
// ledger's pool balance minus the draws of holds being opened. This
// process is the books' only writer, so avail never exceeds the ledger's
// pool: a reservation is taken off avail before its OpenJob commits, and a
// release is added only after its CloseJob committed (the sweeper's
// releases of holds a crash left behind are picked up at the next resync).
// That lets a job know its draw at once and open its hold in the ledger
// while its request is on the way (see open).
//
// epoch counts every start and end of a job of ours against the pool. An
// orchestrator's pool figure describes the same state as the books only
// if no other job of ours ran against the pool between the two readings
// (the epoch did not move and the job was alone) and no earlier job may
// still be settling there (a streamed or broken job whose hold the
// orchestrator may close a little after we stopped listening: settleUntil).
type poolState struct {
	loaded      bool
	syncedAt    time.Time
	avail       ledger.Amount
	inflight    int
	running     map[string]bool // job IDs with a hold being used
	epoch       uint64
	settleUntil time.Time
	// suspect is a shortfall (the orchestrator holds less than the books)
	// seen once; a second quiet comparison showing the same amount
	// confirms it and the books are written down.
	suspect ledger.Amount
	last    *comparison
}

// resyncAfter is how long a quiet pool's avail is trusted before it is
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
// the orchestrator keeps for us. See the package documentation.
type books struct {
	l      *ledger.Ledger
	log    *slog.Logger
	m      *Metrics
	now    func() time.Time
	settle time.Duration

	mu struct {
		sync.Mutex
		pools map[poolID]*poolState
	}
}

func newBooks(l *ledger.Ledger, log *slog.Logger, m *Metrics, now func() time.Time, settle time.Duration) *books {
	b := &books{l: l, log: log, m: m, now: now, settle: settle}
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

func (b *books) snapshot(p poolID) snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(p)
	return snapshot{ok: st.inflight == 0 && !b.now().Before(st.settleUntil), epoch: st.epoch}
}

// hold is one job attempt's hold in the books.
type hold struct {
	b     *books
	pool  poolID
	key   ledger.JobKey
	epoch uint64 // the pool's epoch right after this hold began
	alone bool   // no other job of ours ran against the pool when it began
	drawn ledger.Amount
	log   *slog.Logger
	// opened delivers the outcome of opening the hold in the ledger when
	// that runs alongside the job's request.
	opened chan error
}

// open begins a job attempt at o: it reserves, from the books' pool, what
// the job may count on — at most required, and at most what the
// orchestrator says is available — so that concurrent jobs never count
// the same prepaid credit twice, and opens the attempt's hold with that
// draw. With wait, open returns once the hold is durably open (and
// refuses an ID the books have seen with this orchestrator); without, the
// ledger write runs alongside the request and finish waits for it — for
// IDs the gateway made up, which cannot have been used. When the token was
// asked for while the pool was quiet, the orchestrator's pool figure is
// compared with the books'.
func (b *books) open(ctx context.Context, o *offer, capability, id string, required ledger.Amount, ttl time.Duration, wait bool, log *slog.Logger) (*hold, error) {
	p := poolID{o.recipient, capability}
	b.mu.Lock()
	st := b.state(p)
	if st.running[id] {
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: a job with this id is running at this orchestrator", ErrJobIDUsed)
	}
	if !st.loaded || (st.inflight == 0 && b.now().Sub(st.syncedAt) > resyncAfter) {
		bal, err := b.l.Balance(ctx, p.ref())
		if err != nil {
			b.mu.Unlock()
			b.m.booksErrors.Inc()
			return nil, fmt.Errorf("%w: reading the pool: %v", ErrBooks, err)
		}
		st.loaded, st.avail, st.syncedAt = true, bal, b.now()
	}
	tokenQuiet := o.snap.ok && o.snap.epoch == st.epoch && st.inflight == 0 && !b.now().Before(st.settleUntil)
	h := &hold{b: b, pool: p, key: ledger.JobKey{Sender: p.addr.Hex(), JobID: id}, alone: st.inflight == 0, log: log}
	h.drawn = ledger.MaxOf(ledger.MinAmount(ledger.MinAmount(required, o.available), st.avail), ledger.Amount{})
	st.avail = st.avail.Sub(h.drawn)
	st.running[id] = true
	st.inflight++
	st.epoch++
	h.epoch = st.epoch
	b.mu.Unlock()

	openHold := func() error {
		res, err := b.l.OpenJob(ctx, ledger.OpenJobRequest{Job: h.key, Capability: capability, Reserve: h.drawn, TTL: ttl})
		switch {
		case errors.Is(err, ledger.ErrJobClosed), errors.Is(err, ledger.ErrJobExpired), errors.Is(err, ledger.ErrJobMismatch):
			return fmt.Errorf("%w with this orchestrator before (%v)", ErrJobIDUsed, err)
		case err != nil:
			b.m.booksErrors.Inc()
			return fmt.Errorf("%w: opening the hold: %v", ErrBooks, err)
		case !res.Created:
			return fmt.Errorf("%w: the books have an open hold for this job id", ErrJobIDUsed)
		}
		if res.Drawn.Cmp(h.drawn) != 0 {
			// Only another writer on the books' ledger could cause this.
			log.Error("gateway books: the hold drew another amount than reserved; is another process writing this ledger?",
				"reserved", h.drawn.String(), "drawn", res.Drawn.String())
			b.mu.Lock()
			b.state(p).avail = b.state(p).avail.Add(h.drawn).Sub(res.Drawn)
			b.mu.Unlock()
		}
		if tokenQuiet && o.poolFigure.ok {
			b.compare(ctx, p, h.epoch, o.poolFigure, res.PoolBalance.Add(res.Drawn), "token", log)
		}
		return nil
	}
	if !wait {
		h.opened = make(chan error, 1)
		go func() { h.opened <- openHold() }()
		return h, nil
	}
	if err := openHold(); err != nil {
		h.end(ledger.Amount{}, true, true)
		return nil, err
	}
	return h, nil
}

// end records the end of the attempt in the pool's state: what its hold
// released back to the pool (or, if the hold never opened, the draw that
// was reserved for it); unsettled marks the orchestrator's figures
// unreliable for the settle time.
func (h *hold) end(released ledger.Amount, unsettled, notOpened bool) {
	b := h.b
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(h.pool)
	if notOpened {
		released = h.drawn
	}
	st.avail = st.avail.Add(released)
	delete(st.running, h.key.JobID)
	st.inflight--
	st.epoch++
	if unsettled {
		st.settleUntil = b.now().Add(b.settle)
	}
}

// finish posts what the orchestrator credited (credits: one per ticket,
// keyed by its hash) and charged, closes the hold — its remainder goes back
// to the books' pool — and, if the job ran alone against the pool, compares
// the books with after, the orchestrator's pool figure once it closed the
// job (not ok when it gave none). The hold stays open if the ledger fails;
// it then expires after its TTL and is released the same way, minus what
// could not be posted.
func (h *hold) finish(ctx context.Context, credits []ledger.PaymentCredit, charged ledger.Amount, after figure) error {
	b := h.b
	if h.opened != nil {
		if err := <-h.opened; err != nil {
			// The hold never opened: nothing of this attempt is in the books.
			h.end(ledger.Amount{}, true, true)
			if !errors.Is(err, ErrBooks) {
				b.m.booksErrors.Inc()
			}
			h.log.Error("gateway books: the job's hold could not be opened; its payment and charge are not booked", "err", err,
				"tickets", len(credits), "charged", charged.String())
			return err
		}
	}
	ref := h.key.Ref()
	var errs [2]error
	var wg sync.WaitGroup
	if len(credits) > 0 {
		wg.Go(func() {
			_, errs[0] = b.l.ReceivePayment(ctx, ledger.PaymentRequest{To: ref,
				Decide: func(ledger.NonceView) (ledger.PaymentDecision, error) {
					return ledger.PaymentDecision{Credits: credits}, nil
				}})
		})
	}
	if charged.Sign() > 0 {
		// The work is done and must be paid even beyond the hold (a job may
		// run longer than what was reserved); the pool covers it at close.
		wg.Go(func() {
			_, errs[1] = b.l.Charge(ctx, ref, charged, charged, "charge:"+h.key.Sender+":"+h.key.JobID)
		})
	}
	wg.Wait()
	res, err := b.l.CloseJob(ctx, h.key)
	if err = errors.Join(errs[0], errs[1], err); err != nil {
		// What the hold holds comes back when it expires; avail catches up
		// at the next resync.
		h.end(ledger.Amount{}, true, false)
		b.m.booksErrors.Inc()
		h.log.Error("gateway books: could not finish the job's hold; it will expire", "err", err)
		return fmt.Errorf("%w: %v", ErrBooks, err)
	}
	b.mu.Lock()
	st := b.state(h.pool)
	quiet := h.alone && st.epoch == h.epoch && !b.now().Before(st.settleUntil)
	b.mu.Unlock()
	if quiet && after.ok {
		b.compare(ctx, h.pool, h.epoch, after, res.PoolBalance, "job", h.log)
	}
	h.end(res.Released, !after.ok, false)
	return nil
}

// compare reconciles the books' pool with the orchestrator's figure for
// it, both taken while no other job of ours ran against the pool (epoch).
// The rule is bounded: the books are never credited with anything but
// the tickets the gateway paid, so an orchestrator reporting more than the
// books is logged and counted, nothing else. An orchestrator reporting
// less (it lost state, charged more than it said, another gateway with our
// key spent the pool) is logged and counted too, and once a second quiet
// comparison shows the same shortfall the books are written down by it
// (a charge on the pool), so that later jobs are paid for in full.
func (b *books) compare(ctx context.Context, p poolID, epoch uint64, orch figure, books ledger.Amount, source string, log *slog.Logger) {
	if !orch.exact && books.Cmp(ledger.Wei(legacyCap)) >= 0 {
		return // go-livepeer's token balance saturates there
	}
	diff := orch.v.Sub(books)
	b.mu.Lock()
	st := b.state(p)
	if st.epoch != epoch {
		b.mu.Unlock()
		return // another job started meanwhile: not comparable
	}
	st.last = &comparison{At: b.now(), Orchestrator: orch.v, Books: books, Exact: orch.exact, Source: source}
	writeDown := ledger.Amount{}
	if diff.Sign() >= 0 {
		st.suspect = ledger.Amount{}
	} else if short := diff.Neg(); st.suspect.Cmp(short) == 0 {
		writeDown, st.suspect = short, ledger.Amount{}
		st.avail = st.avail.Sub(writeDown) // before the charge commits: avail stays ≤ the ledger's
	} else {
		st.suspect = short
	}
	b.mu.Unlock()

	attrs := []any{"orchestrator", p.addr.Hex(), "capability", p.capability, "orchestrator_balance", orch.v.String(),
		"books_balance", books.String(), "exact", orch.exact, "source", source}
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
			// go-livepeer credits tickets' exact EV (we book them floored)
			// and charges less than our estimate: expected.
			log.Debug("gateway books: a legacy orchestrator reports more credit than the books", attrs...)
		}
		return
	}
	b.m.reconciled.WithLabelValues("orchestrator_lower").Inc()
	b.m.discrepancyWei.WithLabelValues("orchestrator_lower").Add(approx(diff.Neg()))
	if writeDown.IsZero() {
		log.Warn("gateway books: the orchestrator reports less credit than the books; writing it down if a second comparison confirms", attrs...)
		return
	}
	key := "writedown:" + NewJobID()
	if _, err := b.l.Charge(ctx, p.ref(), writeDown, writeDown, key); err != nil {
		b.m.booksErrors.Inc()
		b.mu.Lock()
		b.state(p).avail = b.state(p).avail.Add(writeDown)
		b.mu.Unlock()
		log.Error("gateway books: write-down failed", append(attrs, "err", err)...)
		return
	}
	b.m.writtenDownWei.Add(approx(writeDown))
	log.Warn("gateway books: shortfall confirmed; pool written down to the orchestrator's figure", append(attrs, "written_down", writeDown.String(), "key", key)...)
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
	var out []PoolStatus
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
				ps.JobsRunning, ps.Suspect, ps.Last = st.inflight, st.suspect, st.last
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
