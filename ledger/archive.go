package ledger

// Retention and export: closed history moved out of the live tables, with a
// checkpoint that keeps conservation provable across the cut, and entries
// read out for a period.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Flows are money movements of one account, or summed over many.
type Flows struct {
	Credited Amount `json:"credited"`
	Charged  Amount `json:"charged"`
	MovedIn  Amount `json:"moved_in"`
	MovedOut Amount `json:"moved_out"`
}

func (f Flows) add(g Flows) Flows {
	return Flows{f.Credited.Add(g.Credited), f.Charged.Add(g.Charged), f.MovedIn.Add(g.MovedIn), f.MovedOut.Add(g.MovedOut)}
}

// net is credited − charged + moved in − moved out: the balance the flows
// leave.
func (f Flows) net() Amount {
	return f.Credited.Sub(f.Charged).Add(f.MovedIn).Sub(f.MovedOut)
}

// Checkpoint is what archives moved out of the live tables: the archived
// jobs' counters summed, and per live account the flows of its archived
// entries (carried forward, so its counters still equal carried plus live
// entries).
type Checkpoint struct {
	Batches int             `json:"batches"`
	Jobs    int64           `json:"jobs"`
	Entries int64           `json:"entries"`
	Before  time.Time       `json:"before,omitzero"` // the latest cut
	Totals  Flows           `json:"totals"`
	Carry   map[int64]Flows `json:"carry,omitempty"`
}

// ArchiveBatch is one transaction of Archive, as the store records it.
type ArchiveBatch struct {
	Before, At time.Time
	File       string
	JobIDs     []int64
	EntryIDs   []int64
	Totals     Flows
	Carry      map[int64]Flows
}

// ExportEntry is an entry with its accounts named: one line of an export,
// and of an archived job.
type ExportEntry struct {
	ID   int64     `json:"id"`
	At   time.Time `json:"at"`
	Kind EntryKind `json:"kind"`
	// From and To are nil for the outside world.
	From   *Ref   `json:"from"`
	To     *Ref   `json:"to"`
	Amount Amount `json:"amount"`
	Key    string `json:"key,omitempty"`
	// BalanceAfter is the balance, after the entry, of the account the
	// operation was addressed to (see Entry).
	BalanceAfter Amount `json:"balance_after"`
}

func exportEntry(e Entry, refs map[int64]Ref) ExportEntry {
	x := ExportEntry{ID: e.ID, At: e.At, Kind: e.Kind, Amount: e.Amount, Key: e.Key, BalanceAfter: e.BalanceAfter}
	if r, ok := refs[e.From]; ok {
		x.From = &r
	}
	if r, ok := refs[e.To]; ok {
		x.To = &r
	}
	return x
}

// ArchivedJob is one line of an archive: a job as it was closed and all
// its entries.
type ArchivedJob struct {
	Job     Account       `json:"job"`
	Entries []ExportEntry `json:"entries"`
}

// ArchiveOptions say what Archive moves and where.
type ArchiveOptions struct {
	// Before: jobs closed or expired before this time are archived, with
	// all their entries. Required.
	Before time.Time
	// Now is recorded as the time of each batch (zero: the wall clock).
	Now time.Time
	// File names where Write puts the rows; recorded in the checkpoint.
	File string
	// BatchSize is how many jobs one transaction moves (0: 10,000). Each
	// batch is atomic; between batches a running node's writes proceed.
	BatchSize int
	// Write receives each batch's jobs inside its transaction, after the
	// rows are deleted and before the commit; an error rolls the batch
	// back. It must make them durable before it returns. A batch retried
	// after a conflict is written again, so after a failure a job can
	// appear twice (or appear and still be live): readers go by job ID.
	Write func([]ArchivedJob) error
}

// ArchiveResult says what Archive moved.
type ArchiveResult struct {
	Batches int   `json:"batches"`
	Jobs    int64 `json:"jobs"`
	Entries int64 `json:"entries"`
	Totals  Flows `json:"totals"`
}

// Archive moves every closed or expired job closed before opts.Before, and
// all its entries, out of the live tables: opts.Write receives them and the
// store keeps a checkpoint (see Checkpoint) so that Verify still proves
// conservation and every account's counters across the cut. Pools are never
// archived and keep their counters; a job named by a winning ticket stays.
// Archive runs batches until none is left, so running it again moves
// nothing more. An entry of an archived job that touches anything but the
// job, its pool or the outside stops it with an error (nothing of that
// batch moved).
//
// The idempotency keys of archived entries go with them: a retry of an
// operation older than the cut is no longer recognised as one. Choose a cut
// well past any retry window and ticket validity.
func Archive(ctx context.Context, s Store, opts ArchiveOptions) (ArchiveResult, error) {
	var res ArchiveResult
	if opts.Before.IsZero() {
		return res, fmt.Errorf("%w: archive needs a cut-off time", ErrInvalidInput)
	}
	if opts.Write == nil {
		return res, fmt.Errorf("%w: archive needs somewhere to write", ErrInvalidInput)
	}
	size := opts.BatchSize
	if size <= 0 {
		size = 10_000
	}
	for {
		var batch ArchiveBatch
		err := s.Update(ctx, func(tx Tx) error {
			jobs, err := tx.ArchivableJobs(ctx, opts.Before, size)
			if err != nil || len(jobs) == 0 {
				batch = ArchiveBatch{}
				return err
			}
			now := opts.Now
			if now.IsZero() {
				now = time.Now()
			}
			b, out, err := archiveBatch(ctx, tx, jobs)
			if err != nil {
				return err
			}
			b.Before, b.At, b.File = opts.Before.UTC(), now.UTC(), opts.File
			if err := tx.Archive(ctx, b); err != nil {
				return err
			}
			if err := opts.Write(out); err != nil {
				return fmt.Errorf("write archive: %w", err)
			}
			batch = b
			return nil
		})
		if err != nil {
			return res, err
		}
		if len(batch.JobIDs) == 0 {
			return res, nil
		}
		res.Batches++
		res.Jobs += int64(len(batch.JobIDs))
		res.Entries += int64(len(batch.EntryIDs))
		res.Totals = res.Totals.add(batch.Totals)
	}
}

// archiveBatch reads the jobs' entries and works out what archiving them
// carries forward.
func archiveBatch(ctx context.Context, tx Tx, jobs []Account) (ArchiveBatch, []ArchivedJob, error) {
	b := ArchiveBatch{Carry: map[int64]Flows{}}
	refs := map[int64]Ref{}
	index := map[int64]int{}
	out := make([]ArchivedJob, len(jobs))
	for i, j := range jobs {
		if j.Ref.Kind != KindJob || !j.State.IsFinal() || !j.Balance.IsZero() {
			return b, nil, fmt.Errorf("archive: %s (id %d) is not a final job at zero", j.Ref, j.ID)
		}
		b.JobIDs = append(b.JobIDs, j.ID)
		refs[j.ID], refs[j.PoolID] = j.Ref, j.PoolRef
		index[j.ID] = i
		out[i].Job = j
		b.Totals = b.Totals.add(Flows{j.Credited, j.Charged, j.MovedIn, j.MovedOut})
	}
	entries, err := tx.EntriesOf(ctx, b.JobIDs)
	if err != nil {
		return b, nil, err
	}
	var seen Flows
	for _, e := range entries {
		b.EntryIDs = append(b.EntryIDs, e.ID)
		_, fromJob := index[e.From]
		_, toJob := index[e.To]
		var job, other int64
		switch {
		case fromJob && toJob:
			return b, nil, fmt.Errorf("archive: entry %d moves between two jobs", e.ID)
		case fromJob:
			job, other = e.From, e.To
		case toJob:
			job, other = e.To, e.From
		default:
			return b, nil, fmt.Errorf("archive: entry %d is not one of the jobs'", e.ID)
		}
		switch {
		case other == 0 && e.Kind == EntryCredit && e.To == job:
			seen.Credited = seen.Credited.Add(e.Amount)
		case other == 0 && e.Kind == EntryCharge && e.From == job:
			seen.Charged = seen.Charged.Add(e.Amount)
		case other != 0 && other == jobs[index[job]].PoolID:
			c := b.Carry[other]
			if e.From == other {
				c.MovedOut = c.MovedOut.Add(e.Amount)
				seen.MovedIn = seen.MovedIn.Add(e.Amount)
			} else {
				c.MovedIn = c.MovedIn.Add(e.Amount)
				seen.MovedOut = seen.MovedOut.Add(e.Amount)
			}
			b.Carry[other] = c
		default:
			return b, nil, fmt.Errorf("archive: entry %d (%s) of %s touches account %d, not its pool",
				e.ID, e.Kind, refs[job], other)
		}
		i := index[job]
		out[i].Entries = append(out[i].Entries, exportEntry(e, refs))
	}
	// The jobs' counters are what their entries say, or the books were
	// wrong before the cut and archiving would hide it.
	if !flowsEqual(seen, b.Totals) {
		return b, nil, errors.New("archive: the jobs' counters disagree with their entries; run byoc ledger verify")
	}
	return b, out, nil
}

func flowsEqual(a, b Flows) bool {
	return a.Credited.Cmp(b.Credited) == 0 && a.Charged.Cmp(b.Charged) == 0 &&
		a.MovedIn.Cmp(b.MovedIn) == 0 && a.MovedOut.Cmp(b.MovedOut) == 0
}

// Export calls fn for every entry with from ≤ At < to (a zero bound is
// open), in ID order, on one consistent snapshot.
func Export(ctx context.Context, s Store, from, to time.Time, fn func(ExportEntry) error) error {
	return s.View(ctx, func(tx ReadTx) error {
		refs := map[int64]Ref{}
		if err := tx.ScanAccounts(ctx, func(a Account) error {
			refs[a.ID] = a.Ref
			return nil
		}); err != nil {
			return err
		}
		return tx.ScanEntries(ctx, func(e Entry) error {
			if (!from.IsZero() && e.At.Before(from)) || (!to.IsZero() && !e.At.Before(to)) {
				return nil
			}
			return fn(exportEntry(e, refs))
		})
	})
}
