package ledger

import (
	"context"
	"fmt"
	"time"
)

// Report is the result of Verify: totals and every violated invariant.
type Report struct {
	Accounts  int `json:"accounts"`
	Pools     int `json:"pools"`
	OpenJobs  int `json:"open_jobs"`
	FinalJobs int `json:"final_jobs"`
	Entries   int `json:"entries"`

	Credited    Amount `json:"credited"`      // Σ credits ever
	Charged     Amount `json:"charged"`       // Σ charges ever
	PoolTotal   Amount `json:"pool_total"`    // Σ pool balances
	OpenJobHeld Amount `json:"open_job_held"` // Σ open job balances

	// Archived is what byoc ledger archive moved out of the live tables;
	// Credited and Charged include its totals.
	Archived *Checkpoint `json:"archived,omitempty"`

	// Problems lists each violation found; empty means all invariants hold.
	Problems []string `json:"problems"`
}

// OK reports whether every invariant holds.
func (r Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 1000 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == 1000 {
		r.Problems = append(r.Problems, "… more problems not listed")
	}
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Now is the time against which open jobs are checked for staleness.
	Now time.Time
	// StaleAfter is how long past its expiry an open job may stay before it
	// counts as stranded. Right after a sweep at Now, 0 is exact; on a live
	// node allow a few sweep intervals.
	StaleAfter time.Duration
	// AllowDebt accepts pools and open jobs below zero. The ledger lets a
	// caller charge into grace, so such balances are consistent; but
	// neither byoc node leaves one at rest (a charge never exceeds what
	// the job held), so by default each is a problem: money booked beyond
	// what was paid. Only tests of grace itself set this.
	AllowDebt bool
}

// Verify checks every invariant of docs/ledger.md on one
// consistent snapshot of the store and reports all violations, not only the
// first. It never writes.
func Verify(ctx context.Context, s Store, opts VerifyOptions) (Report, error) {
	var r Report
	err := s.View(ctx, func(tx ReadTx) error {
		r = Report{Problems: []string{}}
		return verifyTx(ctx, tx, opts, &r)
	})
	return r, err
}

type flows struct{ credited, charged, in, out Amount }

func verifyTx(ctx context.Context, tx ReadTx, opts VerifyOptions, r *Report) error {
	cp, err := tx.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if cp.Batches > 0 {
		r.Archived = &cp
		verifyCheckpoint(cp, r)
	}
	// Archived jobs held 0; what they were credited and charged still
	// counts.
	r.Credited, r.Charged = cp.Totals.Credited, cp.Totals.Charged
	accts := map[int64]Account{}
	err = tx.ScanAccounts(ctx, func(a Account) error {
		accts[a.ID] = a
		r.Accounts++
		id := a.Balance.Sub(a.Credited).Add(a.Charged).Sub(a.MovedIn).Add(a.MovedOut)
		if !id.IsZero() {
			r.problem("%s (id %d): balance %s ≠ credited %s − charged %s + moved in %s − moved out %s",
				a.Ref, a.ID, a.Balance, a.Credited, a.Charged, a.MovedIn, a.MovedOut)
		}
		for _, c := range []Amount{a.Credited, a.Charged, a.MovedIn, a.MovedOut} {
			if c.Sign() < 0 {
				r.problem("%s (id %d): negative counter %s", a.Ref, a.ID, c)
			}
		}
		if a.Balance.outOfRange() {
			r.problem("%s (id %d): balance %s out of range", a.Ref, a.ID, a.Balance)
		}
		r.Credited = r.Credited.Add(a.Credited)
		r.Charged = r.Charged.Add(a.Charged)
		switch {
		case a.Ref.Kind == KindPool:
			r.Pools++
			r.PoolTotal = r.PoolTotal.Add(a.Balance)
			if a.State != StateOpen {
				r.problem("%s (id %d): pool in state %q", a.Ref, a.ID, a.State)
			}
			if a.Balance.Sign() < 0 && !opts.AllowDebt {
				r.problem("%s (id %d): negative pool balance %s (charged beyond what was paid)", a.Ref, a.ID, a.Balance)
			}
		case a.State == StateOpen:
			r.OpenJobs++
			r.OpenJobHeld = r.OpenJobHeld.Add(a.Balance)
			if a.Balance.Sign() < 0 && !opts.AllowDebt {
				r.problem("%s (id %d): open hold with negative balance %s (charged beyond what it held)", a.Ref, a.ID, a.Balance)
			}
			if !opts.Now.IsZero() && !a.ExpiresAt.Add(opts.StaleAfter).After(opts.Now) {
				r.problem("%s (id %d): open past its TTL (expired at %s, now %s)", a.Ref, a.ID,
					a.ExpiresAt.Format(time.RFC3339Nano), opts.Now.Format(time.RFC3339Nano))
			}
		case a.State.IsFinal():
			r.FinalJobs++
			if !a.Balance.IsZero() {
				r.problem("%s (id %d): %s job holds %s (dust)", a.Ref, a.ID, a.State, a.Balance)
			}
		default:
			r.problem("%s (id %d): unknown state %q", a.Ref, a.ID, a.State)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Jobs point at their pool.
	for _, a := range accts {
		if a.Ref.Kind != KindJob {
			continue
		}
		p, ok := accts[a.PoolID]
		if !ok || p.Ref != a.PoolRef || p.Ref.Kind != KindPool || p.Ref.Sender != a.Ref.Sender {
			r.problem("%s (id %d): pool id %d is not its pool %s", a.Ref, a.ID, a.PoolID, a.PoolRef)
		}
	}
	// Conservation.
	if held := r.PoolTotal.Add(r.OpenJobHeld).Add(r.Charged); held.Cmp(r.Credited) != 0 {
		r.problem("conservation: credited %s ≠ pools %s + open jobs %s + charged %s (difference %s)",
			r.Credited, r.PoolTotal, r.OpenJobHeld, r.Charged, r.Credited.Sub(held))
	}
	// Journal: counters agree with the entries; entries are well formed;
	// each idempotency key once.
	sums := map[int64]*flows{}
	for id, c := range cp.Carry {
		if _, ok := accts[id]; !ok {
			r.problem("archive checkpoint: carried flows for account %d, which is not in the ledger", id)
		}
		sums[id] = &flows{c.Credited, c.Charged, c.MovedIn, c.MovedOut}
	}
	get := func(id int64) *flows {
		f := sums[id]
		if f == nil {
			f = &flows{}
			sums[id] = f
		}
		return f
	}
	keys := map[string]int64{}
	err = tx.ScanEntries(ctx, func(e Entry) error {
		r.Entries++
		if e.Amount.Sign() < 0 {
			r.problem("entry %d: negative amount %s", e.ID, e.Amount)
		}
		if e.Key != "" {
			if prev, dup := keys[e.Key]; dup {
				r.problem("entries %d and %d share idempotency key %q (double credit)", prev, e.ID, e.Key)
			}
			keys[e.Key] = e.ID
		}
		from, fromOK := accts[e.From]
		to, toOK := accts[e.To]
		switch e.Kind {
		case EntryCredit:
			if e.From != 0 || !toOK {
				r.problem("entry %d: credit must come from outside into an account", e.ID)
				return nil
			}
			get(e.To).credited = get(e.To).credited.Add(e.Amount)
		case EntryCharge:
			if e.To != 0 || !fromOK {
				r.problem("entry %d: charge must go from an account to outside", e.ID)
				return nil
			}
			get(e.From).charged = get(e.From).charged.Add(e.Amount)
		case EntryReserve, EntryRelease, EntryExpire:
			pair := fromOK && toOK && ((from.Ref.Kind == KindJob && from.PoolID == to.ID) ||
				(to.Ref.Kind == KindJob && to.PoolID == from.ID))
			if !pair || (e.Kind == EntryReserve && to.Ref.Kind != KindJob) {
				r.problem("entry %d: %s must move between a job and its own pool (%d → %d)", e.ID, e.Kind, e.From, e.To)
				return nil
			}
			get(e.From).out = get(e.From).out.Add(e.Amount)
			get(e.To).in = get(e.To).in.Add(e.Amount)
		default:
			r.problem("entry %d: unknown kind %q", e.ID, e.Kind)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, a := range accts {
		f := sums[id]
		if f == nil {
			f = &flows{}
		}
		if f.credited.Cmp(a.Credited) != 0 || f.charged.Cmp(a.Charged) != 0 ||
			f.in.Cmp(a.MovedIn) != 0 || f.out.Cmp(a.MovedOut) != 0 {
			r.problem("%s (id %d): counters (credited %s, charged %s, in %s, out %s) ≠ entries and archived (%s, %s, %s, %s)",
				a.Ref, id, a.Credited, a.Charged, a.MovedIn, a.MovedOut, f.credited, f.charged, f.in, f.out)
		}
	}
	return nil
}

// verifyCheckpoint checks that the archive checkpoint is consistent in
// itself: archived jobs held nothing, and what the live accounts carry
// forward from archived entries is the other side of the archived jobs'
// moves.
func verifyCheckpoint(cp Checkpoint, r *Report) {
	t := cp.Totals
	for _, c := range []Amount{t.Credited, t.Charged, t.MovedIn, t.MovedOut} {
		if c.Sign() < 0 {
			r.problem("archive checkpoint: negative total %s", c)
		}
	}
	if n := t.net(); !n.IsZero() {
		r.problem("archive checkpoint: archived jobs held %s (credited %s − charged %s + moved in %s − moved out %s ≠ 0)",
			n, t.Credited, t.Charged, t.MovedIn, t.MovedOut)
	}
	var carried Flows
	for id, c := range cp.Carry {
		for _, x := range []Amount{c.Credited, c.Charged, c.MovedIn, c.MovedOut} {
			if x.Sign() < 0 {
				r.problem("archive checkpoint: account %d carries a negative amount %s", id, x)
			}
		}
		carried = carried.add(c)
	}
	if carried.MovedOut.Cmp(t.MovedIn) != 0 || carried.MovedIn.Cmp(t.MovedOut) != 0 {
		r.problem("archive checkpoint: pools carry out %s, in %s; archived jobs moved in %s, out %s",
			carried.MovedOut, carried.MovedIn, t.MovedIn, t.MovedOut)
	}
}
