// Package journal is the embedded ledger store byoc runs by default: the
// ledger's state in memory, its truth in an append-only journal. Every
// Update is one checksummed record, appended and synced before the
// operations it carries are acknowledged; the SQLite tables that
// statements, verify and operators read are a projection of the journal,
// applied in the background in large batches and caught up from the
// journal when the store opens. One process owns a journal (a flock).
// docs/ledger.md describes the format, durability and recovery.
package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"byoc/ledger"
	"byoc/ledger/sqlite"
	"byoc/ledger/sqlstore"
)

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// SegmentBytes is the size after which the journal starts a new
	// segment file (default 64 MiB); segments the projection holds are
	// deleted.
	SegmentBytes int64
	// MaxLag bounds how many records may wait for the projection before
	// Update waits for it (default 8192).
	MaxLag int
	// ProjectBatch bounds how many records one projection transaction
	// applies (default 4096).
	ProjectBatch int
	// ProjectAfter makes the projector wait until this many records are
	// pending, unless something waits for the projection (a read of
	// history, Sync, Close) or ProjectDelay passes (default 2048).
	ProjectAfter int
	// ProjectDelay is how long the projector waits for ProjectAfter
	// records before it projects what there is (default 250 ms). Large
	// batches are what make the projection cheap: a batch writes each
	// table and index page it touches once, a pool changed by every job
	// once, and commits (and checkpoints) once. Nothing waits for it but
	// reads of history, which wake it.
	ProjectDelay time.Duration
	// FilterBytes is the size of the filter that tells new names (jobs,
	// keys) from old ones without asking the tables (default 16 MiB).
	FilterBytes int
	// NormalSync writes each batch's records without syncing them: a
	// process kill loses nothing (the records are in the operating
	// system's cache), a power cut or an operating-system crash may lose
	// the last batches' records (a torn tail is ignored at open). As
	// SQLite's synchronous=NORMAL, for a ledger reconciled against another's
	// durable one: the gateway's books (docs/gateway.md, "Durability").
	NormalSync bool
	// DeferredSyncWithin bounds how long a record acknowledged before its
	// sync (an Update whose context carries ledger.DeferSync) waits for
	// one: the next synced Update makes it durable, or a sync this long
	// after it (default 10 ms).
	DeferredSyncWithin time.Duration
	Logger             *slog.Logger
}

// NormalSync reports whether the store was opened with Options.NormalSync:
// batches written, not synced.
func (s *Store) NormalSync() bool { return s.opts.NormalSync }

// syncFunc is how a batch's records are made durable: fdatasync, or
// nothing with NormalSync.
func (s *Store) syncFunc() func(*os.File) error {
	if s.opts.NormalSync {
		return func(*os.File) error { return nil }
	}
	return dataSync
}

// ErrLocked is Open's error when another process owns the journal.
var ErrLocked = errors.New("journal: the ledger is in use by another process")

// Dir is the journal directory of the ledger file at path.
func Dir(path string) string { return path + ".journal" }

// Store is a ledger.Store over a journal and a SQLite projection.
type Store struct {
	inner *sqlstore.Store
	dir   string
	lockf *os.File
	opts  Options

	wmu     sync.Mutex // serializes Update; guards the fields below
	log     *segLog
	nextSeq uint64
	nextID  int64
	// nextEvent is the next outbox event's ID.
	nextEvent int64
	broken    error
	closed    bool
	// utx is every Update's Tx, encBuf the buffer records are encoded in.
	utx    updateTx
	encBuf []byte

	mu        sync.RWMutex // guards m, committed and mustSync
	m         *mem
	committed uint64
	// mustSync is the last record of an Update acknowledged only once
	// durable: a view waits for it (records after it are acknowledged
	// already, or about to be).
	mustSync uint64

	// Deferred syncs (Options.DeferredSyncWithin): one timer armed while a
	// record acknowledged before its sync waits for one.
	dmu      sync.Mutex
	dtimer   *time.Timer
	dclosed  bool
	dwg      sync.WaitGroup
	deferred uint64 // records acknowledged before their sync (Stats)

	pmu       sync.Mutex
	pcond     *sync.Cond
	pending   []*record // committed, not yet projected
	evictable []*record // projected, not yet evicted from memory
	projected uint64
	perr      error
	waiters   int // goroutines in waitProjected
	kick      chan struct{}
	stopping  bool
	pdone     chan struct{}
}

var _ ledger.Store = (*Store)(nil)

// Open opens (creating if needed) the ledger file at path and its journal
// in Dir(path), projects what the journal holds beyond the tables, and
// loads the live state into memory. A ledger file written by the plain
// SQLite store opens as it is: its tables are the state.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
	}
	if opts.MaxLag <= 0 {
		opts.MaxLag = 8192
	}
	if opts.ProjectAfter <= 0 {
		opts.ProjectAfter = 2048
	}
	if opts.ProjectDelay <= 0 {
		opts.ProjectDelay = 250 * time.Millisecond
	}
	if opts.ProjectBatch <= 0 {
		opts.ProjectBatch = 4096
	}
	if opts.FilterBytes <= 0 {
		opts.FilterBytes = 16 << 20
	}
	if opts.DeferredSyncWithin <= 0 {
		opts.DeferredSyncWithin = 10 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dir := Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lockf, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	inner, err := sqlite.OpenWith(ctx, path, sqlite.Options{Projection: true})
	if err != nil {
		lockf.Close()
		return nil, err
	}
	s := &Store{inner: inner, dir: dir, lockf: lockf, opts: opts, m: newMem(opts.FilterBytes), pdone: make(chan struct{}), kick: make(chan struct{}, 1)}
	s.pcond = sync.NewCond(&s.pmu)
	if err := s.recover(ctx); err != nil {
		inner.Close()
		lockf.Close()
		return nil, err
	}
	go s.projectLoop()
	return s, nil
}

// recover projects the journal's records beyond the tables, starts a new
// segment and loads memory from the tables.
func (s *Store) recover(ctx context.Context) error {
	projected, maxID, err := s.inner.JournalState(ctx)
	if err != nil {
		return err
	}
	paths, _, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	last := projected
	var batch []*record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.project(ctx, batch)
		batch = batch[:0]
		return err
	}
	for i, p := range paths {
		end, err := readSegment(p, func(seq uint64, payload []byte) error {
			if seq <= last {
				if seq <= projected {
					return nil // projected before the crash
				}
				return fmt.Errorf("journal: record %d after %d in %s", seq, last, p)
			}
			if seq != last+1 {
				return fmt.Errorf("journal: record %d missing before %d (%s)", last+1, seq, p)
			}
			r, err := decode(seq, payload)
			if err != nil {
				return fmt.Errorf("journal: record %d: %w", seq, err)
			}
			last = seq
			if r.special() {
				if err := flush(); err != nil {
					return err
				}
				return s.project(ctx, []*record{r})
			}
			batch = append(batch, r)
			if len(batch) >= s.opts.ProjectBatch {
				return flush()
			}
			return nil
		})
		if errors.Is(err, errTorn) {
			if i != len(paths)-1 {
				return fmt.Errorf("journal: segment %s is damaged before its end, and later segments follow", p)
			}
			// The tail of the last segment: a record being written when
			// the process died, never acknowledged. Cut it off.
			s.opts.Logger.Warn("ledger journal: ignoring a torn last record", "segment", p, "offset", end)
			err = nil
		}
		if err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	// Everything is projected (synchronously, durably): the old segments
	// go, and the journal starts afresh after the last record.
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	s.projected, s.committed, s.nextSeq, s.nextID = last, last, last+1, maxID+1
	if _, m2, err := s.inner.JournalState(ctx); err != nil {
		return err
	} else if m2+1 > s.nextID {
		s.nextID = m2 + 1
	}
	maxEvent, err := s.inner.OutboxState(ctx)
	if err != nil {
		return err
	}
	s.nextEvent = maxEvent + 1
	if _, err := s.inner.DB().ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		return err
	}
	if s.log, err = openLog(s.dir, s.opts.SegmentBytes, s.syncFunc(), last); err != nil {
		return err
	}
	if err := s.inner.ScanLive(ctx, func(a ledger.Account) error {
		s.m.accts[a.Ref] = &memAcct{a: a}
		return nil
	}); err != nil {
		return err
	}
	if err := s.inner.ScanNames(ctx, func(ref string) { s.m.names.add(nameRef, ref) },
		func(key string) { s.m.names.add(nameKey, key) }); err != nil {
		return err
	}
	if err := s.inner.ScanOutbox(ctx, func(key string) { s.m.names.add(nameOutbox, key) },
		func(e ledger.OutboxEvent) error { s.m.addEvent(e); return nil }); err != nil {
		return err
	}
	return s.inner.ScanSessions(ctx, func(name string, expiry int64, nonces []uint32) error {
		ms := &memSession{expiry: expiry, nonces: make(map[uint32]struct{}, len(nonces))}
		for _, n := range nonces {
			ms.nonces[n] = struct{}{}
		}
		s.m.sessions[name] = ms
		return nil
	})
}

// Writers implements ledger.Store: two committers, so that one batch is
// applied and written while the previous one syncs. Their Updates run
// one at a time; only the syncs overlap.
func (s *Store) Writers() int { return 2 }

// Projection returns the SQLite store the journal is projected into (for
// tools and tests; it may lag behind the journal until Sync).
func (s *Store) Projection() *sqlstore.Store { return s.inner }

// Sync waits until the projection holds every committed record.
func (s *Store) Sync(ctx context.Context) error {
	s.mu.RLock()
	c := s.committed
	s.mu.RUnlock()
	return s.waitProjected(ctx, c)
}

// Close projects what is committed, closes the journal and the tables
// and releases the lock.
func (s *Store) Close() error {
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return nil
	}
	s.closed = true
	s.wmu.Unlock()
	s.stopDeferredSyncs()
	s.log.smu.Lock()
	written := s.log.written
	s.log.smu.Unlock()
	serr := s.log.syncTo(written)
	s.pmu.Lock()
	s.stopping = true
	s.pcond.Broadcast()
	s.kickProjector()
	s.pmu.Unlock()
	<-s.pdone
	s.pmu.Lock()
	perr := s.perr
	projected := s.projected
	s.pmu.Unlock()
	var err error
	if perr == nil && s.log.droppable(projected) {
		// All projected: the journal's closed segments may go.
		if err = s.durable(); err == nil {
			err = s.log.dropThrough(projected)
		}
	}
	err = errors.Join(serr, err, s.log.close(), s.inner.Close(), s.lockf.Close())
	return err
}

// DB returns the tables' write handle once the projection holds every
// committed record (for tests and tools that write SQL by hand; the
// store must then be reopened).
func (s *Store) DB() *sql.DB {
	if err := s.Sync(context.Background()); err != nil {
		s.opts.Logger.Error("ledger journal: sync before handing out the tables", "err", err)
	}
	return s.inner.DB()
}

// Stats are counters of a store since it opened.
type Stats struct {
	Records   uint64 // journal records appended (one per committed Update)
	Bytes     uint64 // their bytes, headers included
	Syncs     uint64 // journal syncs for records (one serves every record written before it; a zero fill's own sync is not counted)
	Deferred  uint64 // records acknowledged before their sync (ledger.DeferSync)
	Projected uint64 // seq of the last record the tables hold
	Pending   int    // records waiting for the projection
	Accounts  int    // accounts in memory (pools, open jobs, unprojected final jobs)
	Keys      int    // idempotency keys in memory (unprojected)
	Sessions  int    // ticket sessions in memory
	Outbox    int    // outbox events in memory (undelivered, or delivery unprojected)
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.wmu.Lock()
	st := Stats{Records: s.log.records, Bytes: s.log.bytes}
	s.wmu.Unlock()
	s.log.smu.Lock()
	st.Syncs = s.log.syncs
	s.log.smu.Unlock()
	s.dmu.Lock()
	st.Deferred = s.deferred
	s.dmu.Unlock()
	s.pmu.Lock()
	st.Projected, st.Pending = s.projected, len(s.pending)
	s.pmu.Unlock()
	s.mu.RLock()
	st.Accounts, st.Keys, st.Sessions = len(s.m.accts), len(s.m.keys), len(s.m.sessions)
	st.Outbox = len(s.m.outbox)
	s.mu.RUnlock()
	return st
}

// PruneOutbox deletes delivered outbox events from the projection (they
// are not held in memory: only undelivered ones are), once it holds what
// is committed. A record replayed after a crash is one the projection had
// not applied, so a pruned event does not come back.
func (s *Store) PruneOutbox(ctx context.Context, deliveredBefore time.Time) (int64, error) {
	if err := s.Sync(ctx); err != nil {
		return 0, err
	}
	return s.inner.PruneOutbox(ctx, deliveredBefore)
}
