package main

import (
	"context"
	"flag"
	"os"

	"byoc/ledger"
	"byoc/ledger/sqlite"
	"byoc/ledger/stores"
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
	return stores.Open(ctx, s.dataDir, s.dsn, mustExist)
}
