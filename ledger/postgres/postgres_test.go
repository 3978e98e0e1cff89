package postgres_test

import (
	"context"
	"testing"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/ledger/postgres"
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
