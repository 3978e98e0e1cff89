package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
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
