package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byoc/orchestrator"
	"byoc/wire"
	"byoc/worker"
)

func TestGatewayHelp(t *testing.T) {
	var out strings.Builder
	err := runGateway(context.Background(), []string{"--help"}, &out, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{"byoc orchestrator --secret", "byoc worker --orchestrator", "--orch-addr", "--dev-key", "/process/request/", "-max-price", "-sweep-interval"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestGatewayBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},                         // no orchestrators
		{"--orch-addr", "ftp://x"}, // bad address
		{"--orch-addr", "x", "--max-price", "-1"},
		{"--orch-addr", "x", "--max-ticket-ev", "ten"},
		{"--orch-addr", "x", "--log-level", "loud"},
	} {
		args = append(args, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--admin-listen", "")
		if err := runGateway(context.Background(), args, io.Discard, io.Discard); err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// The command as an operator runs it: flags, a paid job through a real
// orchestrator and worker, a clean stop.
func TestGatewayCommand(t *testing.T) {
	n, err := orchestrator.StartNode(context.Background(), orchestrator.NodeConfig{
		Listen: "https://127.0.0.1:0", DataDir: t.TempDir(), Orchestrator: orchestrator.Config{Secret: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	w, err := worker.Start("", worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	c := w.Capability(worker.Reverse)
	c.PricePerUnit, c.PriceScaling, c.Currency = 1000, 1, "wei"
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := worker.Register(context.Background(), n.URL, "s3cret", c, worker.WithHTTPClient(hc)); err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runGateway(ctx, []string{"--orch-addr", n.URL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--data-dir", dir, "--dev-key", "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "--log-level", "warn"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err, <-done)
	}
	go io.Copy(io.Discard, pr)
	// "gateway serving http://127.0.0.1:PORT (admin ...), paying as 0x2c75..., orchestrators: ..."
	fields := strings.Fields(line)
	if len(fields) < 3 || !strings.Contains(line, "paying as 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23") {
		t.Fatalf("start line %q", line)
	}
	req, _ := http.NewRequest(http.MethodPost, fields[2]+"/process/request/", strings.NewReader("hello"))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString([]byte(`{"capability":"reverse","request":"{}","parameters":"{}","timeout_seconds":30}`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "olleh" || resp.Header.Get(wire.HeaderOrchestratorURL) != n.URL {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err != nil {
		t.Errorf("no books in the data directory: %v", err)
	}
}
