package stores_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/ledgertest"
	"byoc/ledger/sqlite"
	"byoc/ledger/stores"
)

// A data directory written by the plain SQLite store (every byoc before
// the journal) opens with the journal store, the default, and keeps its
// balances, jobs, keys and ticket sessions; what the journal store then
// does is in the tables when the plain store opens it again.
func TestMigrateSQLiteToJournalAndBack(t *testing.T) {
	ctx := context.Background()
	dir := ledgertest.TempDir(t)
	clock := ledger.NewManualClock(ledgertest.Epoch)
	pool := ledger.PoolKey{Sender: "0xa", Capability: "echo"}
	job := ledger.JobKey{Sender: "0xa", JobID: "open-across-migration"}

	// Today's ledger: plain SQLite.
	plain, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(plain, ledger.Options{Clock: clock})
	_, err = l.Credit(ctx, pool.Ref(), ledger.Wei(10_000), "fund")
	must(t, err)
	_, err = l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(3_000), TTL: time.Hour})
	must(t, err)
	_, err = l.Charge(ctx, job.Ref(), ledger.Wei(500), ledger.Amount{}, "use-1")
	must(t, err)
	l.Close()
	plain.Close()

	// The default store on the same directory: the journal store.
	t.Setenv(stores.EnvStore, "")
	st, _, err := stores.Open(ctx, dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*journal.Store); !ok {
		t.Fatalf("default embedded store is %T, want *journal.Store", st)
	}
	l = ledger.New(st, ledger.Options{Clock: clock})
	wantBalance(t, l, pool.Ref(), 7_000)
	wantBalance(t, l, job.Ref(), 2_500)
	// The old key is known: a replay changes nothing.
	if r, err := l.Charge(ctx, job.Ref(), ledger.Wei(500), ledger.Amount{}, "use-1"); err != nil || !r.Replayed {
		t.Fatalf("replay of a key from before the migration = %+v, %v", r, err)
	}
	_, err = l.Charge(ctx, job.Ref(), ledger.Wei(700), ledger.Amount{}, "use-2")
	must(t, err)
	_, err = l.CloseJob(ctx, job)
	must(t, err)
	wantBalance(t, l, pool.Ref(), 8_800)
	verify(t, st)
	l.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// And back: the plain store reads the tables, which hold it all.
	t.Setenv(stores.EnvStore, "sqlite")
	st, _, err = stores.Open(ctx, dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*journal.Store); ok {
		t.Fatal("BYOC_LEDGER_STORE=sqlite opened the journal store")
	}
	l = ledger.New(st, ledger.Options{Clock: clock})
	wantBalance(t, l, pool.Ref(), 8_800)
	a, err := l.Account(ctx, job.Ref())
	if err != nil || a.State != ledger.StateClosed {
		t.Fatalf("job after switching back: %+v, %v", a, err)
	}
	verify(t, st)
	l.Close()
	st.Close()

	t.Setenv(stores.EnvStore, "tables")
	if _, _, err := stores.Open(ctx, dir, "", false); err == nil {
		t.Fatal("an unknown store kind opened")
	}
	js, err := journal.Open(ctx, filepath.Join(dir, sqlite.FileName), journal.Options{})
	if err != nil {
		t.Fatalf("journal store after the plain one: %v", err)
	}
	js.Close()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantBalance(t *testing.T, l *ledger.Ledger, ref ledger.Ref, want int64) {
	t.Helper()
	b, err := l.Balance(context.Background(), ref)
	if err != nil || b.Cmp(ledger.Wei(want)) != 0 {
		t.Fatalf("balance of %s = %s, %v; want %d", ref, b, err, want)
	}
}

func verify(t *testing.T, s ledger.Store) {
	t.Helper()
	r, err := ledger.Verify(context.Background(), s, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("invariant: %s", p)
	}
}
