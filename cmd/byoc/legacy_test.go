package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/sqlite"
	"byoc/orchestrator"
)

// The hold of a legacy request (no job ID) shows under its internal job
// ID in `ledger jobs` and has a statement like any job's.
func TestLedgerShowsLegacyHolds(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{DefaultTTL: time.Hour})
	id := orchestrator.LegacyJobPrefix + "5f0c2a"
	job := ledger.JobKey{Sender: "0xabc", JobID: id}
	_, err = l.Credit(ctx, ledger.PoolKey{Sender: "0xabc", Capability: "echo"}.Ref(), ledger.Wei(5000), "ticket-1")
	if err == nil {
		_, err = l.Admit(ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(3000), Minimum: ledger.Wei(1000)}})
	}
	if err == nil {
		_, err = l.FinishJob(ctx, job, ledger.Wei(1000), ledger.Amount{}, "use")
	}
	l.Close()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := byoc(t, "ledger", "jobs", "--all", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "0xabc "+id+" echo closed 0 0 1000") {
		t.Fatalf("jobs: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = byoc(t, "ledger", "statement", "--data-dir", dir, "--sender", "0xabc", "--job", id)
	for _, want := range []string{"account job(0xabc," + id + ")", "charged 1000", "drawn 3000", "released 2000"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("statement: code %d, missing %q\n%s%s", code, want, out, errs)
		}
	}
}
