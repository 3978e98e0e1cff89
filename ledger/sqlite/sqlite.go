// Package sqlite opens the embedded ledger store: one SQLite file in the
// node's data directory, in WAL mode with synchronous=FULL, so a committed
// operation survives a process kill and a power cut. One connection writes
// (SQLite has one writer; the ledger's group commit batches onto it) and a
// small pool reads.
//
// Driver: modernc.org/sqlite, a maintained pure-Go SQLite, so byoc builds
// without cgo.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"byoc/ledger/sqlstore"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// FileName is the ledger file's name inside a data directory.
const FileName = "ledger.db"

// Dialect is SQLite's flavour of the shared SQL store.
var Dialect = sqlstore.Dialect{
	Name:                   "sqlite",
	Types:                  map[string]string{"ID": "INTEGER PRIMARY KEY", "AMOUNT": "TEXT", "BLOB": "BLOB"},
	PrepareBatchStatements: true,
	PollContext:            true,
	RowStatements:          4,
	RawWrites:              true,
	IsConflict: func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		switch e.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
}

// OpenDir opens (creating if needed) the ledger in dataDir.
func OpenDir(ctx context.Context, dataDir string) (*sqlstore.Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite ledger: %w", err)
	}
	return Open(ctx, filepath.Join(dataDir, FileName))
}

// Open opens (creating if needed) the ledger file at path.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(ON)", "cache_size(-65536)", "temp_store(MEMORY)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	write, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	read, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite ledger %s: %w", path, err)
	}
	read.SetMaxOpenConns(4)
	s, err := sqlstore.New(ctx, write, read, Dialect, 1)
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("sqlite ledger %s: %w", path, err)
	}
	return s, nil
}
