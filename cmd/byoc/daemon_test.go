package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"byoc/internal/testnet"
	"byoc/worker"
)

func TestOrchestratorSecretFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n\t\n"), 0o600)
	good := filepath.Join(dir, "secret")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	base := []string{"orchestrator", "--data-dir", filepath.Join(dir, "data"), "--listen", "https://127.0.0.1:0", "--admin-listen", ""}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--secret", "x", "--secret-file", good}, "give --secret or --secret-file, not both"},
		{[]string{"--secret-file", empty}, "the file is empty"},
		{[]string{"--secret-file", filepath.Join(dir, "missing")}, "--secret-file: open"},
		{nil, "--secret-file or --secret is required"},
		{[]string{"--secret-file", good, "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--secret-file", good, "--log-format", "xml"}, `--log-format "xml"`},
	} {
		t.Setenv("BYOC_ORCH_SECRET", "")
		wantFailedStart(t, c.want, append(append([]string{}, base...), c.args...)...)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a refused start made the data directory (%v)", err)
	}
}

func TestSecretFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	os.WriteFile(file, []byte("  s3cret \r\n"), 0o600)
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--secret-file", file}, "from-env", "s3cret"},
		{[]string{"--secret", "flag"}, "from-env", "flag"},
		{nil, "from-env", "from-env"},
		{nil, "", ""},
	} {
		t.Setenv("BYOC_ORCH_SECRET", c.env)
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		s := registerSecretFlags(fs, "BYOC_ORCH_SECRET", "secret")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got, err := s.value(fs); err != nil || got != c.want {
			t.Errorf("%v (env %q): %q, %v; want %q", c.args, c.env, got, err, c.want)
		}
	}
}

// -h lists the flags but never the secret taken from the environment.
func TestOrchestratorHelpHidesSecret(t *testing.T) {
	t.Setenv("BYOC_ORCH_SECRET", "do-not-print-me")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"orchestrator", "-h"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"-secret-file", "-log-level", "-log-format"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
	if strings.Contains(out.String()+errb.String(), "do-not-print-me") {
		t.Error("help prints the secret from BYOC_ORCH_SECRET")
	}
}

func TestLogLevelFlags(t *testing.T) {
	dir := t.TempDir()
	wantFailedStart(t, `--log-level "loud"`, gatewayArgs(filepath.Join(dir, "gw"), "--log-level", "loud")...)
	wantFailedStart(t, `--log-format "xml"`, gatewayArgs(filepath.Join(dir, "gw"), "--log-format", "xml")...)
	wantFailedStart(t, `--log-level "loud"`, "bench", "--log-level", "loud")
	wantFailedStart(t, `--log-level "loud"`, "demo", "--log-level", "loud")
	var buf bytes.Buffer
	log, err := buildLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"msg":"shown"`) {
		t.Errorf("json logger at warn wrote %q", s)
	}
}

// An orchestrator started with --secret-file takes the file's secret
// without its newline: a worker registers with it, not with another. Its
// admin listener answers /healthz and /readyz.
func TestOrchestratorSecretFileRuns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	os.WriteFile(file, []byte("s3cret\n"), 0o600)
	t.Setenv("BYOC_ORCH_SECRET", "")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		var errb bytes.Buffer
		code := run(ctx, []string{"orchestrator", "--secret-file", file, "--data-dir", filepath.Join(dir, "data"),
			"--listen", "https://127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, pw, &errb)
		pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`serving (\S+) \(admin (\S+)\)`).FindStringSubmatch(line)
	if err != nil || m == nil {
		cancel()
		t.Fatalf("orchestrator did not start: %q %v (exit %d)", line, err, <-done)
	}
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("orchestrator exit %d", code)
		}
	}()
	w := testnet.StartWorker(t)
	c := w.Capability(worker.Echo)
	c.PricePerUnit, c.PriceScaling, c.Currency, c.Capacity = 0, 1, "wei", 1
	if err := worker.Register(context.Background(), m[1], "s3cret", c, worker.InsecureSkipVerify()); err != nil {
		t.Errorf("register with the file's secret: %v", err)
	}
	if err := worker.Register(context.Background(), m[1], "another", c, worker.InsecureSkipVerify()); err == nil {
		t.Error("register with another secret: accepted")
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp, err := http.Get(m[2] + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || body["status"] != want {
			t.Errorf("%s: %d %v", path, resp.StatusCode, body)
		}
	}
}
