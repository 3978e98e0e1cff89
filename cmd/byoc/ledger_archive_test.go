package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/sqlite"
)

func TestLedgerUnknownAction(t *testing.T) {
	// No ledger at all: the action is refused before the store is opened.
	code, out, errs := byoc(t, "ledger", "foo", "--data-dir", t.TempDir())
	if code != 2 || !strings.Contains(errs, `unknown action "foo"`) || !strings.Contains(errs, "Usage: byoc ledger") ||
		strings.Contains(errs, "no byoc ledger") || out != "" {
		t.Fatalf("unknown action: code %d\nstdout %q\nstderr %q", code, out, errs)
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		wei, unit, want string
	}{
		{"0", "eth", "0"}, {"1", "eth", "0.000000000000000001"}, {"1000000000000000000", "eth", "1"},
		{"1500000000", "gwei", "1.5"}, {"-1500000000", "gwei", "-1.5"}, {"123", "gwei", "0.000000123"},
		{"115792089237316195423570985008687907853269984665640564039457584007913129639935", "eth",
			"115792089237316195423570985008687907853269984665640564039457.584007913129639935"},
		{"6008", "wei", "6008"},
	} {
		if got := formatAmount(ledger.MustParseAmount(c.wei), c.unit); got != c.want {
			t.Errorf("%s wei in %s = %s, want %s", c.wei, c.unit, got, c.want)
		}
	}
}

func TestLedgerUnitsNamesAndRoles(t *testing.T) {
	dir := t.TempDir()
	seedLedger(t, dir)
	code, out, errs := byoc(t, "ledger", "pools", "--data-dir", dir, "--unit", "gwei")
	if code != 0 || !strings.Contains(out, "COUNTERPARTY CAPABILITY CUSTOMER BALANCE (GWEI)") || !strings.Contains(out, "0xabc echo 0.000006008 0.000010008") {
		t.Fatalf("pools in gwei: code %d\n%s%s", code, out, errs)
	}
	code, out, _ = byoc(t, "ledger", "jobs", "--data-dir", dir, "--role", "orchestrator")
	if code != 0 || !strings.HasPrefix(out, "GATEWAY JOB") {
		t.Fatalf("jobs on an orchestrator: code %d\n%s", code, out)
	}
	code, out, _ = byoc(t, "ledger", "statement", "--data-dir", dir, "--sender", "0xabc", "--capability", "echo", "--role", "gateway")
	for _, want := range []string{"orchestrator 0xabc", "credited 10008 wei", "reserve pool echo job job-1 3000", "release job job-1 pool echo 2000",
		"credit outside pool echo 10000", "ticket-1"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("pool statement: code %d, missing %q\n%s", code, want, out)
		}
	}
	code, out, _ = byoc(t, "ledger", "statement", "--data-dir", dir, "--sender", "0xabc", "--job", "job-1", "--unit", "eth")
	if code != 0 || !strings.Contains(out, "charge job job-1 outside 0.000000000000001 0.000000000000002 job-1-use") {
		t.Fatalf("job statement in eth: code %d\n%s", code, out)
	}
	for _, bad := range [][]string{{"--unit", "finney"}, {"--role", "worker"}} {
		if code, _, errs := byoc(t, append([]string{"ledger", "pools", "--data-dir", dir}, bad...)...); code != 1 || !strings.Contains(errs, bad[1]) {
			t.Fatalf("%v: code %d %q", bad, code, errs)
		}
	}
}

var archiveEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// seedOldLedger writes, on a clock at archiveEpoch: a pool, jobs old-1 …
// old-n closed in the first hour, and one job left open.
func seedOldLedger(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clock := ledger.NewManualClock(archiveEpoch)
	l := ledger.New(s, ledger.Options{DefaultTTL: 10 * 365 * 24 * time.Hour, Clock: clock})
	defer l.Close()
	pool := ledger.PoolKey{Sender: "0xabc", Capability: "echo"}
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(1_000_000), "fund"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		job := ledger.JobKey{Sender: "0xabc", JobID: "old-" + string(rune('a'+i))}
		if _, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(3000)}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.FinishJob(ctx, job, ledger.Wei(1000), ledger.Amount{}, "use-"+job.JobID); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(48 * time.Hour)
	if _, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: ledger.JobKey{Sender: "0xabc", JobID: "live"}, Capability: "echo", Reserve: ledger.Wei(3000)}); err != nil {
		t.Fatal(err)
	}
}

func TestLedgerExport(t *testing.T) {
	dir := t.TempDir()
	seedOldLedger(t, dir, 2)
	code, out, errs := byoc(t, "ledger", "export", "--data-dir", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// credit, 2 × (reserve, charge, release), reserve of the live job.
	if code != 0 || len(lines) != 1+8 || lines[0] != "id,at,kind,from,to,amount_wei,balance_after_wei,key" ||
		!strings.Contains(out, `reserve,"pool(0xabc,echo)","job(0xabc,old-a)",3000,3000,`) || !strings.Contains(out, `charge,"job(0xabc,old-b)",outside,1000,2000,use-old-b`) {
		t.Fatalf("export: code %d\n%s%s", code, out, errs)
	}
	// Only the first day, as JSON lines, into a file.
	file := filepath.Join(t.TempDir(), "day.jsonl")
	code, _, errs = byoc(t, "ledger", "export", "--data-dir", dir, "--format", "jsonl", "--from", "2026-01-02", "--to", "2026-01-03", "--out", file)
	body, _ := os.ReadFile(file)
	lines = strings.Split(strings.TrimSpace(string(body)), "\n")
	var first ledger.ExportEntry
	if code != 0 || len(lines) != 7 || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Kind != ledger.EntryCredit ||
		first.From != nil || first.To == nil || first.To.Name != "echo" || first.Amount.Cmp(ledger.Wei(1_000_000)) != 0 {
		t.Fatalf("export jsonl: code %d %s\n%s", code, errs, body)
	}
	code, out, _ = byoc(t, "ledger", "export", "--data-dir", dir, "--from", "2026-01-05")
	if code != 0 || strings.TrimSpace(out) != "id,at,kind,from,to,amount_wei,balance_after_wei,key" {
		t.Fatalf("export of an empty period: code %d\n%s", code, out)
	}
	for _, bad := range [][]string{{"--format", "xml"}, {"--from", "yesterday"}, {"--from", "2026-01-03", "--to", "2026-01-02"}} {
		if code, _, errs := byoc(t, append([]string{"ledger", "export", "--data-dir", dir}, bad...)...); code != 1 || errs == "" {
			t.Fatalf("export %v: code %d %q", bad, code, errs)
		}
	}
}

func TestLedgerArchive(t *testing.T) {
	dir := t.TempDir()
	seedOldLedger(t, dir, 3)
	_, before, _ := byoc(t, "ledger", "verify", "--data-dir", dir)

	code, out, errs := byoc(t, "ledger", "archive", "--data-dir", dir, "--before", "2026-01-03")
	files, _ := filepath.Glob(filepath.Join(dir, "ledger-archive-before-20260103T000000Z-at-*.jsonl.gz"))
	if code != 0 || len(files) != 1 || !strings.Contains(out, "archived 3 jobs and 9 entries in 1 batches to "+files[0]) || !strings.Contains(out, "charged 3000 wei") {
		t.Fatalf("archive: code %d\n%s%s", code, out, errs)
	}
	file := files[0]
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(gz)
	var jobs []ledger.ArchivedJob
	for sc.Scan() {
		var j ledger.ArchivedJob
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if sc.Err() != nil || len(jobs) != 3 || jobs[2].Job.Ref.Name != "old-c" || len(jobs[2].Entries) != 3 || jobs[2].Job.State != ledger.StateClosed {
		t.Fatalf("archive file: %v %+v", sc.Err(), jobs)
	}

	// verify still proves the same totals, and says what is archived.
	code, out, errs = byoc(t, "ledger", "verify", "--data-dir", dir)
	totals := func(s string) string { return s[strings.Index(s, "credited"):] }
	if code != 0 || !strings.Contains(out, "archived 3 jobs, 9 entries in 1 batches") || totals(out) != totals(before) {
		t.Fatalf("verify after archive: code %d\n%s%s\nbefore:\n%s", code, out, errs, before)
	}
	code, out, _ = byoc(t, "ledger", "statement", "--data-dir", dir, "--sender", "0xabc", "--capability", "echo")
	if code != 0 || !strings.Contains(out, "archived to jobs 9000 wei, from jobs 6000 wei") || strings.Contains(out, "old-a") {
		t.Fatalf("pool statement after archive: code %d\n%s", code, out)
	}

	// Again: nothing more; with --vacuum the file shrinks or stays.
	code, out, errs = byoc(t, "ledger", "archive", "--data-dir", dir, "--before", "2026-01-03", "--vacuum")
	if files, _ = filepath.Glob(filepath.Join(dir, "*.gz")); code != 0 || !strings.Contains(out, "nothing to archive") || !strings.Contains(out, "vacuumed") || len(files) != 1 {
		t.Fatalf("second archive: code %d\n%s%s", code, out, errs)
	}
	if code, _, errs := byoc(t, "ledger", "archive", "--data-dir", dir, "--before", "2026-01-02", "--out", file); code != 1 || !strings.Contains(errs, "never overwritten") {
		t.Fatalf("archive onto an existing file: code %d %q", code, errs)
	}
	recent := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code, _, errs := byoc(t, "ledger", "archive", "--data-dir", dir, "--before", recent); code != 1 || !strings.Contains(errs, "keeps the last day live") {
		t.Fatalf("archive of the last day: code %d %q", code, errs)
	}
	if code, _, errs := byoc(t, "ledger", "archive", "--data-dir", dir); code != 1 || !strings.Contains(errs, "needs --before") {
		t.Fatalf("archive without a cut: code %d %q", code, errs)
	}

	// A checkpoint that does not add up is a violation.
	s, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`UPDATE archive_carry SET moved_in = '5000'`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out, _ = byoc(t, "ledger", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "archive checkpoint: pools carry out 9000, in 5000; archived jobs moved in 9000, out 6000") {
		t.Fatalf("verify of a bad checkpoint: code %d\n%s", code, out)
	}
}
