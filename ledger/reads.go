package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Account returns the current state of a pool or job.
//
// Errors: ErrInvalidInput, ErrNotFound.
func (l *Ledger) Account(ctx context.Context, ref Ref) (Account, error) {
	if err := ref.Validate(); err != nil {
		return Account{}, err
	}
	var out Account
	err := l.store.View(ctx, func(tx ReadTx) error {
		a, err := loadOne(ctx, tx, ref)
		out = a
		return err
	})
	return out, err
}

// Balance returns the balance of a pool or job; an unknown pool has balance 0
// (nothing was ever paid), an unknown job is ErrNotFound.
func (l *Ledger) Balance(ctx context.Context, ref Ref) (Amount, error) {
	a, err := l.Account(ctx, ref)
	if err != nil && ref.Kind == KindPool && errors.Is(err, ErrNotFound) {
		return Amount{}, nil
	}
	return a.Balance, err
}

func loadOne(ctx context.Context, tx ReadTx, ref Ref) (Account, error) {
	as, err := tx.LoadAccounts(ctx, []Ref{ref})
	if err != nil {
		return Account{}, err
	}
	for _, a := range as {
		if a.Ref == ref {
			return a, nil
		}
	}
	return Account{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// Statement is the history of one account: its current state, totals by
// kind of movement, and its entries.
type Statement struct {
	Account Account `json:"account"`
	// Pool is the job's pool (jobs only).
	Pool *Account `json:"pool,omitempty"`
	// Totals. For a job: Drawn from the pool, Released back (negative: a
	// deficit the pool covered). For a pool: Drawn by its jobs, Released
	// back by them.
	Credited Amount `json:"credited"`
	Charged  Amount `json:"charged"`
	Drawn    Amount `json:"drawn"`
	Released Amount `json:"released"`
	// Opened and Closed are the job's timestamps (Closed zero while open).
	Opened  time.Time `json:"opened"`
	Closed  time.Time `json:"closed,omitzero"`
	Entries []Entry   `json:"entries"`
	// Names are the other accounts the entries move money from or to, by
	// ID (the jobs of a pool, the pool of a job).
	Names map[int64]Ref `json:"names,omitempty"`
	// Archived is what the account's archived entries moved (byoc ledger
	// archive): its counters include it, Entries and the totals above
	// do not.
	Archived *Flows `json:"archived,omitempty"`
	// Truncated is true when more entries exist than were returned.
	Truncated bool `json:"truncated,omitempty"`
}

// statementPage is how many entries Statement reads at a time.
const statementPage = 1000

// addToTotals adds entry e of account a to the statement's Drawn and
// Released.
func (s *Statement) addToTotals(a Account, e Entry) {
	switch e.Kind {
	case EntryReserve:
		s.Drawn = s.Drawn.Add(e.Amount)
	case EntryRelease, EntryExpire:
		// Job → pool is a release; pool → job covers a deficit.
		if (e.From == a.ID) == (a.Ref.Kind == KindJob) {
			s.Released = s.Released.Add(e.Amount)
		} else {
			s.Released = s.Released.Sub(e.Amount)
		}
	}
}

// Statement returns an account's statement with at most limit entries
// (0 = all), the most recent last.
func (l *Ledger) Statement(ctx context.Context, ref Ref, limit int) (Statement, error) {
	if err := ref.Validate(); err != nil {
		return Statement{}, err
	}
	var s Statement
	err := l.store.View(ctx, func(tx ReadTx) error {
		a, err := loadOne(ctx, tx, ref)
		if err != nil {
			return err
		}
		s = Statement{Account: a, Credited: a.Credited, Charged: a.Charged, Opened: a.OpenedAt, Closed: a.ClosedAt}
		if a.Ref.Kind == KindJob {
			p, err := loadOne(ctx, tx, a.PoolRef)
			if err != nil {
				return err
			}
			s.Pool = &p
		}
		// The totals need every entry; the statement keeps only the last
		// limit of them, so entries are read a page at a time and memory
		// stays bounded by the limit, however busy the account.
		keep := []Entry{}
		for after := int64(0); ; {
			page, err := tx.Entries(ctx, a.ID, after, statementPage)
			if err != nil {
				return err
			}
			for _, e := range page {
				s.addToTotals(a, e)
			}
			keep = append(keep, page...)
			if limit > 0 && len(keep) > limit {
				keep, s.Truncated = append(keep[:0:0], keep[len(keep)-limit:]...), true
			}
			if len(page) < statementPage {
				break
			}
			after = page[len(page)-1].ID
		}
		s.Entries = keep
		if err := s.name(ctx, tx); err != nil {
			return err
		}
		cp, err := tx.Checkpoint(ctx)
		if err != nil {
			return err
		}
		if c, ok := cp.Carry[a.ID]; ok {
			s.Archived = &c
		}
		return nil
	})
	return s, err
}

// name fills s.Names with the accounts at the other end of its entries.
func (s *Statement) name(ctx context.Context, tx ReadTx) error {
	s.Names = map[int64]Ref{s.Account.ID: s.Account.Ref}
	if s.Pool != nil {
		s.Names[s.Pool.ID] = s.Pool.Ref
	}
	var ids []int64
	want := map[int64]bool{}
	for _, e := range s.Entries {
		for _, id := range []int64{e.From, e.To} {
			if _, ok := s.Names[id]; !ok && id != 0 && !want[id] {
				want[id] = true
				ids = append(ids, id)
			}
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), 256)
		as, err := tx.ListAccounts(ctx, AccountFilter{IDs: ids[:n]})
		if err != nil {
			return err
		}
		for _, a := range as {
			s.Names[a.ID] = a.Ref
		}
		ids = ids[n:]
	}
	return nil
}

// Ready reports whether the store answers a read (for a node's
// readiness check); the error says why not.
func (l *Ledger) Ready(ctx context.Context) error {
	if _, err := l.List(ctx, AccountFilter{Kind: KindPool, Limit: 1}); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// List returns accounts matching f.
func (l *Ledger) List(ctx context.Context, f AccountFilter) ([]Account, error) {
	var out []Account
	err := l.store.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.ListAccounts(ctx, f)
		return err
	})
	if out == nil {
		out = []Account{} // JSON []: no accounts, not null
	}
	return out, err
}
