package ledgertest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/postgres"
	"byoc/ledger/sqlite"
)

// SQLite is a Factory of fresh SQLite ledger files in a temporary
// directory of the test (TempDir).
func SQLite(t testing.TB) Opener {
	path := filepath.Join(TempDir(t), sqlite.FileName)
	return func() ledger.Store {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// PostgresDSN returns the PostgreSQL DSN for tests from BYOC_POSTGRES_DSN,
// or skips the test with a message saying how to run it.
func PostgresDSN(t testing.TB) string {
	dsn := os.Getenv(postgres.EnvDSN)
	if dsn == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable); .ci/run sets it", postgres.EnvDSN)
	}
	return dsn
}

// PostgresSchema creates a fresh schema for one test, drops it when the
// test ends, and returns a DSN whose search_path points at it.
func PostgresSchema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "byoc_test_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return postgres.WithSearchPath(dsn, schema)
}

// Postgres is a Factory of fresh PostgreSQL ledgers, one schema per test.
// It skips the test when BYOC_POSTGRES_DSN is not set.
func Postgres(t testing.TB) Opener {
	dsn := PostgresSchema(t, PostgresDSN(t))
	return func() ledger.Store {
		s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatalf("open postgres ledger: %v", err)
		}
		return s
	}
}

// Journal is a Factory of fresh journal ledgers (ledger/journal: state in
// memory, a journal, the SQLite tables as its projection) in a temporary
// directory of the test. Small segments, so that tests rotate and delete
// them.
func Journal(t testing.TB) Opener {
	path := filepath.Join(TempDir(t), sqlite.FileName)
	return func() ledger.Store {
		s, err := journal.Open(context.Background(), path, journal.Options{SegmentBytes: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// Stores are the stores money tests run on, by name: the plain SQLite
// store, the journal store (the embedded default) and PostgreSQL (which
// skips without BYOC_POSTGRES_DSN).
var Stores = []struct {
	Name    string
	Factory Factory
}{{"sqlite", SQLite}, {"journal", Journal}, {"postgres", Postgres}}
