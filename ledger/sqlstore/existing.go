package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrNoLedger means the database holds no byoc ledger (no schema_migrations
// table).
var ErrNoLedger = errors.New("no byoc ledger")

// ErrSchemaVersion means the ledger's schema is not the one this build
// knows: older (a node of this build migrates it when it starts) or newer.
var ErrSchemaVersion = errors.New("ledger schema version differs from this byoc's")

// Existing wraps open database handles as New does, but for a ledger that
// must already exist: it neither creates nor migrates the schema, and
// refuses a database without one (ErrNoLedger) or with another version of
// it (ErrSchemaVersion). For tools that inspect a ledger.
func Existing(ctx context.Context, write, read *sql.DB, d Dialect, writers int) (*Store, error) {
	s := &Store{write: write, read: read, d: d, writers: writers, Retries: 20}
	if err := s.checkSchema(ctx); err != nil {
		return nil, err
	}
	if d.PrepareBatchStatements {
		if err := s.prepare(ctx); err != nil {
			return nil, fmt.Errorf("%s ledger: %w", d.Name, err)
		}
	}
	return s, nil
}

// checkSchema compares the applied migrations with this build's.
func (s *Store) checkSchema(ctx context.Context) error {
	var n int
	if err := s.read.QueryRowContext(ctx, s.d.HasTable, "schema_migrations").Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNoLedger
	}
	rows, err := s.read.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return err
	}
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if len(applied) == 0 {
		return ErrNoLedger
	}
	known, err := migrationFiles(s.d.Name)
	if err != nil {
		return err
	}
	latest := 0
	for _, m := range known {
		latest = max(latest, m.version)
	}
	for _, m := range known {
		if !applied[m.version] {
			return fmt.Errorf("%w: it lacks migration %s (this byoc's latest is %d); a node of this byoc migrates it when it starts",
				ErrSchemaVersion, m.name, latest)
		}
	}
	for v := range applied {
		if v > latest {
			return fmt.Errorf("%w: it has migration %d, newer than this byoc's latest (%d)", ErrSchemaVersion, v, latest)
		}
	}
	return nil
}

// migration is one schema step: NNNN_name.sql for every dialect,
// NNNN_name.DIALECT.sql for one.
type migration struct {
	version int
	name    string
}

// migrationFiles lists dialect's migrations in order.
func migrationFiles(dialect string) ([]migration, error) {
	files, err := migrations.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, f := range files {
		if parts := strings.Split(f.Name(), "."); len(parts) == 3 && parts[1] != dialect {
			continue
		}
		version, err := strconv.Atoi(strings.SplitN(f.Name(), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", f.Name())
		}
		out = append(out, migration{version, f.Name()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
