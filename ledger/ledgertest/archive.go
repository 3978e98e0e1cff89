package ledgertest

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	"byoc/ledger"
)

var archiveTests = []struct {
	name string
	fn   func(t *testing.T, e *Env)
}{
	{"ArchiveKeepsConservation", testArchive},
	{"ArchiveWriteFailureMovesNothing", testArchiveWriteFails},
	{"ArchiveMigrationUpgradesALedger", testArchiveMigration},
}

// archiveHistory writes: pool A funded; job-1 (paid, charged, closed at
// +1 min), job-2 (closed at +2 h), job-3 open (opened at +2 h), job-4 closed at +1 min but
// named by a winning ticket; job-5 expired by the sweeper at about +3 min.
func archiveHistory(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 10_000, "fund")
	for _, id := range []string{"job-1", "job-4", "job-5"} {
		mustOpen(e, ledger.JobKey{Sender: poolA.Sender, JobID: id}, 1000, 0)
	}
	e.Credit(jobA1.Ref(), 500, "pay-1")
	if _, err := charge(e, jobA1.Ref(), 700, 0, "use-1"); err != nil {
		t.Fatal(err)
	}
	job4 := ledger.JobKey{Sender: poolA.Sender, JobID: "job-4"}
	if _, err := e.Ledger.ReceivePayment(e.Ctx, ledger.PaymentRequest{To: job4.Ref(), Session: "s", SessionExpiry: 9,
		Tickets: []ledger.PaymentTicket{{Nonce: 1, Credit: ledger.PaymentCredit{Key: "win", Amount: ledger.Wei(5)}}},
		Winners: []ledger.Winner{{Key: "win", Sender: poolA.Sender, FaceValue: ledger.Wei(50), Payload: []byte("{}")}}}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Minute / 2)
	for _, j := range []ledger.JobKey{jobA1, job4} {
		if _, err := e.Ledger.CloseJob(e.Ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	e.Clock.Advance(2 * time.Minute)
	if _, err := e.Ledger.ExpireJobs(e.Ctx); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(2 * time.Hour)
	mustOpen(e, jobA2, 1000, 0)
	if _, err := charge(e, jobA2.Ref(), 100, 0, "use-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ledger.CloseJob(e.Ctx, jobA2); err != nil {
		t.Fatal(err)
	}
	mustOpen(e, ledger.JobKey{Sender: poolA.Sender, JobID: "job-3"}, 1000, 0)
}

func testArchive(t *testing.T, e *Env) {
	archiveHistory(t, e)
	before := e.MustVerify()
	poolBefore := e.Balance(poolA.Ref())
	var lines []ledger.ArchivedJob
	archive := func(cut time.Time) ledger.ArchiveResult {
		t.Helper()
		r, err := ledger.Archive(e.Ctx, e.Store, ledger.ArchiveOptions{Before: cut, Now: e.Clock.Now(), File: "test", BatchSize: 1,
			Write: func(js []ledger.ArchivedJob) error { lines = append(lines, js...); return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := archive(Epoch.Add(time.Hour))
	// job-1 and job-5 (expired) go, one batch each; job-4 stays for its
	// winning ticket, job-3 is open, job-2 closed after the cut.
	if r.Jobs != 2 || r.Batches != 2 || len(lines) != 2 || lines[0].Job.Ref != jobA1.Ref() || lines[1].Job.Ref.Name != "job-5" {
		t.Fatalf("archive = %+v, lines %+v", r, lines)
	}
	// job-1: reserve, credit, charge, release; job-5: reserve, expire.
	if r.Entries != 6 || len(lines[0].Entries) != 4 || len(lines[1].Entries) != 2 {
		t.Fatalf("archived entries %d: %+v", r.Entries, lines)
	}
	if x := lines[0].Entries[0]; x.Kind != ledger.EntryReserve || x.From == nil || *x.From != poolA.Ref() || *x.To != jobA1.Ref() {
		t.Fatalf("first archived entry %+v", x)
	}
	if r.Totals.Credited.Cmp(ledger.Wei(500)) != 0 || r.Totals.Charged.Cmp(ledger.Wei(700)) != 0 {
		t.Fatalf("archived totals %+v", r.Totals)
	}
	after := e.MustVerify()
	if after.Credited.Cmp(before.Credited) != 0 || after.Charged.Cmp(before.Charged) != 0 ||
		after.FinalJobs != before.FinalJobs-2 || after.Entries != before.Entries-6 || after.Archived == nil || after.Archived.Jobs != 2 {
		t.Fatalf("verify before archive %+v, after %+v", before, after)
	}
	e.WantBalance(poolA.Ref(), mustInt(poolBefore))
	if _, err := e.Ledger.Account(e.Ctx, jobA1.Ref()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("archived job: %v", err)
	}
	s, err := e.Ledger.Statement(e.Ctx, poolA.Ref(), 0)
	if err != nil || s.Archived == nil || s.Archived.MovedOut.Cmp(ledger.Wei(2000)) != 0 || s.Archived.MovedIn.Cmp(ledger.Wei(1800)) != 0 {
		t.Fatalf("pool statement after archive: %+v %v", s.Archived, err)
	}
	if last := s.Entries[len(s.Entries)-1]; s.Names[last.To].Name != "job-3" || s.Names[last.From] != poolA.Ref() {
		t.Fatalf("statement names %v for %+v", s.Names, s.Entries[len(s.Entries)-1])
	}

	// Again: nothing more.
	if r := archive(Epoch.Add(time.Hour)); r.Jobs != 0 || r.Batches != 0 {
		t.Fatalf("second archive = %+v", r)
	}
	// The ledger goes on: job-3 is charged and closed, the pool credited.
	if _, err := charge(e, ledger.JobKey{Sender: poolA.Sender, JobID: "job-3"}.Ref(), 10, 0, "use-3"); err != nil {
		t.Fatal(err)
	}
	e.Credit(poolA.Ref(), 1, "fund-2")
	e.MustVerify()
	// A later cut takes job-2 as well.
	if r := archive(e.Clock.Now().Add(time.Second)); r.Jobs != 1 {
		t.Fatalf("later archive = %+v", r)
	}
	if r := e.MustVerify(); r.Archived.Batches != 3 || r.Archived.Jobs != 3 || r.Credited.Cmp(before.Credited.Add(ledger.Wei(1))) != 0 {
		t.Fatalf("verify after the later archive: %+v", r)
	}
}

func testArchiveWriteFails(t *testing.T, e *Env) {
	archiveHistory(t, e)
	before := e.MustVerify()
	_, err := ledger.Archive(e.Ctx, e.Store, ledger.ArchiveOptions{Before: Epoch.Add(time.Hour), Now: e.Clock.Now(),
		Write: func([]ledger.ArchivedJob) error { return errors.New("disk full") }})
	if err == nil {
		t.Fatal("archive succeeded without writing")
	}
	if r := e.MustVerify(); r.Entries != before.Entries || r.FinalJobs != before.FinalJobs || r.Archived != nil {
		t.Fatalf("a failed archive changed the ledger: %+v", r)
	}
	_, err = ledger.Archive(e.Ctx, e.Store, ledger.ArchiveOptions{Write: func([]ledger.ArchivedJob) error { return nil }})
	WantErr(t, err, ledger.ErrInvalidInput)
}

func mustInt(a ledger.Amount) int64 {
	n, _ := a.Int64()
	return n
}

// testArchiveMigration takes a ledger with history back to the schema
// before migration 4, reopens it (applying 4) and archives it.
func testArchiveMigration(t *testing.T, e *Env) {
	archiveHistory(t, e)
	db, ok := e.Store.(interface{ DB() *sql.DB })
	if !ok {
		t.Skip("the store has no SQL handle")
	}
	for _, q := range []string{`DROP TABLE archive_carry`, `DROP TABLE archives`, `DROP INDEX winners_account`, `DROP INDEX accounts_pool`,
		`DELETE FROM schema_migrations WHERE version = 4`} {
		if _, err := db.DB().ExecContext(e.Ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e.Restart()
	before := e.MustVerify()
	r, err := ledger.Archive(e.Ctx, e.Store, ledger.ArchiveOptions{Before: Epoch.Add(time.Hour), Write: func([]ledger.ArchivedJob) error { return nil }})
	if err != nil || r.Jobs != 2 {
		t.Fatalf("archive after the migration = %+v, %v", r, err)
	}
	if after := e.MustVerify(); after.Credited.Cmp(before.Credited) != 0 || after.Archived == nil {
		t.Fatalf("verify after the migration and archive: %+v", after)
	}
}
