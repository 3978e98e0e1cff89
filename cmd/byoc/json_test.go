package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
)

// byoc ledger --json: an empty list is [], never null; a job's TTL is
// ttl_seconds, not nanoseconds.
func TestLedgerJSONShapes(t *testing.T) {
	dir := t.TempDir()
	seedLedger(t, dir)
	for _, args := range [][]string{
		{"pools", "--sender", "0xnobody"},
		{"jobs", "--sender", "0xnobody", "--all"},
		{"winners", "--state", "redeemed"},
	} {
		code, out, errs := byoc(t, append(append([]string{"ledger"}, args...), "--data-dir", dir, "--json")...)
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("ledger %v --json: code %d, %q %s; want []", args, code, out, errs)
		}
	}
	code, out, _ := byoc(t, "ledger", "verify", "--data-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"problems": []`) {
		t.Errorf("verify --json: code %d\n%s", code, out)
	}
	code, out, _ = byoc(t, "ledger", "jobs", "--data-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"ttl_seconds": 3600`) || strings.Contains(out, `"ttl":`) {
		t.Errorf("jobs --json: want ttl_seconds 3600, no ttl in nanoseconds\n%s", out)
	}
	var jobs []ledger.Account
	if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs) != 1 || jobs[0].TTL != time.Hour {
		t.Errorf("jobs --json decoded: %+v %v; want one job with TTL 1h", jobs, err)
	}
}
