package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/sqlite"
)

// TestUpdateRollsBack checks that a write transaction on the driver
// connection (Dialect.RawWrites) is rolled back when fn fails or panics,
// and that the store writes normally afterwards.
func TestUpdateRollsBack(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool := func(name string) *ledger.Account {
		now := time.Now().UTC().Truncate(time.Microsecond)
		return &ledger.Account{Ref: ledger.PoolKey{Sender: "0xaaaa", Capability: name}.Ref(), State: ledger.StateOpen,
			OpenedAt: now, UpdatedAt: now}
	}
	insert := func(name string, then func() error) error {
		return s.Update(ctx, func(tx ledger.Tx) error {
			if err := tx.InsertAccounts(ctx, []*ledger.Account{pool(name)}); err != nil {
				return err
			}
			return then()
		})
	}
	boom := errors.New("boom")
	if err := insert("failed", func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("update = %v", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "panic" {
				t.Fatalf("recovered %v", p)
			}
		}()
		insert("panicked", func() error { panic("panic") })
	}()
	if err := insert("committed", func() error { return nil }); err != nil {
		t.Fatalf("update after a failed and a panicking one: %v", err)
	}
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	for name, want := range map[string]bool{"failed": false, "panicked": false, "committed": true} {
		_, err := l.Account(ctx, pool(name).Ref)
		if found := err == nil; found != want {
			t.Errorf("pool %s: %v", name, err)
		}
	}
}
