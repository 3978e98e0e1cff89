package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/sqlite"
)

func byoc(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, norm(out.String()), errb.String()
}

// norm collapses the padding of tables so tests match words, not columns.
func norm(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// seedLedger writes a small history: a pool, a closed job, an open job.
func seedLedger(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := ledger.New(s, ledger.Options{DefaultTTL: time.Hour})
	defer l.Close()
	pool := ledger.PoolKey{Sender: "0xabc", Capability: "echo"}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Credit(ctx, pool.Ref(), ledger.Wei(10_000), "ticket-1"))
	for _, id := range []string{"job-1", "job-2"} {
		job := ledger.JobKey{Sender: "0xabc", JobID: id}
		must(l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(3000)}))
		must(l.Charge(ctx, job.Ref(), ledger.Wei(1000), ledger.Amount{}, id+"-use"))
	}
	must(l.CloseJob(ctx, ledger.JobKey{Sender: "0xabc", JobID: "job-1"}))
	must(l.ReceivePayment(ctx, ledger.PaymentRequest{To: pool.Ref(), Session: "0xsession", SessionExpiry: 77,
		Tickets: []ledger.PaymentTicket{{Nonce: 1, Credit: ledger.PaymentCredit{Key: "pm:0xwin", Amount: ledger.Wei(8)}}},
		Winners: []ledger.Winner{{Key: "pm:0xwin", Sender: "0xabc", FaceValue: ledger.Wei(800), Payload: []byte("{}")}}}))
}

func TestLedgerCommands(t *testing.T) {
	dir := t.TempDir()
	seedLedger(t, dir)

	code, out, errs := byoc(t, "ledger", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "all hold") || !strings.Contains(out, "credited 10008 wei") {
		t.Fatalf("verify: code %d\n%s%s", code, out, errs)
	}
	code, out, _ = byoc(t, "ledger", "pools", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "0xabc") || !strings.Contains(out, "6008") {
		t.Fatalf("pools: code %d\n%s", code, out)
	}
	code, out, _ = byoc(t, "ledger", "jobs", "--data-dir", dir, "--json")
	var jobs []ledger.Account
	if err := json.Unmarshal([]byte(out), &jobs); code != 0 || err != nil || len(jobs) != 1 || jobs[0].Ref.Name != "job-2" {
		t.Fatalf("jobs --json: code %d err %v\n%s", code, err, out)
	}
	code, out, _ = byoc(t, "ledger", "winners", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "pm:0xwin 0xabc 800 77 pool(0xabc,echo)") {
		t.Fatalf("winners: code %d\n%s", code, out)
	}
	code, out, _ = byoc(t, "ledger", "statement", "--data-dir", dir, "--sender", "0xabc", "--job", "job-1")
	for _, want := range []string{"state closed", "drawn 3000", "released 2000", "charged 1000", "job-1-use"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("statement: code %d, missing %q\n%s", code, want, out)
		}
	}
}

func TestLedgerVerifyFailsOnCorruption(t *testing.T) {
	dir := t.TempDir()
	seedLedger(t, dir)
	s, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// Money appears from nowhere: a pool's balance changes without an entry.
	if _, err := s.DB().Exec(`UPDATE accounts SET balance = '999999' WHERE kind = 'pool'`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out, _ := byoc(t, "ledger", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "VIOLATED") || !strings.Contains(out, "conservation") {
		t.Fatalf("verify on a corrupted ledger: code %d\n%s", code, out)
	}
}

func TestLedgerErrors(t *testing.T) {
	if code, _, errs := byoc(t, "ledger", "verify", "--data-dir", t.TempDir()); code != 1 || !strings.Contains(errs, "no byoc ledger at") {
		t.Fatalf("missing ledger: code %d %q", code, errs)
	}
	if code, _, errs := byoc(t, "nonsense"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: code %d %q", code, errs)
	}
	dir := t.TempDir()
	seedLedger(t, dir)
	if code, _, errs := byoc(t, "ledger", "statement", "--data-dir", dir, "--sender", "0xabc"); code != 1 || !strings.Contains(errs, "--job, --stream or --capability") {
		t.Fatalf("statement without account: code %d %q", code, errs)
	}
	if code, _, errs := byoc(t, "ledger", "statement", "--data-dir", dir, "--sender", "0xother", "--job", "job-1"); code != 1 || !strings.Contains(errs, "not found") {
		t.Fatalf("another sender's job: code %d %q", code, errs)
	}
}

// A stream's statement by its ID, on either role's ledger: an
// orchestrator holds a stream under its ID, a gateway's books under
// ~stream-<ID>; --stream finds either, --role picks one, and the totals
// are the same each time.
func TestLedgerStreamStatement(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{DefaultTTL: time.Hour})
	for _, id := range []string{"cam-1", "~stream-cam-2"} { // an orchestrator's stream, a gateway's
		job := ledger.JobKey{Sender: "0xabc", JobID: id}
		pay := ledger.PaymentRequest{Tickets: []ledger.PaymentTicket{{NoNonce: true, Credit: ledger.PaymentCredit{Key: id + "-t", Amount: ledger.Wei(10_000)}}}}
		if _, err := l.Admit(ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: "live", Reserve: ledger.Wei(10_000)}, Payment: &pay}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.FinishJobUpTo(ctx, job, ledger.Wei(3000), "stream-end:"+id); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	s.Close()

	for _, tc := range []struct {
		args []string
		want string // the hold's account
	}{
		{[]string{"--stream", "cam-1"}, "job(0xabc,cam-1)"},
		{[]string{"--stream", "cam-1", "--role", "orchestrator"}, "job(0xabc,cam-1)"},
		{[]string{"--stream", "cam-2"}, "job(0xabc,~stream-cam-2)"},
		{[]string{"--stream", "cam-2", "--role", "gateway"}, "job(0xabc,~stream-cam-2)"},
	} {
		args := append([]string{"ledger", "statement", "--data-dir", dir, "--sender", "0xabc"}, tc.args...)
		code, out, errs := byoc(t, args...)
		for _, want := range []string{"account " + tc.want, "state closed", "credited 10000", "charged 3000", "released 7000"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("%v: code %d, missing %q\n%s%s", tc.args, code, want, out, errs)
			}
		}
		if _, again, _ := byoc(t, args...); again != out {
			t.Errorf("%v: a second fetch differs:\n%s\n%s", tc.args, out, again)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sender", "0xabc", "--stream", "cam-1", "--role", "gateway"}, "not found"},
		{[]string{"--sender", "0xabc", "--stream", "nope"}, "not found"},
		{[]string{"--sender", "0xabc", "--stream", "cam-1", "--job", "cam-1"}, "not both"},
		{[]string{"--stream", "cam-1"}, "needs --sender"},
	} {
		args := append([]string{"ledger", "statement", "--data-dir", dir}, tc.args...)
		if code, _, errs := byoc(t, args...); code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: code %d %q, want 1 and %q", tc.args, code, errs, tc.want)
		}
	}
}
