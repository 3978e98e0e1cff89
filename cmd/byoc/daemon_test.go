package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
