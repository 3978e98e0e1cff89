package sqlite_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"byoc/ledger/sqlite"
	"byoc/ledger/sqlstore"
)

// OpenExisting opens a ledger as it is: it creates no file, writes nothing
// to a file that is no ledger, and refuses a schema of another version
// instead of migrating it.
func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, sqlite.FileName)
	if _, err := sqlite.OpenExisting(ctx, path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenExisting created %s", path)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.OpenExisting(ctx, path); !errors.Is(err, sqlstore.ErrNoLedger) {
		t.Fatalf("empty file: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatalf("OpenExisting wrote %d bytes to an empty file", fi.Size())
	}
	os.Remove(path)

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.OpenExisting(ctx, path)
	if err != nil {
		t.Fatalf("a ledger of this version: %v", err)
	}
	db := s.DB()
	for _, step := range []struct{ sql, what string }{
		{`DELETE FROM schema_migrations WHERE version = 3`, "older"},
		{`INSERT INTO schema_migrations (version, name, applied_at) VALUES (3, 'back', 0), (99, 'future', 0)`, "newer"},
	} {
		if _, err := db.Exec(step.sql); err != nil {
			t.Fatal(err)
		}
		if _, err := sqlite.OpenExisting(ctx, path); !errors.Is(err, sqlstore.ErrSchemaVersion) {
			t.Fatalf("%s schema: %v", step.what, err)
		}
	}
	s.Close()
	// A node of this build does not run on the newer ledger either.
	if s, err := sqlite.Open(ctx, path); !errors.Is(err, sqlstore.ErrSchemaVersion) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("a node's open of a newer schema: %v", err)
	}
}
