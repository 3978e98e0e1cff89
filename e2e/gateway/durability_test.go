package gateway_test

import (
	"context"
	"database/sql"
	"testing"

	"byoc/ledger"
)

// The gateway's books commit without a sync per commit (the journal store's
// NormalSync, or SQLite's synchronous=NORMAL: a power cut may lose their
// last commits); the orchestrator's ledger, which they are reconciled
// against, syncs every commit: what it acknowledged stays.
func TestBooksSyncNormalOrchestratorFull(t *testing.T) {
	o := startOrch(t, nil)
	gw := startGateway(t, keyA, []string{o.URL}, nil)
	for _, c := range []struct {
		name string
		s    ledger.Store
		want int
	}{{"gateway", gw.Store, 1}, {"orchestrator", o.Store, 2}} {
		if j, ok := c.s.(interface{ NormalSync() bool }); ok {
			if normal := j.NormalSync(); normal != (c.want == 1) {
				t.Errorf("%s: journal NormalSync = %v, want %v", c.name, normal, c.want == 1)
			}
			continue
		}
		db, ok := c.s.(interface{ DB() *sql.DB })
		if !ok {
			t.Fatalf("%s: store %T", c.name, c.s)
		}
		var got int
		if err := db.DB().QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: synchronous = %d, want %d", c.name, got, c.want)
		}
	}
}
