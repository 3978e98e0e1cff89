package postgres_test

import (
	"testing"

	"byoc/ledger/ledgertest"
)

func TestConformance(t *testing.T) {
	ledgertest.PostgresDSN(t)
	ledgertest.Run(t, ledgertest.Postgres)
}
