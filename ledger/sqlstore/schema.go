package sqlstore

// The schema: the migrations embedded from migrations/*.sql and how they
// are applied.

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrations embed.FS

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if s.d.MigrationLock != "" {
		if _, err := conn.ExecContext(ctx, s.d.MigrationLock); err != nil {
			return err
		}
		defer conn.ExecContext(context.Background(), s.d.MigrationUnlock)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	files, err := migrationFiles(s.d.Name)
	if err != nil {
		return err
	}
	// A ledger migrated by a newer byoc is not this build's to run: its
	// tables may mean more than this code knows.
	var newest sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return err
	}
	if latest := files[len(files)-1].version; newest.Valid && int(newest.Int64) > latest {
		return fmt.Errorf("%w: it has migration %d, newer than this byoc's latest (%d): run a byoc at least as new as the one that migrated it",
			ErrSchemaVersion, newest.Int64, latest)
	}
	for _, f := range files {
		version := f.version
		var n int
		if err := conn.QueryRowContext(ctx, s.rebind(`SELECT count(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile("migrations/" + f.name)
		if err != nil {
			return err
		}
		text := string(body)
		for k, v := range s.d.Types {
			text = strings.ReplaceAll(text, "{{"+k+"}}", v)
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, stmt := range splitStatements(text) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %s: %w", f.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			version, f.name, time.Now().UnixMicro()); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// splitStatements splits a migration on semicolons that end a line, after
// dropping -- comments, except within a $$-quoted body (a function's).
func splitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if strings.Count(line, "$$")%2 == 1 {
			quoted = !quoted
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if !quoted && strings.HasSuffix(strings.TrimSpace(line), ";") {
			if s := strings.TrimSpace(cur.String()); s != ";" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
