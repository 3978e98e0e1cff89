package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Payments made of tickets (Livepeer PM, or any scheme with per-session
// nonces) are received by ReceivePayment in one atomic step: the session's
// seen nonces are read, the ledger's nonce rule decides which tickets are
// new, and the recorded nonces, the credits (one entry per ticket, keyed by
// the ticket's hash) and the winning tickets are stored together. The
// request is data — the tickets in order, what each earns, the session's
// cap — so nothing runs above the ledger inside its transaction. A ticket
// replayed later, also after a restart, finds its nonce recorded; a ticket
// credited twice by any path finds its key taken.

// MaxNoncesPerPayment bounds the tickets of one payment.
const MaxNoncesPerPayment = 4096

// PaymentTicket is one ticket of a payment, in the order the payer sent it.
type PaymentTicket struct {
	// Credit is what the ticket earns, under its own key (the ticket's
	// hash). It is ignored for a Refused ticket.
	Credit PaymentCredit
	// Nonce is the ticket's nonce in the session: checked by the nonce
	// rule and recorded when new, unless NoNonce.
	Nonce uint32
	// NoNonce: the ticket presents no nonce to check or record (a ticket
	// whose signature failed, or a credit booked by the payer).
	NoNonce bool
	// Refused: the payer's scheme refused the ticket (a bad signature,
	// expired params): it earns nothing, whatever its nonce; a new nonce
	// is still recorded.
	Refused bool
}

// NonceVerdict is what the nonce rule found of one ticket's nonce.
type NonceVerdict uint8

const (
	// NonceUnchecked: the ticket presented no nonce (NoNonce).
	NonceUnchecked NonceVerdict = iota
	// NonceNew: the nonce is new to the session and is recorded now.
	NonceNew
	// NonceSeen: the session holds the nonce already (a replay), or the
	// payment presented it before.
	NonceSeen
	// NonceTooMany: the session holds MaxNonces nonces already.
	NonceTooMany
)

func (v NonceVerdict) String() string {
	switch v {
	case NonceUnchecked:
		return "unchecked"
	case NonceNew:
		return "new"
	case NonceSeen:
		return "seen"
	case NonceTooMany:
		return "too many"
	}
	return "unknown"
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
	// Session keys the nonces (a PM recipientRandHash); empty when no
	// ticket presents a nonce.
	Session string
	// SessionExpiry is when the session's nonces may be forgotten (a block
	// number for PM); see ForgetSessions.
	SessionExpiry int64
	// MaxNonces caps the nonces one session records (0: no cap): a nonce
	// that would go past it is NonceTooMany.
	MaxNonces int
	// Tickets are the payment's tickets, in order. A ticket earns its
	// credit when it is not Refused and its nonce is new (or it has none).
	Tickets []PaymentTicket
	// Chained: a ticket earns its credit only when every ticket before it
	// in the payment did (PM's rule: one bad ticket stops the credit of
	// the rest of its payment; their new nonces are still recorded).
	Chained bool
	// Winners are winning tickets to queue for redemption, credited or
	// not (queuing is idempotent by key), each under its ticket's credit
	// key; one whose ticket's nonce the rule finds seen (a replay) or one
	// too many is not queued, so a replayed payment moves nothing.
	Winners []Winner
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
	// Nonces has what the nonce rule found of each ticket, in the order
	// of the request's Tickets.
	Nonces []NonceVerdict `json:"nonces,omitempty"`
}

// ReceivePayment records a payment atomically, as described above.
//
// Errors: ErrInvalidInput, ErrNotFound (job), ErrJobClosed, ErrJobExpired,
// ErrIdempotencyConflict (a ticket key used for something else),
// ErrAmountOverflow. Nothing is recorded on error.
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
	case len(req.Tickets) > MaxNoncesPerPayment:
		err = fmt.Errorf("%w: %d tickets in one payment (max %d)", ErrInvalidInput, len(req.Tickets), MaxNoncesPerPayment)
	case req.MaxNonces < 0:
		err = fmt.Errorf("%w: negative nonce cap", ErrInvalidInput)
	case len(req.nonces()) > 0:
		err = checkName("session", req.Session, true)
	}
	return err
}

// nonces are the nonces the payment presents, in order.
func (req *PaymentRequest) nonces() []uint32 {
	var out []uint32
	for _, t := range req.Tickets {
		if !t.NoNonce {
			out = append(out, t.Nonce)
		}
	}
	return out
}

// sessionState is a batch's view of one ticket session.
type sessionState struct {
	known  map[uint32]bool // nonce → recorded (only nonces asked about)
	base   int             // nonces recorded before the batch
	added  []uint32        // recorded by this batch
	expiry int64
	read   int64 // expiry before the batch
}

// verdict is the nonce rule, for a nonce presented after a payment
// accepted others (accepted of them, dup when n is one): seen when the
// session or the payment holds it, too many when the session would hold
// more than max (0: no cap), else new.
func (s *sessionState) verdict(n uint32, dup bool, accepted, max int) NonceVerdict {
	switch {
	case dup || s.known[n]:
		return NonceSeen
	case max > 0 && s.base+len(s.added)+accepted >= max:
		return NonceTooMany
	}
	return NonceNew
}

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
	return st.fetchSessions(st.askSessions(queries))
}

// fetchSessions asks the store the queries askSessions made, if any, and
// takes its answer.
func (st *batchState) fetchSessions(ask []NonceQuery) error {
	if len(ask) == 0 {
		return nil
	}
	got, err := st.tx.NonceState(st.ctx, ask)
	if err != nil {
		return err
	}
	st.readSessions(ask, got)
	return nil
}

// askSessions returns what the batch does not know yet of these sessions,
// as queries for NonceState, whose answer readSessions takes.
func (st *batchState) askSessions(queries []NonceQuery) []NonceQuery {
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
	return ask
}

// readSessions takes the store's answer got to the queries ask.
func (st *batchState) readSessions(ask []NonceQuery, got map[string]SessionState) {
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
}

type paymentOp struct {
	req PaymentRequest
}

func (p *paymentOp) refs() []Ref { return []Ref{p.req.To} }
func (p *paymentOp) key() string { return "" }
func (p *paymentOp) nonceQuery() (NonceQuery, bool) {
	n := p.req.nonces()
	return NonceQuery{Session: p.req.Session, Nonces: n}, len(n) > 0
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
	if n := r.nonces(); len(n) > 0 {
		var err error
		if sess, err = o.st.session(r.Session, n); err != nil {
			return nil, err
		}
	}
	d := decide(r, sess)
	res := PaymentResult{Nonces: d.verdicts}
	keys := make([]string, len(d.credits))
	for i, c := range d.credits {
		keys[i] = c.Key
	}
	if err := o.st.loadKeys(keys); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range d.credits {
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
	for _, w := range r.Winners {
		if err := firstErr(checkKey(w.Key), checkAmount("face value", w.FaceValue)); err != nil {
			return nil, err
		}
		if d.replays[w.Key] {
			// A replayed ticket (its nonce seen) queues nothing: it was
			// queued when it first came, or the nonce rule refuses it.
			continue
		}
		w.Account, w.QueuedAt, w.State, w.TxNonce = r.To, o.now(), WinnerQueued, -1
		if w.Session == "" {
			w.Session = r.Session
		}
		if w.RedeemAfter == 0 {
			w.RedeemAfter = r.SessionExpiry
		}
		o.winners = append(o.winners, w)
		res.Winners++
	}
	if len(d.accepted) > 0 {
		o.nonces = append(o.nonces, acceptedNonces{sess: sess, name: r.Session, expiry: r.SessionExpiry, nonces: d.accepted})
	}
	res.Balance = a.Balance
	return res, nil
}

// decision is what the nonce rule and the tickets' terms decide of a
// payment, against the session as the batch sees it (sess nil: no ticket
// presents a nonce).
type decision struct {
	verdicts []NonceVerdict // one per ticket
	accepted []uint32       // the new nonces, to record
	credits  []PaymentCredit
	replays  map[string]bool // keys of tickets whose nonce was seen (or one too many)
}

func decide(r PaymentRequest, sess *sessionState) decision {
	d := decision{verdicts: make([]NonceVerdict, len(r.Tickets))}
	added := map[uint32]bool{}
	stopped := false
	for i, t := range r.Tickets {
		if !t.NoNonce {
			d.verdicts[i] = sess.verdict(t.Nonce, added[t.Nonce], len(d.accepted), r.MaxNonces)
			if d.verdicts[i] == NonceNew {
				added[t.Nonce] = true
				d.accepted = append(d.accepted, t.Nonce)
			}
		}
		replay := d.verdicts[i] == NonceSeen || d.verdicts[i] == NonceTooMany
		if replay && t.Credit.Key != "" {
			if d.replays == nil {
				d.replays = map[string]bool{}
			}
			d.replays[t.Credit.Key] = true
		}
		earns := !t.Refused && !replay
		if earns && !stopped {
			d.credits = append(d.credits, t.Credit)
		}
		stopped = stopped || !earns && r.Chained
	}
	return d
}

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

// nonceRecords are the nonces the batch adds to ticket sessions, by
// session.
func (st *batchState) nonceRecords() []SessionNonces {
	var rec []SessionNonces
	for name, s := range st.sessions {
		if len(s.added) > 0 {
			rec = append(rec, SessionNonces{Session: name, Expiry: s.expiry, Count: s.base, Read: s.read, Nonces: s.added})
		}
	}
	sort.Slice(rec, func(i, j int) bool { return rec[i].Session < rec[j].Session })
	return rec
}

// flushWinners queues the batch's winning tickets.
func (st *batchState) flushWinners(realID func(int64) int64) error {
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
