package journal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"byoc/ledger"
)

// maxRetries bounds how often Update runs fn again after ErrConflict.
const maxRetries = 10

// Update implements ledger.Store. fn reads memory (and, for what memory
// does not hold, the projection) and its writes are collected into one
// record; when fn succeeds the record is appended to the journal and
// synced, then applied to memory and queued for the projection.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	if err := s.waitLag(ctx); err != nil {
		return err
	}
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return ledger.ErrClosed
	}
	if s.broken != nil {
		s.wmu.Unlock()
		return s.broken
	}
	var err error
	var seq uint64
	for attempt := 0; ; attempt++ {
		seq, err = s.updateOnce(ctx, fn)
		if err == nil || !errors.Is(err, ledger.ErrConflict) || attempt >= maxRetries {
			break
		}
	}
	s.wmu.Unlock()
	if err == nil && seq > 0 && ledger.SyncDeferred(ctx) && !s.opts.NormalSync {
		// Acknowledged once written: durable with the next synced
		// Update, or within Options.DeferredSyncWithin.
		s.deferSync()
		return nil
	}
	if err == nil && seq > 0 {
		if f := ledger.Written(ctx); f != nil {
			// What in it may be acknowledged before its sync is.
			f()
		}
		// Acknowledged only once durable; the next Update runs meanwhile.
		if err = s.log.syncTo(seq); err != nil {
			s.wmu.Lock()
			s.broken = err
			s.wmu.Unlock()
		}
	}
	return err
}

// updateOnce runs fn and writes its record; it returns the record's seq
// (0: nothing to write). The record is not durable yet: the caller syncs.
// Memory changes at once, so the next batch builds on this one; should
// the sync fail, the store is broken and acknowledges nothing more.
func (s *Store) updateOnce(ctx context.Context, fn func(ledger.Tx) error) (uint64, error) {
	t := &s.utx
	if t.absent == nil {
		t.absent, t.created, t.newKeys = map[ledger.Ref]bool{}, map[ledger.Ref]bool{}, map[string]bool{}
	}
	clear(t.absent)
	clear(t.created)
	clear(t.newKeys)
	*t = updateTx{s: s, rec: &record{}, nextID: s.nextID, nextEvent: s.nextEvent, absent: t.absent, created: t.created, newKeys: t.newKeys}
	if err := fn(t); err != nil {
		return 0, err
	}
	r := t.rec
	if r.empty() {
		return 0, nil
	}
	r.seq = s.nextSeq
	// The log copies the payload: its buffer serves the next record too.
	b, err := r.appendEncoded(s.encBuf[:0])
	if err != nil {
		return 0, fmt.Errorf("journal: encode: %w", err)
	}
	s.encBuf = b
	if err := s.log.append(r.seq, b); err != nil {
		if errors.Is(err, errBroken) {
			s.broken = err
		}
		return 0, err
	}
	s.nextSeq++
	s.nextID = t.nextID
	s.nextEvent = t.nextEvent
	s.mu.Lock()
	s.evictLocked()
	s.m.apply(r)
	s.committed = r.seq
	if !ledger.SyncDeferred(ctx) {
		s.mustSync = r.seq
	}
	s.mu.Unlock()
	s.pmu.Lock()
	s.pending = append(s.pending, r)
	s.pcond.Broadcast()
	if len(s.pending) == s.opts.ProjectAfter {
		s.kickProjector()
	}
	s.pmu.Unlock()
	return r.seq, nil
}

// deferSync makes sure a sync comes within Options.DeferredSyncWithin of
// a record acknowledged before its sync: one timer, armed by the first
// such record, syncs everything written when it fires (nothing, if a
// synced Update did it meanwhile).
func (s *Store) deferSync() {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.deferred++
	if s.dtimer != nil || s.dclosed {
		return
	}
	s.dwg.Add(1)
	s.dtimer = time.AfterFunc(s.opts.DeferredSyncWithin, func() {
		defer s.dwg.Done()
		s.dmu.Lock()
		s.dtimer = nil
		s.dmu.Unlock()
		s.log.smu.Lock()
		written := s.log.written
		s.log.smu.Unlock()
		if err := s.log.syncTo(written); err != nil {
			s.wmu.Lock()
			if s.broken == nil {
				s.broken = err
			}
			s.wmu.Unlock()
		}
	})
}

// stopDeferredSyncs waits for a deferred sync in flight and arms no more
// (Close syncs what is written).
func (s *Store) stopDeferredSyncs() {
	s.dmu.Lock()
	s.dclosed = true
	if s.dtimer != nil && s.dtimer.Stop() {
		s.dtimer = nil
		s.dwg.Done()
	}
	s.dmu.Unlock()
	s.dwg.Wait()
}

// updateTx is the Tx of Update. Update's are one, the Store's, its
// maps emptied for each (Update holds the write lock).
type updateTx struct {
	s      *Store
	rec    *record
	nextID int64
	// nextEvent is the next outbox event's ID.
	nextEvent int64
	// absent: refs LoadAccounts found nowhere (may be created).
	absent  map[ledger.Ref]bool
	created map[ledger.Ref]bool
	newKeys map[string]bool
	// newEvents: outbox keys this transaction wrote; delivering: IDs it
	// marked delivered.
	newEvents  map[string]bool
	delivering map[int64]bool
}

// loadAccounts reads refs from memory and, for those it does not hold
// (final jobs the projection holds, or no account), from the projection.
// Pools are always in memory. The caller holds s.mu for reading.
func (s *Store) loadMem(refs []ledger.Ref) (out []ledger.Account, missing, absent []ledger.Ref) {
	seen := make(map[*memAcct]bool, len(refs))
	add := func(ma *memAcct) {
		if !seen[ma] {
			seen[ma] = true
			if out == nil {
				out = make([]ledger.Account, 0, len(refs)+len(refs)/2)
			}
			out = append(out, ma.a)
		}
	}
	for _, r := range refs {
		ma := s.m.accts[r]
		if ma == nil {
			if s.m.names.mayHave(nameRef, r.Encode()) {
				missing = append(missing, r)
			} else {
				absent = append(absent, r)
			}
			continue
		}
		add(ma)
		if r.Kind == ledger.KindJob {
			if p := s.m.accts[ma.a.PoolRef]; p != nil {
				add(p)
			}
		}
	}
	return out, missing, absent
}

// fromProjection reads accounts memory does not hold. Memory drops a job
// only after the projection holds it, so these reads need no wait.
func (s *Store) fromProjection(ctx context.Context, refs []ledger.Ref, out []ledger.Account) ([]ledger.Account, error) {
	var got []ledger.Account
	if err := s.inner.View(ctx, func(tx ledger.ReadTx) (err error) {
		got, err = tx.LoadAccounts(ctx, refs)
		return err
	}); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	have := map[ledger.Ref]bool{}
	for _, a := range out {
		have[a.Ref] = true
	}
	for _, a := range got {
		if have[a.Ref] {
			continue
		}
		if ma := s.m.accts[a.Ref]; ma != nil {
			a = ma.a // a pool: memory's is current
		}
		have[a.Ref] = true
		out = append(out, a)
	}
	return out, nil
}

func (t *updateTx) LoadAccounts(ctx context.Context, refs []ledger.Ref) ([]ledger.Account, error) {
	t.s.mu.RLock()
	out, missing, absent := t.s.loadMem(refs)
	t.s.mu.RUnlock()
	for _, r := range absent {
		t.absent[r] = true
	}
	if len(missing) == 0 {
		return out, nil
	}
	out, err := t.s.fromProjection(ctx, missing, out)
	if err != nil {
		return nil, err
	}
	found := map[ledger.Ref]bool{}
	for _, a := range out {
		found[a.Ref] = true
	}
	for _, r := range missing {
		if !found[r] {
			t.absent[r] = true
		}
	}
	return out, nil
}

// keys returns the entries of keys, from memory and the projection.
func (s *Store) entriesByKey(ctx context.Context, keys []string) ([]ledger.Entry, error) {
	var out []ledger.Entry
	var ask []string
	s.mu.RLock()
	for _, k := range keys {
		if me := s.m.keys[k]; me != nil {
			out = append(out, me.e)
		} else if s.m.names.mayHave(nameKey, k) {
			ask = append(ask, k)
		}
	}
	s.mu.RUnlock()
	if len(ask) == 0 {
		return out, nil
	}
	err := s.inner.View(ctx, func(tx ledger.ReadTx) error {
		got, err := tx.EntriesByKey(ctx, ask)
		out = append(out, got...)
		return err
	})
	return out, err
}

func (t *updateTx) EntriesByKey(ctx context.Context, keys []string) ([]ledger.Entry, error) {
	return t.s.entriesByKey(ctx, keys)
}

func (t *updateTx) NonceState(ctx context.Context, queries []ledger.NonceQuery) (map[string]ledger.SessionState, error) {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return t.s.m.nonceState(queries), nil
}

func (t *updateTx) ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]ledger.Ref, error) {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return t.s.m.expiredJobs(now, limit), nil
}

func (t *updateTx) NextExpiry(ctx context.Context) (time.Time, bool, error) {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	next, ok := t.s.m.nextExpiry()
	return next, ok, nil
}

// history runs fn on the projection once it holds every committed record
// (Update holds the write lock, so none is added meanwhile).
func (t *updateTx) history(ctx context.Context, fn func(tx ledger.ReadTx) error) error {
	if err := t.s.Sync(ctx); err != nil {
		return err
	}
	return t.s.inner.View(ctx, fn)
}

func (t *updateTx) Entries(ctx context.Context, accountID, after int64, limit int) (out []ledger.Entry, err error) {
	err = t.history(ctx, func(tx ledger.ReadTx) error {
		out, err = tx.Entries(ctx, accountID, after, limit)
		return err
	})
	return out, err
}

func (t *updateTx) ListAccounts(ctx context.Context, f ledger.AccountFilter) (out []ledger.Account, err error) {
	err = t.history(ctx, func(tx ledger.ReadTx) error {
		out, err = tx.ListAccounts(ctx, f)
		return err
	})
	return out, err
}

func (t *updateTx) ScanEntries(ctx context.Context, fn func(ledger.Entry) error) error {
	return t.history(ctx, func(tx ledger.ReadTx) error { return tx.ScanEntries(ctx, fn) })
}

func (t *updateTx) ScanAccounts(ctx context.Context, fn func(ledger.Account) error) error {
	return t.history(ctx, func(tx ledger.ReadTx) error { return tx.ScanAccounts(ctx, fn) })
}

func (t *updateTx) Winners(ctx context.Context, state string, limit int) (out []ledger.Winner, err error) {
	err = t.history(ctx, func(tx ledger.ReadTx) error {
		out, err = tx.Winners(ctx, state, limit)
		return err
	})
	return out, err
}

func (t *updateTx) Winner(ctx context.Context, key string) (out *ledger.Winner, err error) {
	err = t.history(ctx, func(tx ledger.ReadTx) error {
		out, err = tx.Winner(ctx, key)
		return err
	})
	if err != nil || out == nil {
		return out, err
	}
	// This transaction's own updates, not projected yet.
	for _, wu := range t.rec.WinnerUpdates {
		if wu.Key == key && wu.From == out.State {
			applyWinnerUpdate(out, wu)
		}
	}
	return out, nil
}

// UpdateWinner journals a winning ticket's change when the ticket is in
// state from: the projection, synced (Update holds the write lock), and
// this transaction's earlier updates say so.
func (t *updateTx) UpdateWinner(ctx context.Context, key, from string, u ledger.WinnerUpdate, now time.Time) (bool, error) {
	w, err := t.Winner(ctx, key)
	if err != nil || w == nil || w.State != from {
		return false, err
	}
	if u.TxRaw != nil {
		u.TxRaw = append([]byte(nil), u.TxRaw...)
	}
	t.rec.WinnerUpdates = append(t.rec.WinnerUpdates, winnerUpdate{Key: key, From: from, U: u, Now: now.UTC()})
	return true, nil
}

// applyWinnerUpdate is what the projection's UpdateWinner does to a row.
func applyWinnerUpdate(w *ledger.Winner, wu winnerUpdate) {
	u := wu.U
	w.State, w.Payout, w.LastError, w.UpdatedAt = u.State, u.Payout, u.LastError, wu.Now.Truncate(time.Microsecond)
	if u.Attempt {
		w.Attempts++
	}
	if !u.KeepTx {
		w.TxHash, w.TxNonce, w.TxRaw = u.TxHash, u.TxNonce, u.TxRaw
	}
}

func (t *updateTx) Checkpoint(ctx context.Context) (out ledger.Checkpoint, err error) {
	err = t.history(ctx, func(tx ledger.ReadTx) error {
		out, err = tx.Checkpoint(ctx)
		return err
	})
	return out, err
}

// archiveReads are the Tx reads of archiving, which the projection's
// transactions have too.
type archiveReads interface {
	ArchivableJobs(ctx context.Context, before time.Time, limit int) ([]ledger.Account, error)
	EntriesOf(ctx context.Context, accountIDs []int64) ([]ledger.Entry, error)
}

func (t *updateTx) ArchivableJobs(ctx context.Context, before time.Time, limit int) (out []ledger.Account, err error) {
	err = t.history(ctx, func(tx ledger.ReadTx) error {
		out, err = tx.(archiveReads).ArchivableJobs(ctx, before, limit)
		return err
	})
	return out, err
}

func (t *updateTx) EntriesOf(ctx context.Context, accountIDs []int64) (out []ledger.Entry, err error) {
	err = t.history(ctx, func(tx ledger.ReadTx) error {
		out, err = tx.(archiveReads).EntriesOf(ctx, accountIDs)
		return err
	})
	return out, err
}

// ---- writes: collected into the record ----

func (t *updateTx) InsertAccounts(ctx context.Context, accts []*ledger.Account) error {
	var check []ledger.Ref
	t.s.mu.RLock()
	for _, a := range accts {
		if t.s.m.accts[a.Ref] != nil || t.created[a.Ref] {
			t.s.mu.RUnlock()
			return fmt.Errorf("%w: account %s exists", ledger.ErrConflict, a.Ref)
		}
		if !t.absent[a.Ref] {
			check = append(check, a.Ref)
		}
	}
	t.s.mu.RUnlock()
	if len(check) > 0 {
		found, err := t.s.fromProjection(ctx, check, nil)
		if err != nil {
			return err
		}
		if len(found) > 0 {
			return fmt.Errorf("%w: account %s exists", ledger.ErrConflict, found[0].Ref)
		}
	}
	t.rec.Created = slices.Grow(t.rec.Created, len(accts))
	for _, a := range accts {
		a.ID = t.nextID
		t.nextID++
		t.created[a.Ref] = true
		t.rec.Created = append(t.rec.Created, wrap(a))
	}
	return nil
}

func (t *updateTx) UpdateAccounts(ctx context.Context, accts []*ledger.Account) error {
	t.rec.Updated = slices.Grow(t.rec.Updated, len(accts))
	for _, a := range accts {
		if a.ID <= 0 {
			return fmt.Errorf("journal: update of account %s without an ID", a.Ref)
		}
		t.rec.Updated = append(t.rec.Updated, wrap(a))
	}
	return nil
}

func (t *updateTx) InsertEntries(ctx context.Context, entries []*ledger.Entry) error {
	keys := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Key == "" {
			continue
		}
		if t.newKeys[e.Key] {
			return fmt.Errorf("%w: key %q twice", ledger.ErrKeyTaken, e.Key)
		}
		keys = append(keys, e.Key)
	}
	if len(keys) > 0 {
		taken, err := t.s.entriesByKey(ctx, keys)
		if err != nil {
			return err
		}
		if len(taken) > 0 {
			return fmt.Errorf("%w: %d of %d keys", ledger.ErrKeyTaken, len(taken), len(keys))
		}
		for _, k := range keys {
			t.newKeys[k] = true
		}
	}
	t.rec.Entries = slices.Grow(t.rec.Entries, len(entries))
	for _, e := range entries {
		t.rec.Entries = append(t.rec.Entries, *e)
	}
	return nil
}

func (t *updateTx) RecordNonces(ctx context.Context, sessions []ledger.SessionNonces) error {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	for _, sn := range sessions {
		for _, prev := range t.rec.Nonces {
			if prev.Session == sn.Session {
				return fmt.Errorf("%w: ticket session %s twice in a transaction", ledger.ErrConflict, sn.Session)
			}
		}
		have := 0
		if ms := t.s.m.sessions[sn.Session]; ms != nil {
			have = len(ms.nonces)
			for _, n := range sn.Nonces {
				if _, dup := ms.nonces[n]; dup {
					return fmt.Errorf("%w: nonce %d of session %s recorded meanwhile", ledger.ErrConflict, n, sn.Session)
				}
			}
		}
		if have != sn.Count {
			return fmt.Errorf("%w: ticket session %s changed meanwhile", ledger.ErrConflict, sn.Session)
		}
		sn.Nonces = append([]uint32(nil), sn.Nonces...)
		t.rec.Nonces = append(t.rec.Nonces, sn)
	}
	return nil
}

func (t *updateTx) InsertWinners(ctx context.Context, winners []*ledger.WinnerRow) error {
	for _, w := range winners {
		t.rec.Winners = append(t.rec.Winners, *w)
	}
	return nil
}

func (t *updateTx) ForgetSessions(ctx context.Context, expiry int64) (int, error) {
	if !t.rec.empty() {
		return 0, errors.New("journal: ForgetSessions shares its transaction with nothing")
	}
	t.s.mu.RLock()
	n := 0
	for _, ms := range t.s.m.sessions {
		if ms.expiry <= expiry {
			n++
		}
	}
	t.s.mu.RUnlock()
	if n > 0 {
		t.rec.Forget = &expiry
	}
	return n, nil
}

func (t *updateTx) Archive(ctx context.Context, b ledger.ArchiveBatch) error {
	if !t.rec.empty() {
		return errors.New("journal: Archive shares its transaction with nothing")
	}
	t.rec.Archive = &b
	return nil
}

// ---- the outbox ----

// InsertOutbox implements ledger.Tx: the events go into this Update's
// record, so they are journalled, and acknowledged, with its other
// writes. IDs are assigned in order, as the tables would (one past the
// largest). A key taken by an event memory holds (every undelivered one,
// and delivered ones until the tables hold their delivery) or, if the
// filter says it may be, by one in the tables, is ErrKeyTaken.
func (t *updateTx) InsertOutbox(ctx context.Context, events []*ledger.OutboxEvent) error {
	var ask []string
	t.s.mu.RLock()
	for _, e := range events {
		_, inMem := t.s.m.outboxKeys[e.Key]
		if inMem || t.newEvents[e.Key] {
			t.s.mu.RUnlock()
			return fmt.Errorf("%w: outbox event %q", ledger.ErrKeyTaken, e.Key)
		}
		if t.s.m.names.mayHave(nameOutbox, e.Key) {
			ask = append(ask, e.Key)
		}
	}
	t.s.mu.RUnlock()
	// An event leaves memory only once the tables hold it delivered, so
	// the tables need not catch up for this.
	if len(ask) > 0 {
		taken, err := t.s.inner.OutboxKeysTaken(ctx, ask)
		if err != nil {
			return err
		}
		if len(taken) > 0 {
			return fmt.Errorf("%w: outbox event %q", ledger.ErrKeyTaken, taken[0])
		}
	}
	if t.newEvents == nil {
		t.newEvents = map[string]bool{}
	}
	for _, e := range events {
		if t.newEvents[e.Key] {
			return fmt.Errorf("%w: outbox event %q twice", ledger.ErrKeyTaken, e.Key)
		}
		t.newEvents[e.Key] = true
	}
	for _, e := range events {
		c := *e
		c.ID = t.nextEvent
		t.nextEvent++
		c.At = time.UnixMicro(e.At.UnixMicro()).UTC() // as the tables keep it
		c.DeliveredAt = time.Time{}
		c.Body = append([]byte{}, e.Body...)
		t.rec.Outbox = append(t.rec.Outbox, c)
	}
	return nil
}

// MarkDelivered implements ledger.Tx: the record carries those of ids
// that are undelivered (memory holds every such event), so a delivery is
// journalled once and replays the same.
func (t *updateTx) MarkDelivered(ctx context.Context, ids []int64, at time.Time) error {
	if t.delivering == nil {
		t.delivering = map[int64]bool{}
	}
	own := map[int64]bool{}
	for _, e := range t.rec.Outbox {
		own[e.ID] = true
	}
	d := delivery{At: time.UnixMicro(at.UnixMicro()).UTC()}
	t.s.mu.RLock()
	for _, id := range ids {
		if t.delivering[id] {
			continue
		}
		me := t.s.m.outbox[id]
		if (me != nil && me.delivered == 0) || own[id] {
			t.delivering[id] = true
			d.IDs = append(d.IDs, id)
		}
	}
	t.s.mu.RUnlock()
	if len(d.IDs) > 0 {
		t.rec.Delivered = append(t.rec.Delivered, d)
	}
	return nil
}

// PendingOutbox implements ledger.ReadTx from memory, with this
// transaction's own outbox writes.
func (t *updateTx) PendingOutbox(ctx context.Context, after int64, limit int, topics ...string) ([]ledger.OutboxEvent, error) {
	n := limit
	if n > 0 {
		n += len(t.delivering) // those are dropped below
	}
	t.s.mu.RLock()
	out := t.s.m.pendingOutbox(after, n, topics)
	t.s.mu.RUnlock()
	for _, e := range t.rec.Outbox {
		if e.ID > after && (len(topics) == 0 || slices.Contains(topics, e.Topic)) {
			e.Body = append([]byte{}, e.Body...)
			out = append(out, e) // IDs above memory's
		}
	}
	out = slices.DeleteFunc(out, func(e ledger.OutboxEvent) bool { return t.delivering[e.ID] })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
