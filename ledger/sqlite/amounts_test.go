package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"byoc/ledger"
	"byoc/ledger/sqlite"
)

// TestAmountsStoredAsText checks that amounts bound as integers
// (Dialect.IntegerAmounts) are stored as the same decimal text as those
// too large for an int64, which are bound as text: the amount columns'
// TEXT affinity converts them.
func TestAmountsStoredAsText(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	small := ledger.PoolKey{Sender: "0xaaaa", Capability: "small"}.Ref()
	big := ledger.PoolKey{Sender: "0xaaaa", Capability: "big"}.Ref()
	if _, err := l.Credit(ctx, small, ledger.Wei(999), "small"); err != nil {
		t.Fatal(err)
	}
	huge := ledger.MustParseAmount("123456789012345678901234567890")
	if _, err := l.Credit(ctx, big, huge, "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Credit(ctx, big, ledger.Wei(5), "big2"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE typeof(balance) <> 'text'
		OR typeof(credited) <> 'text' OR typeof(charged) <> 'text' OR typeof(moved_in) <> 'text' OR typeof(moved_out) <> 'text'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d accounts with an amount not stored as text", n)
	}
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM entries WHERE typeof(amount) <> 'text' OR typeof(balance_after) <> 'text'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d entries with an amount not stored as text", n)
	}
	rows, err := s.DB().QueryContext(ctx, `SELECT balance, credited FROM accounts ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var b, c string
		if err := rows.Scan(&b, &c); err != nil {
			t.Fatal(err)
		}
		got = append(got, b, c)
	}
	want := []string{"999", "999", "123456789012345678901234567895", "123456789012345678901234567895"}
	if len(got) != len(want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rows %q, want %q", got, want)
			break
		}
	}
}
