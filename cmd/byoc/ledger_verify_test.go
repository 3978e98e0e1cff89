package main

import (
	"context"
	"strings"
	"testing"

	"byoc/ledger"
	"byoc/ledger/sqlite"
)

// `byoc ledger verify` fails on a pool charged below zero and names it
// with its balance.
func TestLedgerVerifyNamesNegativePool(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{})
	pool := ledger.PoolKey{Sender: "0xdebt", Capability: "echo"}
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(100), "paid"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Charge(ctx, pool.Ref(), ledger.Wei(150), ledger.Wei(50), "overcharge"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	s.Close()

	code, out, errs := byoc(t, "ledger", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "1 VIOLATED") || !strings.Contains(out, "pool(0xdebt,echo)") || !strings.Contains(out, "negative pool balance -50") {
		t.Fatalf("verify: code %d\n%s%s", code, out, errs)
	}
}
