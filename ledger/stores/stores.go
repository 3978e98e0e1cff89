// Package stores opens the ledger store a node is configured for: the
// embedded SQLite file in its data directory, or PostgreSQL when a DSN is
// given. It is the one place that knows both.
package stores

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"byoc/ledger"
	"byoc/ledger/postgres"
	"byoc/ledger/sqlite"
)

// Open opens the store: PostgreSQL at dsn if it is not empty, else the
// SQLite ledger in dataDir (or the file dataDir itself when it ends in
// .db). With mustExist, an absent SQLite file is an error rather than a
// new, empty ledger (for tools that inspect one). It returns where the
// ledger is, for messages.
func Open(ctx context.Context, dataDir, dsn string, mustExist bool) (ledger.Store, string, error) {
	if dsn != "" {
		st, err := postgres.Open(ctx, dsn, postgres.Options{})
		return st, "postgres", err
	}
	path := dataDir
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

// OpenLedger opens the store as Open does (a new ledger if none) and a
// Ledger on it, for a node; the caller closes both.
func OpenLedger(ctx context.Context, dataDir, dsn string, opts ledger.Options) (ledger.Store, *ledger.Ledger, string, error) {
	store, where, err := Open(ctx, dataDir, dsn, false)
	if err != nil {
		return nil, nil, where, err
	}
	return store, ledger.New(store, opts), where, nil
}
