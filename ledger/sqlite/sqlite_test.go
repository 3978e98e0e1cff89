package sqlite_test

import (
	"testing"

	"byoc/ledger/ledgertest"
)

func TestConformance(t *testing.T) { ledgertest.Run(t, ledgertest.SQLite) }

func BenchmarkLedger(b *testing.B) { ledgertest.Bench(b, ledgertest.SQLite) }

func BenchmarkPaidJob(b *testing.B) { ledgertest.BenchPaidJob(b, ledgertest.SQLite) }
