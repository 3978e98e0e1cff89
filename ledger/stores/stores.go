// Package stores opens the ledger store a node is configured for: the
// embedded SQLite file in its data directory, or PostgreSQL when a DSN is
// given. It is the one place that knows both.
package stores

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"byoc/ledger"
	"byoc/ledger/postgres"
	"byoc/ledger/sqlite"
	"byoc/ledger/sqlstore"
)

// Open opens the store: PostgreSQL at dsn if it is not empty, else the
// SQLite ledger in dataDir (or the file dataDir itself when it ends in
// .db). With mustExist (tools that inspect a ledger) nothing is created or
// migrated: where there is no byoc ledger the error says so and wraps
// ErrNoLedger. It returns where the ledger is, for messages.
func Open(ctx context.Context, dataDir, dsn string, mustExist bool) (ledger.Store, string, error) {
	return open(ctx, dataDir, dsn, mustExist, sqlite.Options{})
}

func open(ctx context.Context, dataDir, dsn string, mustExist bool, sopts sqlite.Options) (ledger.Store, string, error) {
	if dsn != "" {
		st, err := postgres.Open(ctx, dsn, postgres.Options{Existing: mustExist})
		if errors.Is(err, sqlstore.ErrNoLedger) {
			err = fmt.Errorf("%w in this database (%s); nothing was created", ErrNoLedger, redact(dsn))
		}
		return st, "postgres", err
	}
	path := dataDir
	if !strings.HasSuffix(path, ".db") {
		path = filepath.Join(path, sqlite.FileName)
	}
	if mustExist {
		st, err := sqlite.OpenExisting(ctx, path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, sqlstore.ErrNoLedger) {
			err = fmt.Errorf("%w at %s (give --data-dir or --ledger-dsn)", ErrNoLedger, path)
		}
		return st, path, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, path, fmt.Errorf("sqlite ledger %s: %w", path, err)
	}
	st, err := sqlite.OpenWith(ctx, path, sopts)
	return st, path, err
}

// ErrNoLedger is Open's error, with mustExist, where there is no ledger.
var ErrNoLedger = errors.New("no byoc ledger")

// redact drops the password from a DSN for messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	var kept []string
	for _, f := range strings.Fields(dsn) {
		if !strings.HasPrefix(f, "password=") {
			kept = append(kept, f)
		}
	}
	return strings.Join(kept, " ")
}

// OpenLedger opens the store as Open does (a new ledger if none) and a
// Ledger on it, for a node; the caller closes both.
func OpenLedger(ctx context.Context, dataDir, dsn string, opts ledger.Options) (ledger.Store, *ledger.Ledger, string, error) {
	return OpenLedgerWith(ctx, dataDir, dsn, opts, sqlite.Options{})
}

// OpenLedgerWith is OpenLedger with the embedded store opened as sopts say
// (PostgreSQL ignores them).
func OpenLedgerWith(ctx context.Context, dataDir, dsn string, opts ledger.Options, sopts sqlite.Options) (ledger.Store, *ledger.Ledger, string, error) {
	store, where, err := open(ctx, dataDir, dsn, false, sopts)
	if err != nil {
		return nil, nil, where, err
	}
	return store, ledger.New(store, opts), where, nil
}
