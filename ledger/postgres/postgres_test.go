package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/ledger/postgres"
	"byoc/ledger/sqlstore"
)

func TestConformance(t *testing.T) {
	ledgertest.PostgresDSN(t)
	ledgertest.Run(t, ledgertest.Postgres)
}

func BenchmarkLedger(b *testing.B) {
	ledgertest.PostgresDSN(b)
	ledgertest.Bench(b, ledgertest.Postgres)
}

func BenchmarkPaidJob(b *testing.B) {
	ledgertest.PostgresDSN(b)
	ledgertest.BenchPaidJob(b, ledgertest.Postgres)
}

// TestReplicas runs two ledgers in one process on one PostgreSQL schema, as
// two orchestrator replicas would, each with two writers, so batches of both
// contend for the same pool rows: nothing may be lost or counted twice.
func TestReplicas(t *testing.T) {
	dsn := ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
	ctx := context.Background()
	var ledgers []*ledger.Ledger
	var first ledger.Store
	for range 2 {
		s, err := postgres.Open(ctx, dsn, postgres.Options{Writers: 2})
		if err != nil {
			t.Fatal(err)
		}
		l := ledger.New(s, ledger.Options{})
		t.Cleanup(func() { l.Close(); s.Close() })
		ledgers = append(ledgers, l)
		if first == nil {
			first = s
		}
	}
	credited, charged := ledgertest.ConcurrentLoad(t, ledgers, 24, 10)
	r, err := ledger.Verify(ctx, first, ledger.VerifyOptions{})
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
	if r.Credited.Cmp(ledger.Wei(credited)) != 0 || r.Charged.Cmp(ledger.Wei(charged)) != 0 || r.OpenJobs != 0 {
		t.Fatalf("report %+v; acknowledged credited %d charged %d", r, credited, charged)
	}
}

// openLedger opens the store at dsn and a ledger on it; the caller closes
// both.
func openLedger(t *testing.T, dsn string) (*sqlstore.Store, *ledger.Ledger) {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, ledger.New(s, ledger.Options{})
}

// TestMigrateAccountLists takes a PostgreSQL ledger back before migration
// 9, opens it again and checks that the lists of pools and of open holds
// (the consoles', /admin/pools') can be read from its partial indexes:
// their SQL names the kind and state as literals, which a generic plan of
// a bound parameter could not match to the indexes' conditions.
func TestMigrateAccountLists(t *testing.T) {
	dsn := ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
	ctx := context.Background()
	s, l := openLedger(t, dsn)
	if _, err := l.Credit(ctx, ledger.PoolKey{Sender: "0xaaaa", Capability: "echo"}.Ref(), ledger.Wei(1000), "fund"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Admit(ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: ledger.JobKey{Sender: "0xaaaa", JobID: "running"},
		Capability: "echo", Reserve: ledger.Wei(300), Minimum: ledger.Wei(100), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, q := range []string{`DROP INDEX accounts_pools`, `DROP INDEX accounts_open_jobs`, `DELETE FROM schema_migrations WHERE version = 9`} {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A ledger this small is read faster by a scan: forbid it, to see the
	// index is usable at all.
	if _, err := conn.ExecContext(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for q, index := range map[string]string{
		`SELECT id FROM accounts WHERE id > 0 AND kind = 'pool' ORDER BY id LIMIT 200`:                        "accounts_pools",
		`SELECT id FROM accounts WHERE id > 0 AND kind = 'job' AND state = 'open' ORDER BY id DESC LIMIT 200`: "accounts_open_jobs",
	} {
		var plan []string
		rows, err := conn.QueryContext(ctx, `EXPLAIN `+q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			rows.Scan(&line)
			plan = append(plan, line)
		}
		rows.Close()
		if p := strings.Join(plan, "\n"); !strings.Contains(p, index) {
			t.Errorf("%s\nis not planned on %s:\n%s", q, index, p)
		}
	}
	l = ledger.New(s, ledger.Options{})
	defer l.Close()
	if pools, err := l.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, Limit: 200}); err != nil || len(pools) != 1 {
		t.Errorf("pools after the migration: %v, %v", pools, err)
	}
	if jobs, err := l.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, State: ledger.StateOpen, Newest: true, Limit: 200}); err != nil ||
		len(jobs) != 1 || jobs[0].Ref.Name != "running" {
		t.Errorf("open holds after the migration: %v, %v", jobs, err)
	}
}

// TestConformanceDeferredSync runs the suite with every Update's sync
// deferred (ledger.DeferSync: SET LOCAL synchronous_commit = off): the
// same semantics; only a server crash's window differs.
func TestConformanceDeferredSync(t *testing.T) {
	ledgertest.PostgresDSN(t)
	ledgertest.Run(t, func(t testing.TB) ledgertest.Opener {
		open := ledgertest.Postgres(t)
		return func() ledger.Store { return deferAll{open().(*sqlstore.Store)} }
	})
}

// deferAll marks every Update as one whose sync may be deferred.
type deferAll struct{ *sqlstore.Store }

func (d deferAll) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	return d.Store.Update(ledger.DeferSync(ctx), fn)
}

// A deferred Update turns synchronous commit off for its own transaction
// only: the connection it ran on commits synchronously again after it.
func TestDeferredSyncIsLocal(t *testing.T) {
	dsn := ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn, postgres.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{})
	t.Cleanup(func() { l.Close(); s.Close() })
	pool := ledger.PoolKey{Sender: "0xs", Capability: "echo"}
	if _, err := l.Credit(ledger.DeferSync(ctx), pool.Ref(), ledger.Wei(10), "a"); err != nil {
		t.Fatal(err)
	}
	var setting string
	if err := s.DB().QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&setting); err != nil {
		t.Fatal(err)
	}
	if setting != "on" {
		t.Fatalf("synchronous_commit after a deferred batch on the only connection: %q, want on", setting)
	}
	if bal, err := l.Balance(ctx, pool.Ref()); err != nil || bal.Cmp(ledger.Wei(10)) != 0 {
		t.Fatalf("balance %v, %v; want 10", bal, err)
	}
}

// A batch that creates a pool and a job of it and moves money into the
// job writes them in one statement (sqlstore's WriteRows): the job's pool
// ID and the entry's account are the new rows' IDs.
func TestNewAccountsInOneStatement(t *testing.T) {
	ctx := context.Background()
	s, l := openLedger(t, ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t)))
	t.Cleanup(func() { l.Close(); s.Close() })
	job := ledger.JobKey{Sender: "0xnew", JobID: "first"}
	res, err := l.Admit(ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: "echo",
		Reserve: ledger.Wei(2_000), Minimum: ledger.Wei(500), TTL: time.Minute},
		Payment: &ledger.PaymentRequest{Session: "0xsession", SessionExpiry: 1_000, MaxNonces: 10,
			Tickets: []ledger.PaymentTicket{{Nonce: 1, Credit: ledger.PaymentCredit{Key: "pm:first", Amount: ledger.Wei(1_000)}}}}})
	if err != nil || !res.Admitted || res.Job.Balance.Cmp(ledger.Wei(1_000)) != 0 {
		t.Fatalf("admit: %+v, %v", res, err)
	}
	var poolID, jobPoolID, entryTo int64
	err = s.DB().QueryRowContext(ctx, `SELECT p.id, j.pool_id, e.to_id FROM accounts j
		JOIN accounts p ON p.kind = 'pool' AND p.sender = '0xnew'
		JOIN entries e ON e.idem_key = 'pm:first'
		WHERE j.kind = 'job' AND j.name = 'first'`).Scan(&poolID, &jobPoolID, &entryTo)
	if err != nil {
		t.Fatal(err)
	}
	var jobID int64
	if err := s.DB().QueryRowContext(ctx, `SELECT id FROM accounts WHERE kind = 'job' AND name = 'first'`).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	if jobPoolID != poolID || entryTo != jobID {
		t.Fatalf("job %d of pool %d (want %d), payment's entry to %d", jobID, jobPoolID, poolID, entryTo)
	}
	if _, err := l.FinishJob(ctx, job, ledger.Wei(300), ledger.Amount{}, "use:first"); err != nil {
		t.Fatal(err)
	}
	r, err := ledger.Verify(ctx, s, ledger.VerifyOptions{})
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
	if bal, err := l.Balance(ctx, ledger.PoolKey{Sender: "0xnew", Capability: "echo"}.Ref()); err != nil || bal.Cmp(ledger.Wei(700)) != 0 {
		t.Fatalf("pool balance %v, %v; want 700", bal, err)
	}
}

// A write that commits with its transaction (ledger.FinalWrite) and fails
// a check of byoc_write_rows (here: an entry's key already taken) reports
// the check's error and commits nothing, the account it inserted neither.
func TestFinalWriteFailsWhole(t *testing.T) {
	dsn := ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
	ctx := context.Background()
	s, l := openLedger(t, dsn)
	defer func() { l.Close(); s.Close() }()
	pool := ledger.PoolKey{Sender: "0xfinal", Capability: "echo"}
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(100), "taken"); err != nil {
		t.Fatal(err)
	}
	other := ledger.PoolKey{Sender: "0xother", Capability: "echo"}
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := s.Update(ctx, func(tx ledger.Tx) error {
		a := &ledger.Account{ID: -1, Ref: other.Ref(), State: ledger.StateOpen, Balance: ledger.Wei(5), Credited: ledger.Wei(5),
			OpenedAt: now, UpdatedAt: now}
		e := &ledger.Entry{At: now, Kind: ledger.EntryCredit, To: -1, Amount: ledger.Wei(5), Key: "taken", InputHash: "h", BalanceAfter: ledger.Wei(5)}
		return tx.(ledger.RowWriter).WriteRows(ledger.FinalWrite(ctx), []*ledger.Account{a}, nil, []*ledger.Entry{e}, nil)
	})
	if !errors.Is(err, ledger.ErrKeyTaken) {
		t.Fatalf("write with a taken key: %v", err)
	}
	if _, err := l.Account(ctx, other.Ref()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the account of a failed final write exists: %v", err)
	}
	// The connection is usable again: the next batch commits.
	if _, err := l.Credit(ctx, other.Ref(), ledger.Wei(7), "new"); err != nil {
		t.Fatal(err)
	}
}

// A DSN that chooses its own default_query_exec_mode (for a pooler in
// front of the server) keeps it: the batches' statements are then not
// prepared on the connection, and the ledger works the same.
func TestDSNExecMode(t *testing.T) {
	base := ledgertest.PostgresDSN(t)
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			dsn := ledgertest.PostgresSchema(t, base)
			sep := "&"
			if !strings.Contains(dsn, "?") {
				sep = "?"
			}
			s, err := postgres.Open(context.Background(), dsn+sep+"default_query_exec_mode="+mode, postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			l := ledger.New(s, ledger.Options{})
			t.Cleanup(func() { l.Close(); s.Close() })
			credited, charged := ledgertest.ConcurrentLoad(t, []*ledger.Ledger{l}, 4, 5)
			r, err := ledger.Verify(context.Background(), s, ledger.VerifyOptions{})
			if err != nil || !r.OK() {
				t.Fatalf("verify: %v %v", err, r.Problems)
			}
			if r.Credited.Cmp(ledger.Wei(credited)) != 0 || r.Charged.Cmp(ledger.Wei(charged)) != 0 {
				t.Fatalf("report %+v; acknowledged credited %d charged %d", r, credited, charged)
			}
		})
	}
}
