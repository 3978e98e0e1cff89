package journal

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"byoc/ledger"
	"byoc/ledger/sqlstore"
)

// projectLoop applies committed records to the tables in batches, then
// drops from memory what the tables now hold and deletes the journal
// segments they hold entirely.
func (s *Store) projectLoop() {
	defer close(s.pdone)
	for {
		s.pmu.Lock()
		for s.perr == nil && len(s.pending) == 0 && !s.stopping {
			s.pcond.Wait()
		}
		if s.perr == nil && len(s.pending) < s.opts.ProjectAfter && !s.stopping && s.waiters == 0 {
			// Let a batch gather: until ProjectAfter records wait, someone
			// waits for the projection, or ProjectDelay passes.
			s.pmu.Unlock()
			t := time.NewTimer(s.opts.ProjectDelay)
			select {
			case <-s.kick:
			case <-t.C:
			}
			t.Stop()
			s.pmu.Lock()
		}
		if s.perr != nil || len(s.pending) == 0 {
			s.pmu.Unlock()
			return
		}
		n := 0
		for n < len(s.pending) && n < s.opts.ProjectBatch {
			if s.pending[n].special() {
				if n == 0 {
					n = 1
				}
				break
			}
			n++
		}
		batch := append([]*record(nil), s.pending[:n]...)
		s.pmu.Unlock()

		last := batch[len(batch)-1].seq
		// Only durable records reach the tables (their Updates may still
		// be syncing them; this joins that sync).
		err := s.log.syncTo(last)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			err = s.project(ctx, batch)
			cancel()
		}
		s.pmu.Lock()
		if err != nil {
			s.perr = fmt.Errorf("journal: projection stopped at record %d (the journal keeps it; restart to retry): %w", batch[0].seq, err)
			s.opts.Logger.Error("ledger journal projection", "err", s.perr)
			s.pcond.Broadcast()
			s.pmu.Unlock()
			return
		}
		s.pending = s.pending[n:]
		if len(s.pending) == 0 {
			s.pending = nil // let the backing array go
		}
		s.projected = last
		s.pcond.Broadcast()
		s.pmu.Unlock()

		// Memory drops what the tables now hold. A view waiting for the
		// projection holds memory's read lock, so the projector never
		// waits for the write lock: when it is taken, the next commit
		// (which takes it anyway) evicts.
		s.pmu.Lock()
		s.evictable = append(s.evictable, batch...)
		s.pmu.Unlock()
		if s.mu.TryLock() {
			s.evictLocked()
			s.mu.Unlock()
		}
		if s.log.droppable(last) {
			if err := s.durable(); err != nil {
				s.opts.Logger.Warn("ledger journal: making the projection durable", "err", err)
			} else if err := s.log.dropThrough(last); err != nil {
				s.opts.Logger.Warn("ledger journal: deleting projected segments", "err", err)
			}
		}
	}
}

// waitProjected waits until the projection holds record seq.
func (s *Store) waitProjected(ctx context.Context, seq uint64) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.projected < seq {
		s.waiters++
		s.pcond.Broadcast()
		s.kickProjector()
		defer func() { s.waiters-- }()
	}
	for s.projected < seq {
		if s.perr != nil {
			return s.perr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.pcond.Wait()
	}
	return nil
}

// waitLag waits while too many records wait for the projection.
func (s *Store) waitLag(ctx context.Context) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.pending) >= s.opts.MaxLag {
		s.kickProjector()
	}
	for len(s.pending) >= s.opts.MaxLag {
		if s.perr != nil {
			return s.perr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.pcond.Wait()
	}
	return nil
}

// project applies records, in order, in one transaction of the tables,
// with the last one's seq. Consecutive records are merged: an account
// changed by several is written once, in its last state; a ticket
// session's nonces are added in one step; outbox events are inserted,
// then the batch's deliveries made, in order. A record with a Forget or an
// Archive comes alone.
func (s *Store) project(ctx context.Context, batch []*record) error {
	last := batch[len(batch)-1].seq
	return s.inner.Update(ctx, func(tx ledger.Tx) error {
		if len(batch) == 1 && batch[0].special() {
			r := batch[0]
			if r.Forget != nil {
				if _, err := tx.ForgetSessions(ctx, *r.Forget); err != nil {
					return err
				}
			}
			if r.Archive != nil {
				if err := tx.Archive(ctx, *r.Archive); err != nil {
					return err
				}
			}
			return sqlstore.SetProjected(ctx, tx, last)
		}
		nAccts, nEntries := 0, 0
		for _, r := range batch {
			nAccts += len(r.Created) + len(r.Updated)
			nEntries += len(r.Entries)
		}
		// The accounts' last states, one allocation for all.
		states := make([]ledger.Account, 0, nAccts)
		final := make(map[int64]*ledger.Account, nAccts)
		isNew := map[int64]bool{}
		var newIDs, updIDs []int64
		entries := make([]*ledger.Entry, 0, nEntries)
		var winners []*ledger.WinnerRow
		var winnerUpdates []winnerUpdate
		var events []*ledger.OutboxEvent
		var deliveries []delivery
		sessions := map[string]*ledger.SessionNonces{}
		var order []string
		for _, r := range batch {
			if r.special() {
				return errors.New("journal: a special record inside a projection batch")
			}
			for i := range r.Created {
				states = append(states, r.Created[i].account())
				a := &states[len(states)-1]
				final[a.ID], isNew[a.ID] = a, true
				newIDs = append(newIDs, a.ID)
			}
			for i := range r.Updated {
				states = append(states, r.Updated[i].account())
				a := &states[len(states)-1]
				if final[a.ID] == nil {
					updIDs = append(updIDs, a.ID)
				}
				final[a.ID] = a
			}
			for i := range r.Entries {
				entries = append(entries, &r.Entries[i])
			}
			for i := range r.Winners {
				winners = append(winners, &r.Winners[i])
			}
			winnerUpdates = append(winnerUpdates, r.WinnerUpdates...)
			for i := range r.Outbox {
				events = append(events, &r.Outbox[i])
			}
			deliveries = append(deliveries, r.Delivered...)
			for _, sn := range r.Nonces {
				if prev := sessions[sn.Session]; prev != nil {
					prev.Nonces = append(prev.Nonces, sn.Nonces...)
					prev.Expiry = max(prev.Expiry, sn.Expiry)
					continue
				}
				c := sn
				c.Nonces = append([]uint32(nil), sn.Nonces...)
				sessions[sn.Session] = &c
				order = append(order, sn.Session)
			}
		}
		if len(newIDs) > 0 {
			// Pools before jobs (a job's pool_id names its pool), each in ID order.
			sort.Slice(newIDs, func(i, j int) bool {
				a, b := final[newIDs[i]], final[newIDs[j]]
				if a.Ref.Kind != b.Ref.Kind {
					return a.Ref.Kind == ledger.KindPool
				}
				return a.ID < b.ID
			})
			accts := make([]*ledger.Account, len(newIDs))
			for i, id := range newIDs {
				accts[i] = final[id]
			}
			if err := tx.InsertAccounts(ctx, accts); err != nil {
				return err
			}
		}
		var upd []*ledger.Account
		for _, id := range updIDs {
			if !isNew[id] {
				upd = append(upd, final[id])
			}
		}
		if len(upd) > 0 {
			sort.Slice(upd, func(i, j int) bool { return upd[i].ID < upd[j].ID })
			if err := tx.UpdateAccounts(ctx, upd); err != nil {
				return err
			}
		}
		if len(entries) > 0 {
			if err := sqlstore.InsertProjected(ctx, tx, entries); err != nil {
				return err
			}
		}
		if len(order) > 0 {
			sort.Strings(order)
			rec := make([]ledger.SessionNonces, len(order))
			for i, name := range order {
				rec[i] = *sessions[name]
			}
			if err := tx.RecordNonces(ctx, rec); err != nil {
				return err
			}
		}
		if len(winners) > 0 {
			if err := tx.InsertWinners(ctx, winners); err != nil {
				return err
			}
		}
		for _, wu := range winnerUpdates {
			ok, err := tx.UpdateWinner(ctx, wu.Key, wu.From, wu.U, wu.Now)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("journal: winning ticket %s was not %s when its update was projected", wu.Key, wu.From)
			}
		}
		if len(events) > 0 {
			// With their IDs; an event delivered later in the batch is
			// updated below, after its insert.
			if err := tx.InsertOutbox(ctx, events); err != nil {
				return err
			}
		}
		for _, d := range deliveries {
			if err := tx.MarkDelivered(ctx, d.IDs, d.At); err != nil {
				return err
			}
		}
		return sqlstore.SetProjected(ctx, tx, last)
	})
}

// evictLocked drops from memory what projected records put there and the
// tables now hold. The caller holds s.mu.
func (s *Store) evictLocked() {
	s.pmu.Lock()
	ev := s.evictable
	s.evictable = nil
	s.pmu.Unlock()
	for _, r := range ev {
		s.m.evict(r)
	}
}

// kickProjector wakes the projector from gathering a batch.
func (s *Store) kickProjector() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// The projection commits with synchronous=NORMAL: the journal is the
// truth, so a commit of the tables need not wait for the disk. Before a
// journal segment is deleted, durable makes everything projected so far
// durable: one commit with synchronous=FULL syncs the write-ahead log,
// and with it every commit before.
func (s *Store) durable() error {
	ctx := context.Background()
	db := s.inner.DB()
	if _, err := db.ExecContext(ctx, "PRAGMA synchronous=FULL"); err != nil {
		return err
	}
	defer db.ExecContext(ctx, "PRAGMA synchronous=NORMAL")
	s.pmu.Lock()
	p := s.projected
	s.pmu.Unlock()
	return s.inner.Update(ctx, func(tx ledger.Tx) error { return sqlstore.SetProjected(ctx, tx, p) })
}
