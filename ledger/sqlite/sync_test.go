package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"byoc/ledger/sqlite"
)

// A ledger opens with synchronous=FULL (2) unless NormalSync asks for
// NORMAL (1); the setting is per connection, so it is read on the write
// connection the ledger commits on.
func TestSynchronous(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		opts sqlite.Options
		want int
	}{{sqlite.Options{}, 2}, {sqlite.Options{NormalSync: true}, 1}} {
		s, err := sqlite.OpenWith(ctx, filepath.Join(t.TempDir(), sqlite.FileName), c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := s.DB().QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got != c.want {
			t.Errorf("%+v: synchronous = %d, want %d", c.opts, got, c.want)
		}
	}
}
