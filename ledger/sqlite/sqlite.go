// Package sqlite opens the embedded ledger store: one SQLite file in the
// node's data directory, in WAL mode with synchronous=FULL, so a committed
// operation survives a process kill and a power cut (NORMAL on request, for
// books that are reconciled against another ledger). One connection writes
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
	IntegerAmounts:         true,
	HasTable:               `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`,
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
	return open(ctx, path, false, Options{})
}

// Options change how a ledger file is opened.
type Options struct {
	// NormalSync opens it with synchronous=NORMAL instead of FULL: a
	// commit is not flushed to disk on its own, only at the WAL's
	// checkpoints. A process kill loses nothing; a power cut or an
	// operating-system crash may lose the last commits (never corrupts
	// the file). For a ledger that can be reconciled against another's
	// durable one: the gateway's books (docs/gateway.md).
	NormalSync bool
	// Projection opens the file as the tables of the journal store
	// (ledger/journal), which writes into them only copies of rows its
	// ledger has already applied and checked: foreign keys are not
	// enforced on its connections. Each checked reference costs a lookup
	// of the referenced account (one or two per entry, one per job), and
	// a constraint that may abort a statement of many rows makes SQLite
	// keep a statement journal of every page the statement changes.
	Projection bool
}

// OpenWith opens (creating if needed) the ledger file at path as opts say.
func OpenWith(ctx context.Context, path string, opts Options) (*sqlstore.Store, error) {
	return open(ctx, path, false, opts)
}

// OpenExisting opens the ledger file at path without creating or migrating
// anything: an absent file is an error (fs.ErrNotExist), and so is a
// database without a byoc ledger (sqlstore.ErrNoLedger) or with another
// schema version (sqlstore.ErrSchemaVersion). For tools that inspect a
// ledger, which a running node may be using at the same time (SQLite's
// locks and WAL keep them apart).
func OpenExisting(ctx context.Context, path string) (*sqlstore.Store, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("sqlite ledger %s: not a file", path)
	}
	return open(ctx, path, true, Options{})
}

func open(ctx context.Context, path string, existing bool, opts Options) (*sqlstore.Store, error) {
	sync := "synchronous(FULL)"
	if opts.NormalSync {
		sync = "synchronous(NORMAL)"
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		fk := "foreign_keys(ON)"
		if opts.Projection {
			fk = "foreign_keys(OFF)"
		}
		pragmas := []string{"journal_mode(WAL)", sync, "busy_timeout(10000)", fk, "cache_size(-65536)", "temp_store(MEMORY)"}
		if existing {
			// A byoc ledger is in WAL mode already (it persists in the
			// file); setting it would write to a file that is no ledger.
			pragmas = pragmas[1:]
		}
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		if existing {
			q.Set("mode", "rw") // never create the file
		}
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
	newStore := sqlstore.New
	if existing {
		newStore = sqlstore.Existing
	}
	s, err := newStore(ctx, write, read, Dialect, 1)
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("sqlite ledger %s: %w", path, err)
	}
	return s, nil
}
