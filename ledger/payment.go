package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Payments made of tickets (Livepeer PM, or any scheme with per-session
// nonces) are received by ReceivePayment in one atomic step: the session's
// seen nonces are read, the caller's rule decides which tickets are new and
// which earn credit, and the accepted nonces, the credits (one entry per
// ticket, keyed by the ticket's hash) and the winning tickets are stored
// together. A ticket replayed later, also after a restart, finds its nonce
// recorded; a ticket credited twice by any path finds its key taken.

// MaxNoncesPerPayment bounds the tickets of one payment.
const MaxNoncesPerPayment = 4096

// NonceView is what a payment's rule sees of its session inside the
// transaction: the nonces already recorded (only those the payment
// presents are known) and how many the session holds.
type NonceView interface {
	Contains(nonce uint32) bool
	Len() int
}

// PaymentDecision is what a payment's rule decided.
type PaymentDecision struct {
	// Accepted are the nonces to record for the session.
	Accepted []uint32
	// Credits are the tickets that earn credit, each under its own key.
	Credits []PaymentCredit
	// Winners are winning tickets to queue for redemption, credited or not.
	Winners []Winner
}

// PaymentCredit is one ticket's credit.
type PaymentCredit struct {
	Key    string
	Amount Amount
}

// Winner is a winning ticket queued for redemption. Queuing is idempotent by
// Key (the ticket hash).
type Winner struct {
	Key       string `json:"key"`
	Sender    string `json:"sender"`
	Session   string `json:"session"`
	FaceValue Amount `json:"face_value"`
	// RedeemAfter is the session expiry (a block number for PM): a ticket
	// must not be redeemed before it, since that reveals the secret.
	RedeemAfter int64 `json:"redeem_after"`
	// Payload is everything a redeemer needs, in the payment scheme's own
	// encoding (for PM: the ticket, signature and recipientRand).
	Payload  []byte    `json:"payload"`
	Account  Ref       `json:"account"`
	QueuedAt time.Time `json:"queued_at"`
	State    string    `json:"state"` // WinnerQueued, WinnerSubmitted, WinnerRedeemed, WinnerDead

	// The redemption (winners.go): the transaction last signed for it,
	// written before it is broadcast; what it paid; why it waits or died.
	TxHash    string    `json:"tx_hash,omitempty"`
	TxNonce   int64     `json:"tx_nonce"` // -1: none yet
	TxRaw     []byte    `json:"-"`        // the signed transaction, to broadcast again after a crash
	Payout    *Amount   `json:"payout,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Attempts  int       `json:"attempts"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// PaymentRequest is a payment to receive.
type PaymentRequest struct {
	// To is the account the payment's credits go to: a pool (created if
	// needed) or an open job.
	To Ref
	// Session keys the nonces (a PM recipientRandHash); empty when the
	// payment carries no tickets.
	Session string
	// SessionExpiry is when the session's nonces may be forgotten (a block
	// number for PM); see ForgetSessions.
	SessionExpiry int64
	// Nonces are the nonces the payment presents, in order.
	Nonces []uint32
	// Decide applies the scheme's rule to the session as it stands in the
	// transaction. It may be called more than once (a store retrying its
	// transaction), so it must depend only on its argument.
	Decide func(seen NonceView) (PaymentDecision, error)
}

// PaymentResult is the outcome of ReceivePayment.
type PaymentResult struct {
	// Credited is what this call added to the account.
	Credited Amount `json:"credited"`
	// Balance is the account's balance after the payment.
	Balance Amount `json:"balance"`
	// Tickets is how many tickets earned credit now; Replayed how many of
	// those had already been credited (by key) and added nothing.
	Tickets  int `json:"tickets"`
	Replayed int `json:"replayed"`
	// Winners is how many winning tickets were queued.
	Winners int `json:"winners"`
}

// ReceivePayment records a payment atomically, as described above.
//
// Errors: ErrInvalidInput, ErrNotFound (job), ErrJobClosed, ErrJobExpired,
// ErrIdempotencyConflict (a ticket key used for something else),
// ErrAmountOverflow, or Decide's error. Nothing is recorded on error.
func (l *Ledger) ReceivePayment(ctx context.Context, req PaymentRequest) (PaymentResult, error) {
	if err := checkPayment(req); err != nil {
		return PaymentResult{}, err
	}
	return run[PaymentResult](ctx, l, &paymentOp{req: req})
}

func checkPayment(req PaymentRequest) error {
	err := req.To.Validate()
	switch {
	case err != nil:
	case req.Decide == nil:
		err = fmt.Errorf("%w: payment without a rule", ErrInvalidInput)
	case len(req.Nonces) > MaxNoncesPerPayment:
		err = fmt.Errorf("%w: %d tickets in one payment (max %d)", ErrInvalidInput, len(req.Nonces), MaxNoncesPerPayment)
	case len(req.Nonces) > 0:
		err = checkName("session", req.Session, true)
	}
	return err
}

// sessionState is a batch's view of one ticket session.
type sessionState struct {
	known  map[uint32]bool // nonce → recorded (only nonces asked about)
	base   int             // nonces recorded before the batch
	added  []uint32        // recorded by this batch
	expiry int64
	read   int64 // expiry before the batch
}

func (s *sessionState) Contains(n uint32) bool { return s.known[n] }
func (s *sessionState) Len() int               { return s.base + len(s.added) }

// session returns the batch's view of session, loading from the store what
// it does not know yet about nonces.
func (st *batchState) session(name string, nonces []uint32) (*sessionState, error) {
	if err := st.loadSessions([]NonceQuery{{Session: name, Nonces: nonces}}); err != nil {
		return nil, err
	}
	return st.sessions[name], nil
}

// loadSessions reads what the batch does not know yet of these sessions:
// their nonce counts and expiries, and which of the nonces they hold.
func (st *batchState) loadSessions(queries []NonceQuery) error {
	var ask []NonceQuery
	at := map[string]int{} // session → its query in ask
	for _, q := range queries {
		s := st.sessions[q.Session]
		if s == nil {
			s = &sessionState{known: map[uint32]bool{}, base: -1}
			st.sessions[q.Session] = s
		}
		i, asked := at[q.Session]
		for _, n := range q.Nonces {
			if _, ok := s.known[n]; ok {
				continue
			}
			if !asked {
				i, asked = len(ask), true
				at[q.Session] = i
				ask = append(ask, NonceQuery{Session: q.Session})
			}
			ask[i].Nonces = append(ask[i].Nonces, n)
			s.known[n] = false // unless found below
		}
		if !asked && s.base < 0 {
			at[q.Session] = len(ask)
			ask = append(ask, NonceQuery{Session: q.Session})
		}
	}
	if len(ask) == 0 {
		return nil
	}
	got, err := st.tx.NonceState(st.ctx, ask)
	if err != nil {
		return err
	}
	for _, q := range ask {
		s := st.sessions[q.Session]
		g := got[q.Session]
		for _, n := range g.Recorded {
			s.known[n] = true
		}
		if s.base < 0 {
			s.base, s.expiry, s.read = g.Count, g.Expiry, g.Expiry // 0, 0 for a new session
		}
	}
	return nil
}

type paymentOp struct {
	req PaymentRequest
}

func (p *paymentOp) refs() []Ref { return []Ref{p.req.To} }
func (p *paymentOp) key() string { return "" }
func (p *paymentOp) nonceQuery() (NonceQuery, bool) {
	return NonceQuery{Session: p.req.Session, Nonces: p.req.Nonces}, len(p.req.Nonces) > 0
}

func (p *paymentOp) apply(o *opCtx) (any, error) {
	r := p.req
	a := o.account(r.To)
	switch {
	case a == nil && r.To.Kind == KindPool:
		a = o.create(Account{Ref: r.To, State: StateOpen})
	case a == nil:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, r.To)
	case r.To.Kind == KindJob:
		if err := o.usable(a); err != nil {
			return nil, err
		}
	}
	var sess *sessionState
	view := NonceView(emptyNonces{})
	if len(r.Nonces) > 0 {
		var err error
		if sess, err = o.st.session(r.Session, r.Nonces); err != nil {
			return nil, err
		}
		view = sess
	}
	d, err := r.Decide(view)
	if err != nil {
		return nil, err
	}
	if len(d.Accepted) > 0 && sess == nil {
		return nil, errors.New("ledger: payment rule accepted nonces of a payment that presented none")
	}
	res := PaymentResult{}
	keys := make([]string, len(d.Credits))
	for i, c := range d.Credits {
		keys[i] = c.Key
	}
	if err := o.st.loadKeys(keys); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range d.Credits {
		if err := firstErr(checkKey(c.Key), checkAmount("ticket credit", c.Amount)); err != nil {
			return nil, err
		}
		if seen[c.Key] {
			return nil, fmt.Errorf("%w: ticket key %q twice in one payment", ErrInvalidInput, c.Key)
		}
		seen[c.Key] = true
		hash := inputHash(string(EntryCredit), r.To.Encode(), c.Amount.String())
		e, err := o.replayed(c.Key, hash)
		if err != nil {
			return nil, err
		}
		res.Tickets++
		if e != nil {
			res.Replayed++
			continue
		}
		nb, err := addChecked(a.Balance, c.Amount)
		if err != nil {
			return nil, err
		}
		a.Balance = nb
		a.Credited = a.Credited.Add(c.Amount)
		res.Credited = res.Credited.Add(c.Amount)
		o.entry(Entry{Kind: EntryCredit, To: a.ID, Amount: c.Amount, Key: c.Key, InputHash: hash, BalanceAfter: nb})
	}
	if res.Tickets > res.Replayed {
		o.touch(a)
	}
	for _, w := range d.Winners {
		if err := firstErr(checkKey(w.Key), checkAmount("face value", w.FaceValue)); err != nil {
			return nil, err
		}
		w.Account, w.QueuedAt, w.State, w.TxNonce = r.To, o.now(), WinnerQueued, -1
		if w.Session == "" {
			w.Session = r.Session
		}
		if w.RedeemAfter == 0 {
			w.RedeemAfter = r.SessionExpiry
		}
		o.winners = append(o.winners, w)
	}
	res.Winners = len(d.Winners)
	if len(d.Accepted) > 0 {
		o.nonces = append(o.nonces, acceptedNonces{sess: sess, name: r.Session, expiry: r.SessionExpiry, nonces: d.Accepted})
	}
	res.Balance = a.Balance
	return res, nil
}

type emptyNonces struct{}

func (emptyNonces) Contains(uint32) bool { return false }
func (emptyNonces) Len() int             { return 0 }

// acceptedNonces are an op's nonces to record, published on commit.
type acceptedNonces struct {
	sess   *sessionState
	name   string
	expiry int64
	nonces []uint32
}

// Winner states (winners.go): queued → submitted → redeemed, or dead.
const (
	WinnerQueued    = "queued"
	WinnerSubmitted = "submitted"
	WinnerRedeemed  = "redeemed"
	WinnerDead      = "dead"
	// WinnerFailed is the dead state's name before migration 0007; nothing
	// writes it.
	WinnerFailed = "failed"
)

// flushTickets writes the batch's nonces and winners.
func (st *batchState) flushTickets(realID func(int64) int64) error {
	var rec []SessionNonces
	for name, s := range st.sessions {
		if len(s.added) > 0 {
			rec = append(rec, SessionNonces{Session: name, Expiry: s.expiry, Count: s.base, Read: s.read, Nonces: s.added})
		}
	}
	if len(rec) > 0 {
		sort.Slice(rec, func(i, j int) bool { return rec[i].Session < rec[j].Session })
		if err := st.tx.RecordNonces(st.ctx, rec); err != nil {
			return err
		}
	}
	if len(st.winners) == 0 {
		return nil
	}
	rows := make([]*WinnerRow, len(st.winners))
	for i := range st.winners {
		w := &st.winners[i]
		rows[i] = &WinnerRow{Winner: *w, AccountID: realID(st.byRef[w.Account].ID)}
	}
	return st.tx.InsertWinners(st.ctx, rows)
}

// WinnerRow is a Winner as stored, with its account's ID.
type WinnerRow struct {
	Winner
	AccountID int64
}

// Winners lists queued (or, with state "", all) winning tickets, oldest first.
func (l *Ledger) Winners(ctx context.Context, state string, limit int) ([]Winner, error) {
	var out []Winner
	err := l.store.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.Winners(ctx, state, limit)
		return err
	})
	if out == nil {
		out = []Winner{} // JSON []: none, not null
	}
	return out, err
}

// ForgetSessions deletes the nonces of ticket sessions whose expiry is at or
// below expiry, and returns how many sessions it forgot. Their tickets can
// no longer earn credit (the scheme rejects expired params), and a ticket
// credited before keeps its key, so nothing can be credited twice.
func (l *Ledger) ForgetSessions(ctx context.Context, expiry int64) (int, error) {
	var n int
	err := l.store.Update(ctx, func(tx Tx) (err error) {
		n, err = tx.ForgetSessions(ctx, expiry)
		return err
	})
	return n, err
}
