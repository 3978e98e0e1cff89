package ledger

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// An op is one ledger operation, validated before it is queued and applied
// inside a batch. apply must read and write accounts only through o, so a
// failing op leaves no trace.
type op interface {
	// refs are the accounts the op names directly; the pools of named jobs
	// are loaded too.
	refs() []Ref
	// key is the idempotency key, or "".
	key() string
	apply(o *opCtx) (any, error)
}

// batchState is what a batch of ops sees inside one store transaction:
// every account it may touch, loaded (and locked) up front, and the changes
// of the ops applied so far.
type batchState struct {
	ctx context.Context
	tx  Tx
	now time.Time
	// lookupKeys: idempotency keys are looked up before they are used.
	// Without, they are assumed new (they nearly always are) and flush's
	// InsertEntries finds out otherwise (ErrKeyTaken); applyOps then
	// applies the batch again, looking them up.
	lookupKeys bool
	assumed    map[string]bool // keys taken to be new without a lookup
	byRef      map[Ref]*Account
	keys       map[string]*Entry
	dirty      map[*Account]bool // existing accounts changed by the batch
	created    []*Account        // new accounts, with temporary negative IDs
	entries    []*Entry
	nextTemp   int64
	sessions   map[string]*sessionState
	winners    []Winner
	outbox     []*OutboxEvent
	// op is the opCtx that begin hands out again for each op; accts and
	// ents hold the ops' account copies and entries, a few allocations
	// for the whole batch.
	op    opCtx
	accts []Account
	ents  []Entry
}

// newBatchState starts the state of a batch of n ops, its maps and slabs
// sized for them: an op touches about two accounts and writes about two
// entries, one or two of them keyed.
func newBatchState(ctx context.Context, tx Tx, now time.Time, lookupKeys bool, n int) *batchState {
	return &batchState{ctx: ctx, tx: tx, now: now, lookupKeys: lookupKeys,
		assumed: make(map[string]bool, 2*n), byRef: make(map[Ref]*Account, 4*n), keys: make(map[string]*Entry, 2*n),
		dirty: make(map[*Account]bool, n), sessions: map[string]*sessionState{},
		accts: make([]Account, 0, 2*n), ents: make([]Entry, 0, 2*n)}
}

// newAccount returns a place for an account of the batch.
func (st *batchState) newAccount() *Account {
	if len(st.accts) == cap(st.accts) {
		st.accts = make([]Account, 0, 16)
	}
	st.accts = st.accts[:len(st.accts)+1]
	return &st.accts[len(st.accts)-1]
}

// newEntry returns a place for an entry of the batch.
func (st *batchState) newEntry() *Entry {
	if len(st.ents) == cap(st.ents) {
		st.ents = make([]Entry, 0, 16)
	}
	st.ents = st.ents[:len(st.ents)+1]
	return &st.ents[len(st.ents)-1]
}

// noncer is an op that presents ticket nonces, which prefetch loads.
type noncer interface {
	nonceQuery() (NonceQuery, bool)
}

// prefetch loads the accounts, idempotency entries and ticket sessions that
// ops will need.
func (st *batchState) prefetch(ops []op) error {
	refs := make([]Ref, 0, 2*len(ops))
	keys := make([]string, 0, len(ops))
	var nq []NonceQuery
	for _, op := range ops {
		refs = append(refs, op.refs()...)
		if k := op.key(); k != "" {
			keys = append(keys, k)
		}
		if n, ok := op.(noncer); ok {
			if q, ok := n.nonceQuery(); ok {
				nq = append(nq, q)
			}
		}
	}
	refs = dedupRefs(refs)
	ask := st.askSessions(nq)
	if p, ok := st.tx.(Prefetcher); ok && len(refs) > 0 && len(ask) > 0 {
		accts, got, err := p.Prefetch(st.ctx, refs, ask)
		if err != nil {
			return err
		}
		st.loaded(accts)
		st.readSessions(ask, got)
		return st.loadKeys(keys)
	}
	if err := st.load(refs); err != nil {
		return err
	}
	if err := st.fetchSessions(ask); err != nil {
		return err
	}
	return st.loadKeys(keys)
}

// loadKeys reads the entries of those idempotency keys the batch has not
// looked up yet (or, without lookupKeys, takes them to be new).
func (st *batchState) loadKeys(keys []string) error {
	var ask []string
	for _, k := range keys {
		if _, known := st.keys[k]; !known {
			ask = append(ask, k)
			st.keys[k] = nil // known to be absent unless found below
		}
	}
	if len(ask) == 0 {
		return nil
	}
	if !st.lookupKeys {
		for _, k := range ask {
			st.assumed[k] = true
		}
		return nil
	}
	es, err := st.tx.EntriesByKey(st.ctx, ask)
	if err != nil {
		return err
	}
	for i := range es {
		st.keys[es[i].Key] = &es[i]
	}
	return nil
}

// apply applies one op. An op that fails after taking keys to be new may
// have failed for want of a replay (a replayed op is answered before any
// other check): its keys are then looked up, and if one is found, the op
// is applied again. A failed op changed nothing.
// The returned error is the store's; the op's own is in the result.
func (st *batchState) apply(op op) (result, error) {
	o := st.begin()
	v, err := op.apply(o)
	if err != nil && len(o.assumed) > 0 {
		found, serr := st.verifyKeys(o.assumed)
		if serr != nil {
			return result{}, serr
		}
		if found {
			o = st.begin()
			v, err = op.apply(o)
		}
	}
	if err == nil {
		o.commit()
	}
	return result{v, err}, nil
}

// verifyKeys looks up keys that were taken to be new, and reports whether
// one of them was taken after all.
func (st *batchState) verifyKeys(keys []string) (bool, error) {
	var ask []string
	for _, k := range keys {
		if st.assumed[k] {
			delete(st.assumed, k)
			ask = append(ask, k)
		}
	}
	if len(ask) == 0 {
		return false, nil
	}
	es, err := st.tx.EntriesByKey(st.ctx, ask)
	if err != nil {
		return false, err
	}
	for i := range es {
		st.keys[es[i].Key] = &es[i]
	}
	return len(es) > 0, nil
}

func (st *batchState) load(refs []Ref) error {
	if len(refs) == 0 {
		return nil
	}
	accts, err := st.tx.LoadAccounts(st.ctx, refs)
	if err != nil {
		return err
	}
	st.loaded(accts)
	return nil
}

// loaded takes accounts the store read (pointing into accts).
func (st *batchState) loaded(accts []Account) {
	for i := range accts {
		st.byRef[accts[i].Ref] = &accts[i]
	}
}

// dedupRefs sorts refs, in place, and drops repeats. A stable order makes
// concurrent writers lock rows in the same order: that of the encoded
// references (see compareRefs).
func dedupRefs(refs []Ref) []Ref {
	slices.SortFunc(refs, compareRefs)
	return slices.Compact(refs)
}

// compareRefs orders references as their encodings (Ref.Encode) do, without
// encoding them: field by field, since a valid name holds no control
// character, so none sorts below the separator.
func compareRefs(a, b Ref) int {
	return cmp.Or(strings.Compare(string(a.Kind), string(b.Kind)), strings.Compare(a.Sender, b.Sender),
		strings.Compare(a.Name, b.Name), strings.Compare(a.Customer, b.Customer))
}

// flush writes the batch: new pools, then new jobs (which point at pool IDs),
// then changed accounts, then entries (all of them and the nonces in one
// call where the store is a RowWriter).
func (st *batchState) flush() error {
	// The real ID of temporary ID -1-i is real[i].
	real := make([]int64, -st.nextTemp)
	mapID := func(id int64) int64 {
		if id < 0 {
			return real[-1-id]
		}
		return id
	}
	changed := make([]*Account, 0, len(st.dirty))
	for a := range st.dirty {
		changed = append(changed, a)
	}
	slices.SortFunc(changed, func(a, b *Account) int { return cmp.Compare(a.ID, b.ID) })
	if w, ok := st.tx.(RowWriter); ok {
		temps := make([]int64, len(st.created))
		for i, a := range st.created {
			temps[i] = a.ID
		}
		wctx := st.ctx
		if len(st.outbox) == 0 && len(st.winners) == 0 {
			wctx = FinalWrite(wctx)
		}
		if err := w.WriteRows(wctx, st.created, changed, st.entries, st.nonceRecords()); err != nil {
			return err
		}
		for i, a := range st.created {
			real[-1-temps[i]] = a.ID
		}
		if err := st.flushOutbox(); err != nil {
			return err
		}
		return st.flushWinners(mapID)
	}
	batch := make([]*Account, 0, len(st.created))
	temps := make([]int64, 0, len(st.created))
	for _, kind := range []Kind{KindPool, KindJob} {
		batch, temps = batch[:0], temps[:0]
		for _, a := range st.created {
			if a.Ref.Kind == kind {
				a.PoolID = mapID(a.PoolID)
				temps = append(temps, a.ID)
				batch = append(batch, a)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := st.tx.InsertAccounts(st.ctx, batch); err != nil {
			return err
		}
		for i, a := range batch {
			real[-1-temps[i]] = a.ID
		}
	}
	if len(changed) > 0 {
		if err := st.tx.UpdateAccounts(st.ctx, changed); err != nil {
			return err
		}
	}
	for _, e := range st.entries {
		e.From, e.To = mapID(e.From), mapID(e.To)
	}
	if len(st.entries) > 0 {
		if err := st.tx.InsertEntries(st.ctx, st.entries); err != nil {
			return err
		}
	}
	if err := st.flushOutbox(); err != nil {
		return err
	}
	if rec := st.nonceRecords(); len(rec) > 0 {
		if err := st.tx.RecordNonces(st.ctx, rec); err != nil {
			return err
		}
	}
	return st.flushWinners(mapID)
}

// flushOutbox writes the batch's outbox events.
func (st *batchState) flushOutbox() error {
	if len(st.outbox) == 0 {
		return nil
	}
	return st.tx.InsertOutbox(st.ctx, st.outbox)
}

// opCtx is one op's private view of the batch: copies of the accounts it
// touched, its new accounts and entries. commit publishes them to the batch;
// a failed op is simply dropped.
type opCtx struct {
	st      *batchState
	touched map[Ref]*Account
	created []*Account
	entries []*Entry
	nonces  []acceptedNonces
	winners []Winner
	outbox  []*OutboxEvent
	assumed []string // keys the op took to be new without a lookup
}

// begin starts an op: the batch's opCtx, emptied (the last op's is
// committed or dropped by then).
func (st *batchState) begin() *opCtx {
	o := &st.op
	if o.touched == nil {
		o.st, o.touched = st, map[Ref]*Account{}
	}
	o.discard()
	o.assumed = o.assumed[:0]
	return o
}

func (o *opCtx) now() time.Time { return o.st.now }

// account returns the op's working copy of ref, or nil if it does not exist.
func (o *opCtx) account(ref Ref) *Account {
	if a, ok := o.touched[ref]; ok {
		return a
	}
	a, ok := o.st.byRef[ref]
	if !ok {
		return nil
	}
	c := o.st.newAccount()
	*c = *a
	o.touched[ref] = c
	return c
}

// create makes a new account with a temporary ID.
func (o *opCtx) create(a Account) *Account {
	o.st.nextTemp--
	a.ID = o.st.nextTemp
	a.OpenedAt, a.UpdatedAt = o.now(), o.now()
	p := o.st.newAccount()
	*p = a
	o.touched[a.Ref] = p
	o.created = append(o.created, p)
	return p
}

func (o *opCtx) entry(e Entry) {
	e.At = o.now()
	p := o.st.newEntry()
	*p = e
	o.entries = append(o.entries, p)
}

// replayed looks for an earlier entry with the op's key. It returns the
// entry when the inputs match, ErrIdempotencyConflict when they do not.
func (o *opCtx) replayed(key, hash string) (*Entry, error) {
	e := o.st.keys[key]
	if e == nil {
		if o.st.assumed[key] {
			o.assumed = append(o.assumed, key)
		}
		return nil, nil
	}
	if e.InputHash != hash {
		return nil, fmt.Errorf("%w: key %q", ErrIdempotencyConflict, key)
	}
	return e, nil
}

// discard drops everything the op did so far, as if it had failed: it
// then succeeds without a trace.
func (o *opCtx) discard() {
	clear(o.touched)
	o.created, o.entries, o.nonces = o.created[:0], o.entries[:0], o.nonces[:0]
	o.winners, o.outbox = o.winners[:0], o.outbox[:0]
}

func (o *opCtx) commit() {
	o.st.created = append(o.st.created, o.created...)
	for ref, c := range o.touched {
		if slices.Contains(o.created, c) {
			o.st.byRef[ref] = c
			continue
		}
		orig := o.st.byRef[ref]
		if *orig == *c {
			continue
		}
		*orig = *c
		if orig.ID > 0 {
			o.st.dirty[orig] = true
		}
	}
	for _, e := range o.entries {
		o.st.entries = append(o.st.entries, e)
		if e.Key != "" {
			o.st.keys[e.Key] = e
		}
	}
	for _, a := range o.nonces {
		if a.sess.expiry < a.expiry {
			a.sess.expiry = a.expiry
		}
		for _, n := range a.nonces {
			if !a.sess.known[n] {
				a.sess.known[n] = true
				a.sess.added = append(a.sess.added, n)
			}
		}
	}
	o.st.winners = append(o.st.winners, o.winners...)
	o.st.outbox = append(o.st.outbox, o.outbox...)
}

// event writes ev to the outbox with the op's other writes.
func (o *opCtx) event(ev *OutboxEvent) {
	if ev == nil {
		return
	}
	e := *ev
	e.At = o.now()
	o.outbox = append(o.outbox, &e)
}

// inputHash hashes parts, each as "<length>:<part>;".
func inputHash(parts ...string) string {
	var buf [256]byte
	b := buf[:0]
	for _, p := range parts {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
		b = append(b, ';')
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// usable checks that money may move into or out of a job now.
func (o *opCtx) usable(job *Account) error {
	switch {
	case job.State.IsFinal():
		return fmt.Errorf("%w: %s is %s", ErrJobClosed, job.Ref, job.State)
	case !job.ExpiresAt.After(o.now()):
		return fmt.Errorf("%w: %s was idle past its TTL of %s", ErrJobExpired, job.Ref, job.TTL)
	}
	return nil
}

// touch records activity: a job's TTL starts again.
func (o *opCtx) touch(a *Account) {
	a.UpdatedAt = o.now()
	if a.Ref.Kind == KindJob && a.State == StateOpen {
		a.ExpiresAt = o.now().Add(a.TTL)
	}
}

func addChecked(a, b Amount) (Amount, error) {
	s := a.Add(b)
	if s.outOfRange() {
		return Amount{}, fmt.Errorf("%w: %s + %s", ErrAmountOverflow, a, b)
	}
	return s, nil
}

// move transfers amt (≥ 0) from one account to another.
func (o *opCtx) move(kind EntryKind, from, to *Account, amt Amount, after *Account) error {
	if amt.IsZero() {
		return nil
	}
	nb, err := addChecked(to.Balance, amt)
	if err != nil {
		return err
	}
	fb, err := addChecked(from.Balance, amt.Neg())
	if err != nil {
		return err
	}
	to.Balance, from.Balance = nb, fb
	to.MovedIn = to.MovedIn.Add(amt)
	from.MovedOut = from.MovedOut.Add(amt)
	o.entry(Entry{Kind: kind, From: from.ID, To: to.ID, Amount: amt, BalanceAfter: after.Balance})
	return nil
}

// ---- Credit ----

type creditOp struct {
	ref    Ref
	amount Amount
	k      string
	event  *OutboxEvent // written with the credit, if any
}

func (c *creditOp) refs() []Ref { return []Ref{c.ref} }
func (c *creditOp) key() string { return c.k }
func (c *creditOp) hash() string {
	return inputHash(string(EntryCredit), c.ref.Encode(), c.amount.String())
}

func (c *creditOp) apply(o *opCtx) (any, error) {
	hash := c.hash()
	if e, err := o.replayed(c.k, hash); err != nil || e != nil {
		if err != nil {
			return nil, err
		}
		return CreditResult{Balance: e.BalanceAfter, Replayed: true}, nil
	}
	a := o.account(c.ref)
	switch {
	case a == nil && c.ref.Kind == KindPool:
		a = o.create(Account{Ref: c.ref, State: StateOpen})
	case a == nil:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, c.ref)
	case c.ref.Kind == KindJob:
		if err := o.usable(a); err != nil {
			return nil, err
		}
	}
	nb, err := addChecked(a.Balance, c.amount)
	if err != nil {
		return nil, err
	}
	a.Balance = nb
	a.Credited = a.Credited.Add(c.amount)
	o.touch(a)
	o.entry(Entry{Kind: EntryCredit, To: a.ID, Amount: c.amount, Key: c.k, InputHash: hash, BalanceAfter: nb})
	o.event(c.event)
	return CreditResult{Balance: nb}, nil
}

// ---- Charge ----

type chargeOp struct {
	ref    Ref
	amount Amount
	grace  Amount
	k      string
	// upTo: charge amount or, if the account holds less, its balance
	// (nothing when that is not positive); grace is then unused.
	upTo  bool
	event *OutboxEvent // written with the charge, if any
	// more, if set, decides further events from the account before and
	// after the charge (ChargeWithEvents).
	more func(before, after Account) []OutboxEvent
	// also are further accounts charged the same amount in the same
	// transaction, each unable to go below zero (ChargeAlso); their
	// entries' keys are the charge's with "|also<i>".
	also []Ref
}

func (c *chargeOp) refs() []Ref { return append([]Ref{c.ref}, c.also...) }
func (c *chargeOp) key() string { return c.k }
func (c *chargeOp) hash() string {
	if len(c.also) > 0 {
		parts := []string{string(EntryCharge), c.ref.Encode(), c.amount.String(), "also"}
		for _, r := range c.also {
			parts = append(parts, r.Encode())
		}
		return inputHash(parts...)
	}
	if c.upTo {
		return inputHash(string(EntryCharge), "up-to", c.ref.Encode(), c.amount.String())
	}
	return inputHash(string(EntryCharge), c.ref.Encode(), c.amount.String())
}

func (c *chargeOp) apply(o *opCtx) (any, error) {
	hash := c.hash()
	if e, err := o.replayed(c.k, hash); err != nil || e != nil {
		if err != nil {
			return nil, err
		}
		return ChargeResult{Balance: e.BalanceAfter, Charged: e.Amount, Replayed: true}, nil
	}
	a := o.account(c.ref)
	if a == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, c.ref)
	}
	if c.ref.Kind == KindJob {
		if err := o.usable(a); err != nil {
			return nil, err
		}
	}
	amount := c.amount
	if c.upTo {
		amount = MinAmount(amount, MaxOf(a.Balance, Amount{}))
	}
	nb := a.Balance.Sub(amount)
	if !c.upTo && nb.Cmp(c.grace.Neg()) < 0 {
		return nil, fmt.Errorf("%w: %s holds %s, charge %s, grace %s", ErrInsufficientFunds, c.ref, a.Balance, amount, c.grace)
	}
	if nb.outOfRange() {
		return nil, fmt.Errorf("%w: %s - %s", ErrAmountOverflow, a.Balance, amount)
	}
	for i, r := range c.also {
		b := o.account(r)
		if b == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, r)
		}
		bb := b.Balance.Sub(amount)
		if bb.Sign() < 0 {
			return nil, fmt.Errorf("%w: %s holds %s, charge %s", ErrInsufficientFunds, r, b.Balance, amount)
		}
		b.Balance = bb
		b.Charged = b.Charged.Add(amount)
		o.touch(b)
		k := fmt.Sprintf("%s|also%d", c.k, i)
		o.entry(Entry{Kind: EntryCharge, From: b.ID, Amount: amount, Key: k, InputHash: inputHash(string(EntryCharge), r.Encode(), amount.String()), BalanceAfter: bb})
	}
	before := *a
	a.Balance = nb
	a.Charged = a.Charged.Add(amount)
	var more []OutboxEvent
	if c.more != nil {
		more = c.more(before, *a)
		for i := range more {
			if err := more[i].check(); err != nil {
				return nil, err
			}
		}
	}
	o.touch(a)
	o.entry(Entry{Kind: EntryCharge, From: a.ID, Amount: amount, Key: c.k, InputHash: hash, BalanceAfter: nb})
	o.event(c.event)
	for i := range more {
		o.event(&more[i])
	}
	return ChargeResult{Balance: nb, Charged: amount, Events: more}, nil
}

// ---- OpenJob ----

type openJobOp struct {
	req OpenJobRequest
}

func (j *openJobOp) refs() []Ref { return []Ref{j.req.Job.Ref(), j.req.Pool().Ref()} }
func (j *openJobOp) key() string { return "" }

func (j *openJobOp) apply(o *opCtx) (any, error) {
	r := j.req
	poolRef := r.Pool().Ref()
	job := o.account(r.Job.Ref())
	created := job == nil
	if job != nil {
		if job.PoolRef != poolRef {
			return nil, fmt.Errorf("%w: %s belongs to %s, not %s", ErrJobMismatch, job.Ref, job.PoolRef, poolRef)
		}
		if err := o.usable(job); err != nil {
			return nil, err
		}
	}
	pool := o.account(poolRef)
	if pool == nil {
		pool = o.create(Account{Ref: poolRef, State: StateOpen})
	}
	if created {
		job = o.create(Account{Ref: r.Job.Ref(), PoolRef: poolRef, PoolID: pool.ID, State: StateOpen, TTL: r.TTL})
	} else if r.TTL > 0 {
		job.TTL = r.TTL
	}
	want := MaxOf(r.Reserve.Sub(job.Balance), Amount{})
	draw := MinAmount(want, MaxOf(pool.Balance, Amount{}))
	if job.Balance.Add(draw).Cmp(r.Minimum) < 0 {
		return nil, fmt.Errorf("%w: %s needs %s, holds %s and its pool %s", ErrInsufficientFunds,
			job.Ref, r.Minimum, job.Balance, pool.Balance)
	}
	if err := o.move(EntryReserve, pool, job, draw, job); err != nil {
		return nil, err
	}
	o.touch(job)
	if !draw.IsZero() {
		o.touch(pool)
	}
	return OpenJobResult{Balance: job.Balance, Drawn: draw, PoolBalance: pool.Balance, Created: created}, nil
}

// ---- CloseJob / expiry ----

type closeJobOp struct {
	job JobKey
	// expire marks the sweeper: it only acts on jobs still past their TTL.
	expire bool
}

func (c *closeJobOp) refs() []Ref { return []Ref{c.job.Ref()} }
func (c *closeJobOp) key() string { return "" }

func (c *closeJobOp) apply(o *opCtx) (any, error) {
	job := o.account(c.job.Ref())
	if job == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, c.job.Ref())
	}
	pool := o.account(job.PoolRef)
	if pool == nil {
		return nil, fmt.Errorf("ledger: %s has no pool %s", job.Ref, job.PoolRef)
	}
	if job.State.IsFinal() {
		return CloseJobResult{State: job.State, PoolBalance: pool.Balance, Replayed: true}, nil
	}
	if c.expire && job.ExpiresAt.After(o.now()) {
		// Touched since the sweeper looked: still alive.
		return CloseJobResult{State: job.State, PoolBalance: pool.Balance, Replayed: true}, nil
	}
	kind, state := EntryRelease, StateClosed
	if c.expire {
		kind, state = EntryExpire, StateExpired
	}
	released := job.Balance
	var err error
	if released.Sign() >= 0 {
		err = o.move(kind, job, pool, released, job)
	} else {
		err = o.move(kind, pool, job, released.Neg(), job)
	}
	if err != nil {
		return nil, err
	}
	job.State, job.ClosedAt, job.ExpiresAt, job.UpdatedAt = state, o.now(), time.Time{}, o.now()
	pool.UpdatedAt = o.now()
	return CloseJobResult{State: state, Released: released, PoolBalance: pool.Balance}, nil
}
