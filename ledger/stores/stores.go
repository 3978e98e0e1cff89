// Package stores opens the ledger store a node is configured for: the
// embedded ledger in its data directory (the journal store over a SQLite
// file, or that file alone), or PostgreSQL when a DSN is given. It is the
// one place that knows them all.
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
	"byoc/ledger/journal"
	"byoc/ledger/postgres"
	"byoc/ledger/sqlite"
	"byoc/ledger/sqlstore"
)

// Open opens the store: PostgreSQL at dsn if it is not empty, else the
// embedded ledger in dataDir (or the file dataDir itself when it ends in
// .db): the journal store unless EnvStore says sqlite. With mustExist (tools that inspect a ledger) nothing is created or
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
		if err := catchUp(ctx, path); err != nil {
			return nil, path, err
		}
		st, err := sqlite.OpenExisting(ctx, path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, sqlstore.ErrNoLedger) {
			err = fmt.Errorf("%w at %s (give --data-dir or --ledger-dsn)", ErrNoLedger, path)
		}
		return st, path, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, path, fmt.Errorf("sqlite ledger %s: %w", path, err)
	}
	switch kind := os.Getenv(EnvStore); kind {
	case "", "journal":
		st, err := journal.Open(ctx, path, journal.Options{NormalSync: sopts.NormalSync})
		return st, path, err
	case "sqlite":
		if err := catchUp(ctx, path); err != nil {
			return nil, path, err
		}
		st, err := sqlite.OpenWith(ctx, path, sopts)
		return st, path, err
	default:
		return nil, path, fmt.Errorf("%s=%q: want journal (the default) or sqlite", EnvStore, kind)
	}
}

// EnvStore chooses the embedded store: journal (the default: state in
// memory, a journal, the SQLite tables as its projection) or sqlite (the
// tables only, every operation a SQLite transaction).
const EnvStore = "BYOC_LEDGER_STORE"

// catchUp projects what a journal next to the ledger file holds beyond
// its tables, so that a store that reads the tables alone sees every
// acknowledged operation. A journal another process owns (a running
// node) is left to it: its projection lags by a batch at most.
func catchUp(ctx context.Context, path string) error {
	if _, err := os.Stat(journal.Dir(path)); err != nil {
		return nil // no journal: the tables are the ledger
	}
	if _, err := os.Stat(path); err != nil {
		return nil // no ledger file: Open says so
	}
	st, err := journal.Open(ctx, path, journal.Options{})
	if errors.Is(err, journal.ErrLocked) {
		return nil
	}
	if err != nil {
		return err
	}
	return st.Close()
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
