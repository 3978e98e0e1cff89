package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/sqlite"
)

// TestMigrateLighterIndexes takes a ledger with money, keys and ticket
// nonces back to the schema of migration 2, opens it again (applying
// migrations 3 and 4) and checks that nothing was lost: the books verify, keys
// still replay, nonces are still seen.
func TestMigrateLighterIndexes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{})
	pool := ledger.PoolKey{Sender: "0xaaaa", Capability: "echo"}
	job := ledger.JobKey{Sender: "0xaaaa", JobID: "job-1"}
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(1000), "fund"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Admit(ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: "echo",
		Reserve: ledger.Wei(300), Minimum: ledger.Wei(100), TTL: time.Minute}, Payment: payment("s1", 1, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.FinishJob(ctx, job, ledger.Wei(50), ledger.Wei(0), "use"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, q := range []string{
		// Back before migration 4 (which adds accounts_pool again) first.
		`DROP TABLE archive_carry`, `DROP TABLE archives`, `DROP INDEX winners_account`, `DROP INDEX accounts_pool`,
		`DELETE FROM schema_migrations WHERE version = 4`,
		`CREATE INDEX accounts_pool ON accounts (pool_id) WHERE pool_id IS NOT NULL`,
		`CREATE TABLE old_entries (id INTEGER PRIMARY KEY, at BIGINT NOT NULL, kind TEXT NOT NULL,
			from_id BIGINT REFERENCES accounts (id), to_id BIGINT REFERENCES accounts (id), amount TEXT NOT NULL,
			idem_key TEXT UNIQUE, input_hash TEXT, balance_after TEXT NOT NULL)`,
		`INSERT INTO old_entries SELECT * FROM entries`,
		`DROP TABLE entries`,
		`ALTER TABLE old_entries RENAME TO entries`,
		`CREATE INDEX entries_from ON entries (from_id) WHERE from_id IS NOT NULL`,
		`CREATE INDEX entries_to ON entries (to_id) WHERE to_id IS NOT NULL`,
		`CREATE TABLE old_sessions (session TEXT PRIMARY KEY, expiry BIGINT NOT NULL, nonces BIGINT NOT NULL)`,
		`INSERT INTO old_sessions SELECT * FROM ticket_sessions`,
		`DROP TABLE ticket_sessions`,
		`ALTER TABLE old_sessions RENAME TO ticket_sessions`,
		`CREATE INDEX ticket_sessions_expiry ON ticket_sessions (expiry)`,
		`CREATE TABLE old_nonces (session TEXT NOT NULL, nonce BIGINT NOT NULL, PRIMARY KEY (session, nonce))`,
		`INSERT INTO old_nonces SELECT * FROM ticket_nonces`,
		`DROP TABLE ticket_nonces`,
		`ALTER TABLE old_nonces RENAME TO ticket_nonces`,
		`DELETE FROM schema_migrations WHERE version = 3`,
	} {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	schema := map[string]string{}
	rows, err := s.DB().QueryContext(ctx, `SELECT name, coalesce(sql, '') FROM sqlite_master`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, sql string
		rows.Scan(&name, &sql)
		schema[name] = sql
	}
	rows.Close()
	for name, want := range map[string]string{"entries_key": "CREATE UNIQUE INDEX", "ticket_nonces": "WITHOUT ROWID",
		"ticket_sessions": "WITHOUT ROWID", "ticket_sessions_expiry": "CREATE INDEX"} {
		if !strings.Contains(schema[name], want) {
			t.Errorf("%s is %q, want %q in it", name, schema[name], want)
		}
	}
	for name := range schema {
		if strings.HasPrefix(name, "sqlite_autoindex_entries") || strings.HasPrefix(name, "sqlite_autoindex_ticket") {
			t.Errorf("schema still has %s", name)
		}
	}

	l = ledger.New(s, ledger.Options{})
	defer l.Close()
	if r, err := ledger.Verify(ctx, s, ledger.VerifyOptions{}); err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
	if r, err := l.Credit(ctx, pool.Ref(), ledger.Wei(1000), "fund"); err != nil || !r.Replayed {
		t.Fatalf("credit replayed after the migration = %+v, %v", r, err)
	}
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(999), "use"); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("key reused after the migration: %v", err)
	}
	r, err := l.ReceivePayment(ctx, withTo(payment("s1", 2, 3), pool.Ref()))
	if err != nil || r.Tickets != 1 || r.Credited.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("payment after the migration = %+v, %v", r, err)
	}
	if bal, _ := l.Balance(ctx, pool.Ref()); bal.Cmp(ledger.Wei(1000+200-50+100)) != 0 {
		t.Fatalf("pool balance %s", bal)
	}
}

// payment pays 100 wei for each nonce not seen before in session, keyed
// by session and nonce.
func payment(session string, nonces ...uint32) *ledger.PaymentRequest {
	req := &ledger.PaymentRequest{Session: session, SessionExpiry: 100}
	for _, n := range nonces {
		req.Tickets = append(req.Tickets, ledger.PaymentTicket{Nonce: n,
			Credit: ledger.PaymentCredit{Key: session + "/" + string(rune('0'+n)), Amount: ledger.Wei(100)}})
	}
	return req
}

func withTo(p *ledger.PaymentRequest, to ledger.Ref) ledger.PaymentRequest {
	q := *p
	q.To = to
	return q
}

// TestMigrateAccountLists takes a ledger (plain SQLite, and the journal
// store's tables) back before migration 9, opens it again and checks that
// the lists of pools and of open holds the consoles and /admin/pools read
// are planned on its partial indexes, not a scan of every account, and
// list what they did.
func TestMigrateAccountLists(t *testing.T) {
	for _, kind := range []string{"sqlite", "journal"} {
		t.Run(kind, func(t *testing.T) { testMigrateAccountLists(t, kind) })
	}
}

func testMigrateAccountLists(t *testing.T, kind string) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	open := func() (ledger.Store, *sql.DB) {
		t.Helper()
		if kind == "journal" {
			s, err := journal.Open(ctx, path, journal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s, s.DB()
		}
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		return s, s.DB()
	}
	s, db := open()
	l := ledger.New(s, ledger.Options{})
	for _, c := range []string{"echo", "sleep"} {
		if _, err := l.Credit(ctx, ledger.PoolKey{Sender: "0xaaaa", Capability: c}.Ref(), ledger.Wei(1000), "fund-"+c); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"done", "running"} {
		if _, err := l.Admit(ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: ledger.JobKey{Sender: "0xaaaa", JobID: id},
			Capability: "echo", Reserve: ledger.Wei(300), Minimum: ledger.Wei(100), TTL: time.Hour}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.FinishJob(ctx, ledger.JobKey{Sender: "0xaaaa", JobID: "done"}, ledger.Wei(50), ledger.Wei(0), "use"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, q := range []string{`DROP INDEX accounts_pools`, `DROP INDEX accounts_open_jobs`, `DELETE FROM schema_migrations WHERE version = 9`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s, db = open()
	defer s.Close()
	// The lists' SQL as ListAccounts writes it (kind and state literal).
	for q, index := range map[string]string{
		`SELECT id FROM accounts WHERE id > 0 AND kind = 'pool' ORDER BY id LIMIT 200`:                                       "accounts_pools",
		`SELECT id FROM accounts WHERE id > 0 AND kind = 'job' AND state = 'open' ORDER BY id DESC LIMIT 200`:                "accounts_open_jobs",
		`SELECT id FROM accounts WHERE id > 0 AND kind = 'pool' AND sender = '0xaaaa' ORDER BY id LIMIT 500`:                 "",
		`SELECT id FROM accounts WHERE id > 0 AND kind = 'job' AND state = 'open' AND sender = '0xaaaa' ORDER BY id LIMIT 5`: "",
	} {
		rows, err := db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if strings.Contains(p, "SCAN accounts") && !strings.Contains(p, "INDEX") {
			t.Errorf("%s\n  scans every account: %s", q, p)
		}
		if index != "" && !strings.Contains(p, index) {
			t.Errorf("%s\n  is not planned on %s: %s", q, index, p)
		}
	}
	l = ledger.New(s, ledger.Options{})
	defer l.Close()
	pools, err := l.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, Limit: 200})
	if err != nil || len(pools) != 2 || pools[0].Ref.Name != "echo" || pools[1].Ref.Name != "sleep" {
		t.Errorf("pools after the migration: %v, %v", pools, err)
	}
	openJobs, err := l.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, State: ledger.StateOpen, Newest: true, Limit: 200})
	if err != nil || len(openJobs) != 1 || openJobs[0].Ref.Name != "running" {
		t.Errorf("open holds after the migration: %v, %v", openJobs, err)
	}
	if r, err := ledger.Verify(ctx, s, ledger.VerifyOptions{}); err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
}
