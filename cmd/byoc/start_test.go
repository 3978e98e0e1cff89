package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"byoc/gateway"
	"byoc/internal/serve"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
)

// A start that fails: exit status 1, one line naming the cause, no panic.
func wantFailedStart(t *testing.T, want string, args ...string) {
	t.Helper()
	wantFailedStartCtx(t, context.Background(), want, args...)
}

func wantFailedStartCtx(t *testing.T, ctx context.Context, want string, args ...string) {
	t.Helper()
	var outb, errb strings.Builder
	code := run(ctx, args, &outb, &errb)
	out, errs := outb.String(), errb.String()
	if code != 1 || !strings.Contains(errs, want) {
		t.Fatalf("%v: exit %d, want 1 and %q\nstdout: %s\nstderr: %s", args, code, want, out, errs)
	}
	if strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Fatalf("%v: want one line, got\n%s", args, errs)
	}
}

// busyPort returns a host:port something else listens on.
func busyPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func orchArgs(dir string, more ...string) []string {
	return append([]string{"orchestrator", "--secret", "s3cret", "--data-dir", dir,
		"--listen", "https://127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, more...)
}

func gatewayArgs(dir string, more ...string) []string {
	return append([]string{"gateway", "--orch-addr", "127.0.0.1:1", "--data-dir", dir,
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, more...)
}

func TestStartPortInUse(t *testing.T) {
	port := busyPort(t)
	want := "listen on " + port + ": address already in use"
	// A fresh data directory: the failed start must not leave it (or the
	// parent it made) behind.
	parent := filepath.Join(t.TempDir(), "data")
	dir := filepath.Join(parent, "node")
	wantFailedStart(t, "byoc orchestrator: "+want, orchArgs(dir, "--listen", "https://"+port)...)
	wantFailedStart(t, "byoc orchestrator: admin: "+want, orchArgs(dir, "--admin-listen", port)...)
	wantFailedStart(t, "byoc gateway: "+want, gatewayArgs(dir, "--listen", port)...)
	wantFailedStart(t, "byoc gateway: admin: "+want, gatewayArgs(dir, "--admin-listen", port)...)
	wantFailedStart(t, "byoc worker: ", "worker", "--listen", port)
	if _, err := os.Stat(parent); !os.IsNotExist(err) {
		t.Errorf("failed starts left %s behind (%v)", parent, err)
	}
}

func TestStartPostgresUnreachable(t *testing.T) {
	dsn := "postgres://postgres@127.0.0.1:1/byoc?sslmode=disable&connect_timeout=3"
	want := "postgres ledger: connect:"
	wantFailedStart(t, want, orchArgs(t.TempDir(), "--ledger-dsn", dsn)...)
	wantFailedStart(t, want, gatewayArgs(t.TempDir(), "--ledger-dsn", dsn)...)
	wantFailedStart(t, want, "ledger", "verify", "--ledger-dsn", dsn)
}

func TestStartDataDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{orchArgs(file), gatewayArgs(file)} {
		wantFailedStart(t, "data dir "+file+" is a file, not a directory", args...)
	}
	under := filepath.Join(file, "sub")
	for _, args := range [][]string{orchArgs(under), gatewayArgs(under)} {
		wantFailedStart(t, "data dir "+under+" cannot be created: a directory above it is a file", args...)
	}
	wantFailedStart(t, "byoc demo: orchestrator: data dir", "demo", "--data-dir", file)
	wantFailedStart(t, "byoc bench: orchestrator: data dir", "bench", "--data-dir", file)

	// A directory nobody may write to. Root writes anywhere chmod allows
	// nothing, but not into sysfs.
	ro := t.TempDir()
	if os.Geteuid() == 0 {
		ro = "/sys/fs"
	} else if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Create(filepath.Join(ro, "probe")); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skipf("%s is writable here", ro)
	}
	for _, args := range [][]string{orchArgs(ro), gatewayArgs(ro)} {
		wantFailedStart(t, "data dir "+ro+" is not writable", args...)
	}
}

func TestStartBadKey(t *testing.T) {
	keystore, err := filepath.Abs("../../ethsig/testdata/sender-scrypt.json")
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("not the password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{orchArgs(t.TempDir()), gatewayArgs(t.TempDir())} {
		wantFailedStart(t, "--eth-keystore "+keystore+": wrong password", append(args, "--eth-keystore", keystore, "--eth-password-file", pw)...)
		wantFailedStart(t, "no such file or directory", append(args, "--eth-keystore", keystore+".missing", "--eth-password-file", pw)...)
		wantFailedStart(t, "--eth-password-file: ", append(args, "--eth-keystore", keystore, "--eth-password-file", pw+".missing")...)
		wantFailedStart(t, "--dev-key: ", append(args, "--dev-key", "0xnothex")...)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "node.key"), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantFailedStart(t, "node key: "+filepath.Join(dir, "node.key")+": ", orchArgs(dir)...)
}

// One node per data directory, whichever role and process; the next start
// after Close gets it.
func TestStartDataDirInUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, err := orchestrator.StartNode(ctx, orchestrator.NodeConfig{Listen: "http://127.0.0.1:0", DataDir: dir,
		Orchestrator: orchestrator.Config{Secret: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// Ended already: a second node that wrongly starts stops at once
	// (exit 0) instead of serving until the test times out. The lock is
	// taken before anything uses the context.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	want := "data dir " + dir + " is in use by another byoc process (pid " + strconv.Itoa(os.Getpid()) + ")"
	wantFailedStartCtx(t, ended, "byoc orchestrator: "+want, orchArgs(dir)...)

	gdir := t.TempDir()
	g, err := gateway.StartNode(ctx, gateway.NodeConfig{Listen: "127.0.0.1:0", DataDir: gdir,
		Discovery: gateway.DiscoveryConfig{Static: []string{o.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	wantFailedStartCtx(t, ended, "byoc gateway: data dir "+gdir+" is in use", gatewayArgs(gdir)...)
	// Inspection reads a ledger a node is using.
	if code, out, errs := byoc(t, "ledger", "verify", "--data-dir", gdir); code != 0 || !strings.Contains(out, "all hold") {
		t.Fatalf("verify beside a running gateway: %d\n%s%s", code, out, errs)
	}
	g.Close()
	g, err = gateway.StartNode(ctx, gateway.NodeConfig{Listen: "127.0.0.1:0", DataDir: gdir,
		Discovery: gateway.DiscoveryConfig{Static: []string{o.URL}}})
	if err != nil {
		t.Fatalf("start after Close: %v", err)
	}
	g.Close()
}

func TestLedgerCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	wantFailedStart(t, "byoc ledger: no byoc ledger at "+filepath.Join(dir, "ledger.db"), "ledger", "pools", "--data-dir", dir)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("byoc ledger made %s (%v)", dir, err)
	}
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "ledger.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantFailedStart(t, "no byoc ledger at", "ledger", "sweep", "--data-dir", empty)
	if fi, err := os.Stat(filepath.Join(empty, "ledger.db")); err != nil || fi.Size() != 0 {
		t.Errorf("byoc ledger wrote to an empty file: %v %v", fi.Size(), err)
	}
}

func TestLedgerCreatesNothingInPostgres(t *testing.T) {
	dsn := ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
	wantFailedStart(t, "byoc ledger: no byoc ledger in this database (", "ledger", "verify", "--ledger-dsn", dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("byoc ledger created %d tables (%v)", n, err)
	}
}

// trickle sends a request's headers, then its body a byte every 100 ms,
// and returns the status the server answers with.
func trickle(t *testing.T, addr, path string, header map[string]string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var h strings.Builder
	for k, v := range header {
		h.WriteString(k + ": " + v + "\r\n")
	}
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n%s\r\n", path, h.String())
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 49 { // never the whole body
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(time.Minute)) // a hang fails, not blocks
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Both nodes' servers bound how long a body may take (the unit tests of
// internal/serve cover the rest of the limits).
func TestNodesBoundSlowBodies(t *testing.T) {
	ctx := context.Background()
	limits := serve.Limits{BodyTimeout: 300 * time.Millisecond}
	o, err := orchestrator.StartNode(ctx, orchestrator.NodeConfig{Listen: "http://127.0.0.1:0", DataDir: t.TempDir(),
		Limits: limits, Orchestrator: orchestrator.Config{Secret: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got := trickle(t, strings.TrimPrefix(o.URL, "http://"), "/capability/register", map[string]string{"Authorization": "Bearer s3cret"}); got != http.StatusRequestTimeout {
		t.Errorf("orchestrator: %d", got)
	}
	g, err := gateway.StartNode(ctx, gateway.NodeConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Limits: limits,
		Discovery: gateway.DiscoveryConfig{Static: []string{o.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	job := base64.StdEncoding.EncodeToString([]byte(`{"capability":"echo","request":"{}","parameters":"{}","timeout_seconds":30}`))
	if got := trickle(t, strings.TrimPrefix(g.URL, "http://"), "/process/request/", map[string]string{"Livepeer": job}); got != http.StatusRequestTimeout {
		t.Errorf("gateway: %d", got)
	}
}

func TestLimitFlags(t *testing.T) {
	for _, bad := range [][]string{{"--body-timeout", "0s"}, {"--max-uploads", "0"}, {"--idle-timeout", "-1s"}} {
		wantFailedStart(t, "must be positive", orchArgs(t.TempDir(), bad...)...)
		wantFailedStart(t, "must be positive", gatewayArgs(t.TempDir(), bad...)...)
	}
}
