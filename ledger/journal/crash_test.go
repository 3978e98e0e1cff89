package journal_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/ledgertest"
	"byoc/ledger/sqlite"
)

// The crash test runs the ledger on the journal store in a child process
// (this test binary, re-executed), kills it with SIGKILL in the middle of a
// concurrent load, and checks, on reopening, that every operation the
// child acknowledged is there exactly once and every invariant holds. The
// projection lags the journal on purpose (a large MaxLag), so kills land
// with records in the journal that the tables do not hold yet, and in the
// middle of projection transactions. Small segments make it rotate and
// delete segments too. Several rounds run on the same ledger, as a node
// that keeps crashing would.

const crashChildEnv = "BYOC_JOURNAL_CRASH_CHILD"

var crashOpts = journal.Options{SegmentBytes: 32 << 10, MaxLag: 1 << 20, ProjectAfter: 300, ProjectDelay: time.Hour}

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestKill9 as its child process")
	}
	ctx := context.Background()
	s, err := journal.Open(ctx, path, crashOpts)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	l := ledger.New(s, ledger.Options{})
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	round := os.Getenv("BYOC_JOURNAL_CRASH_ROUND")
	ack("READY")
	// A deliverer marks every other event delivered as they come, as a
	// signer's outbox worker would, and acknowledges each delivery.
	charged := make(chan struct{}, 1)
	go func() {
		var after int64
		for range charged {
			for {
				evs, err := l.PendingOutbox(ctx, after, 50)
				if err != nil {
					ack("ERR pending %v", err)
					return
				}
				if len(evs) == 0 {
					break
				}
				var ids []int64
				var keys []string
				for _, e := range evs {
					if e.ID%2 == 0 {
						ids = append(ids, e.ID)
						keys = append(keys, e.Key)
					}
				}
				after = evs[len(evs)-1].ID
				if err := l.MarkDelivered(ctx, ids); err != nil {
					ack("ERR deliver %v", err)
					return
				}
				for _, k := range keys {
					ack("DELIVER %s", k)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool := ledger.PoolKey{Sender: fmt.Sprintf("0xs%d", w%4), Capability: "echo"}
			for i := 0; ; i++ {
				key := fmt.Sprintf("r%s-w%d-%d", round, w, i)
				if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(1000), key+"-fund"); err != nil {
					ack("ERR credit %v", err)
					return
				}
				ack("CREDIT %s-fund", key)
				job := ledger.JobKey{Sender: pool.Sender, JobID: key}
				if _, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(600), TTL: time.Hour}); err != nil {
					ack("ERR open %v", err)
					return
				}
				ack("OPEN %s", key)
				ev := ledger.OutboxEvent{Key: key + "-ev", Topic: "usage", Subject: pool.Sender, Body: []byte(key)}
				if _, err := l.ChargeWithEvent(ctx, job.Ref(), ledger.Wei(250), ledger.Wei(0), key+"-use", ev); err != nil {
					ack("ERR charge %v", err)
					return
				}
				ack("CHARGE %s-use", key)
				select {
				case charged <- struct{}{}:
				default:
				}
				if i%3 == 0 {
					continue // leave some jobs open across the crash
				}
				cctx := ctx
				if i%3 == 1 {
					// Acknowledged before its sync, as an orchestrator
					// closes finished jobs: a kill loses nothing of it.
					cctx = ledger.DeferSync(ctx)
				}
				if _, err := l.CloseJob(cctx, job); err != nil {
					ack("ERR close %v", err)
					return
				}
				ack("CLOSE %s", key)
			}
		}()
	}
	wg.Wait()
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	acked := map[string][]string{} // kind → keys
	for round := range 4 {
		want := 1500 + 900*round // kill at a different point each round
		n := ledgertest.KillAfter(t, "TestCrashChild", []string{crashChildEnv + "=" + path, fmt.Sprintf("BYOC_JOURNAL_CRASH_ROUND=%d", round)}, want, acked)
		unprojected := journalBeyondTables(t, path)
		if round == 1 {
			// A record being written when the process died: a torn tail.
			tearLastSegment(t, path)
		}
		checkAfterCrash(t, path, acked)
		t.Logf("round %d: killed after %d acknowledged operations (%d journal records beyond the tables); all present once, invariants hold",
			round, n, unprojected)
	}
}

// journalBeyondTables counts the journal's records beyond what the tables
// hold, reading the files as they are after the kill.
func journalBeyondTables(t *testing.T, path string) int {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.OpenExisting(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	projected, _, err := s.JournalState(ctx)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, seg := range segments(t, path) {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for off := 8; off+16 <= len(b); {
			size := int(binary.LittleEndian.Uint32(b[off:]))
			if off+16+size > len(b) {
				break
			}
			if binary.LittleEndian.Uint64(b[off+8:]) > projected {
				n++
			}
			off += 16 + size
		}
	}
	return n
}

func segments(t *testing.T, path string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(journal.Dir(path), "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs)
	return segs
}

// tearLastSegment writes half a record after the last segment's records
// (over its zero fill): a header that promises more bytes than follow.
func tearLastSegment(t *testing.T, path string) {
	t.Helper()
	segs := segments(t, path)
	if len(segs) == 0 {
		t.Fatal("no journal segment after the kill")
	}
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	// Where the records end: the zero fill, or the file's end.
	end := 8
	for end+16 <= len(b) && binary.LittleEndian.Uint64(b[end+8:]) != 0 {
		end += 16 + int(binary.LittleEndian.Uint32(b[end:]))
	}
	f, err := os.OpenFile(last, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr := binary.LittleEndian.AppendUint32(nil, 500)
	hdr = binary.LittleEndian.AppendUint32(hdr, 0xdeadbeef)
	hdr = binary.LittleEndian.AppendUint64(hdr, 1<<40)
	if _, err := f.WriteAt(append(hdr, `{"c":[{"a":`...), int64(end)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkAfterCrash(t *testing.T, path string, acked map[string][]string) {
	t.Helper()
	ctx := context.Background()
	s, err := journal.Open(ctx, path, crashOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := ledger.Verify(ctx, s, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("after kill -9: %s", p)
	}
	var keys []string
	keys = append(keys, acked["CREDIT"]...)
	keys = append(keys, acked["CHARGE"]...)
	found := map[string]int{}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		for i := 0; i < len(keys); i += 200 {
			es, err := tx.EntriesByKey(ctx, keys[i:min(i+200, len(keys))])
			if err != nil {
				return err
			}
			for _, e := range es {
				found[e.Key]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if found[k] != 1 {
			t.Errorf("acknowledged operation %s is there %d times after kill -9", k, found[k])
		}
	}
	// Every entry once: a record projected twice would repeat its entries
	// (and double the counters, which Verify checks against them).
	var total int
	if err := s.View(ctx, func(tx ledger.ReadTx) error {
		return tx.ScanEntries(ctx, func(e ledger.Entry) error { total++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	for _, kind := range []string{"OPEN", "CLOSE"} {
		for _, id := range acked[kind] {
			a, err := findJob(ctx, l, id)
			if err != nil {
				t.Errorf("acknowledged %s of job %s: %v", kind, id, err)
				continue
			}
			if kind == "CLOSE" && a.State != ledger.StateClosed {
				t.Errorf("acknowledged close of %s, state %s after kill -9", id, a.State)
			}
		}
	}
	checkOutboxAfterCrash(t, s, acked)
	if r.Credited.Sign() == 0 || total == 0 {
		t.Fatal("nothing was credited: the child did no work")
	}
}

// checkOutboxAfterCrash: every acknowledged charge's event is there once,
// every event has its charge and every charge its event (written
// together), every acknowledged delivery holds, and the pending events
// the recovered store answers are exactly the undelivered ones.
func checkOutboxAfterCrash(t *testing.T, s *journal.Store, acked map[string][]string) {
	t.Helper()
	ctx := context.Background()
	type row struct {
		id        int64
		body      string
		delivered bool
	}
	events := map[string][]row{}
	var undelivered []int64
	rows, err := s.DB().QueryContext(ctx, `SELECT id, event_key, body, delivered_at IS NOT NULL FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r row
		var key string
		if err := rows.Scan(&r.id, &key, &r.body, &r.delivered); err != nil {
			t.Fatal(err)
		}
		events[key] = append(events[key], r)
		if !r.delivered {
			undelivered = append(undelivered, r.id)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	for _, k := range acked["CHARGE"] {
		op := strings.TrimSuffix(k, "-use")
		if rs := events[op+"-ev"]; len(rs) != 1 || rs[0].body != op {
			t.Errorf("acknowledged charge %s: its event is there as %+v after kill -9", k, rs)
		}
	}
	for _, k := range acked["DELIVER"] {
		if rs := events[k]; len(rs) != 1 || !rs[0].delivered {
			t.Errorf("acknowledged delivery of %s: %+v after kill -9", k, rs)
		}
	}
	charges := map[string]bool{}
	if err := s.View(ctx, func(tx ledger.ReadTx) error {
		return tx.ScanEntries(ctx, func(e ledger.Entry) error {
			if strings.HasSuffix(e.Key, "-use") {
				charges[strings.TrimSuffix(e.Key, "-use")+"-ev"] = true
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	for k := range events {
		if !charges[k] {
			t.Errorf("event %s without its charge after kill -9", k)
		}
	}
	for k := range charges {
		if len(events[k]) == 0 {
			t.Errorf("charge of %s without its event after kill -9", k)
		}
	}
	var pending []int64
	if err := s.View(ctx, func(tx ledger.ReadTx) error {
		evs, err := tx.PendingOutbox(ctx, 0, 1<<30)
		for _, e := range evs {
			pending = append(pending, e.ID)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pending) != fmt.Sprint(undelivered) {
		t.Errorf("pending after recovery %v, undelivered in the tables %v", pending, undelivered)
	}
	if len(acked["DELIVER"]) == 0 || len(undelivered) == 0 {
		t.Errorf("%d deliveries acknowledged, %d events undelivered: the test exercised too little", len(acked["DELIVER"]), len(undelivered))
	}
}

// findJob finds a job by ID; the child spreads jobs over senders 0xs0..0xs3.
func findJob(ctx context.Context, l *ledger.Ledger, id string) (ledger.Account, error) {
	var err error
	for s := range 4 {
		var a ledger.Account
		a, err = l.Account(ctx, ledger.JobKey{Sender: fmt.Sprintf("0xs%d", s), JobID: id}.Ref())
		if err == nil {
			return a, nil
		}
	}
	return ledger.Account{}, err
}

// A damaged record with valid segments after it is not a torn tail: the
// store refuses to open rather than drop acknowledged records.
func TestDamagedMiddleSegmentRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, err := journal.Open(ctx, path, journal.Options{SegmentBytes: 1 << 10, MaxLag: 1 << 20, ProjectAfter: 1 << 20, ProjectDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{})
	pool := ledger.PoolKey{Sender: "0xa", Capability: "echo"}
	for i := range 40 {
		if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(1), fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Copy the segments aside before Close deletes them (all projected),
	// then put them back with the tables rolled back to before them.
	segs := segments(t, path)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	saved := map[string][]byte{}
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = b
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.DB().Exec(`UPDATE journal_state SET projected = 0`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	for p, b := range saved {
		if p == segs[0] {
			b[len(b)-3] ^= 0xff // a flipped bit in the first segment's last record
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := journal.Open(ctx, path, journal.Options{}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("open with a damaged middle segment = %v, want a refusal", err)
	}
}

// One process owns a journal.
func TestLocked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, err := journal.Open(ctx, path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := journal.Open(ctx, path, journal.Options{}); !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("second open = %v, want ErrLocked", err)
	}
}
