package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The start rule: no public listener without an auth webhook.
func TestSignerStartRule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "signer")
	wantFailedStart(t, "byoc signer: refusing to listen on a non-loopback address without an auth webhook",
		"signer", "--data-dir", dir, "--listen", "0.0.0.0:0", "--admin-listen", "")
	wantFailedStart(t, "--auth-webhook-url", "signer", "--data-dir", dir, "--auth-webhook-url", "ftp://x")
	wantFailedStart(t, "--max-price-per-unit", "signer", "--data-dir", dir, "--max-price-per-unit", "-1")
	wantFailedStart(t, "--budget-thresholds", "signer", "--data-dir", dir, "--budgets", "--budget-thresholds", "80,x")
}

// byoc signer runs, signs its orchestrator-info signature, and byoc signer
// budget grants (idempotently), shows and lists budgets and statements
// through its admin API.
func TestSignerRunsWithBudgets(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		var errb bytes.Buffer
		code := run(ctx, []string{"signer", "--data-dir", filepath.Join(dir, "data"), "--budgets",
			"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-level", "error"}, pw, &errb)
		pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`signer serving (\S+) \(admin (\S+)\), signing as (0x[0-9a-fA-F]{40})`).FindStringSubmatch(line)
	if err != nil || m == nil {
		cancel()
		t.Fatalf("signer did not start: %q %v (exit %d)", line, err, <-done)
	}
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("signer exit %d", code)
		}
	}()
	resp, err := http.Post(m[1]+"/sign-orchestrator-info", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]string
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if resp.StatusCode != 200 || info["address"] != m[3] || len(info["signature"]) != 132 {
		t.Errorf("sign-orchestrator-info: %d %v", resp.StatusCode, info)
	}
	budget := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := run(context.Background(), append([]string{"signer", "budget"}, append(args, "--admin", m[2])...), &out, &errb)
		return code, out.String() + errb.String()
	}
	for range 2 {
		if code, out := budget("grant", "--customer", "alice", "--amount", "5000", "--key", "k1"); code != 0 ||
			strings.TrimSpace(out) != `{"customer":"alice","granted":"5000","spent":"0","balance":"5000"}` {
			t.Errorf("grant: %d %s", code, out)
		}
	}
	if code, out := budget("grant", "--customer", "alice", "--amount", "5000"); code != 1 || !strings.Contains(out, "--key is required") {
		t.Errorf("grant without key: %d %s", code, out)
	}
	if code, out := budget("grant", "--customer", "alice", "--amount", "7", "--key", "k1"); code != 1 || !strings.Contains(out, "409") {
		t.Errorf("key reused: %d %s", code, out)
	}
	if code, out := budget("show", "--customer", "alice"); code != 0 || !strings.Contains(out, `"balance":"5000"`) {
		t.Errorf("show: %d %s", code, out)
	}
	if code, out := budget("list"); code != 0 || !strings.Contains(out, `[{"customer":"alice"`) {
		t.Errorf("list: %d %s", code, out)
	}
	if code, out := budget("statement", "--customer", "alice", "--format", "csv"); code != 0 ||
		!strings.HasPrefix(out, "customer,at,kind,amount_wei,balance_wei,ref\nalice,") || !strings.Contains(out, ",grant,5000,5000,k1") {
		t.Errorf("statement: %d %s", code, out)
	}
}
