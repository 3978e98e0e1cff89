package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"byoc/ledger"
	"byoc/ledger/postgres"
	"byoc/ledger/sqlite"
)

// storeFlags select a ledger store: an embedded SQLite file in a data
// directory (the default) or PostgreSQL.
type storeFlags struct {
	dataDir string
	dsn     string
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.dataDir, "data-dir", envOr("BYOC_DATA_DIR", "byoc-data"),
		"directory of the embedded ledger ("+sqlite.FileName+"); env BYOC_DATA_DIR")
	fs.StringVar(&s.dsn, "ledger-dsn", os.Getenv("BYOC_LEDGER_DSN"),
		"PostgreSQL DSN of a shared ledger (e.g. postgres://user@127.0.0.1:5432/byoc); overrides --data-dir; env BYOC_LEDGER_DSN")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// open opens the selected store. With mustExist, an absent SQLite file is an
// error instead of a new empty ledger (for inspection commands).
func (s *storeFlags) open(ctx context.Context, mustExist bool) (ledger.Store, string, error) {
	if s.dsn != "" {
		st, err := postgres.Open(ctx, s.dsn, postgres.Options{})
		return st, "postgres", err
	}
	path := s.dataDir
	if !strings.HasSuffix(path, ".db") {
		path = filepath.Join(path, sqlite.FileName)
	}
	if mustExist {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, path, fmt.Errorf("no ledger at %s (give --data-dir or --ledger-dsn)", path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, path, err
	}
	st, err := sqlite.Open(ctx, path)
	return st, path, err
}
