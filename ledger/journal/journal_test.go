package journal_test

import (
	"testing"

	"byoc/ledger/ledgertest"
)

func TestConformance(t *testing.T) { ledgertest.Run(t, ledgertest.Journal) }

func BenchmarkLedger(b *testing.B) { ledgertest.Bench(b, ledgertest.Journal) }

func BenchmarkPaidJob(b *testing.B) { ledgertest.BenchPaidJob(b, ledgertest.Journal) }
