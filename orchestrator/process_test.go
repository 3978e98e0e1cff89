package orchestrator_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"byoc/wire"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// byocBinary builds cmd/byoc once per test run.
func byocBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "byoc-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "byoc")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/byoc").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is a running byoc child process.
type process struct {
	cmd   *exec.Cmd
	lines chan string
}

// startProcess runs byoc with args and waits for a stdout line containing ready.
func startProcess(t *testing.T, ready string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(byocBinary(t), args...)
	out, in, err := os.Pipe() // stdout and stderr (logs) together
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = in, in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	stdout := out
	p := &process{cmd: cmd, lines: make(chan string, 100)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for more lines: drop them
			}
		}
		close(p.lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("byoc %s exited before it was ready", args[0])
			}
			if strings.Contains(l, ready) {
				return p
			}
		case <-timeout:
			t.Fatalf("byoc %s not ready after 30 s", args[0])
		}
	}
}

func (p *process) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestOrchestratorProcessKilledMidJob runs `byoc orchestrator` and `byoc
// worker` as real processes. The orchestrator is killed with SIGKILL while a
// paid job runs; after a restart its hold expires after its TTL and the
// whole payment is back in the sender's pool, where the next job spends it.
// A replay of the payment made before the crash is refused.
func TestOrchestratorProcessKilledMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir, addr := t.TempDir(), freePort(t)
	orchURL := "https://" + addr
	orchArgs := []string{"orchestrator", "--secret", secret, "--data-dir", dir, "--listen", orchURL, "--admin-listen", "",
		"--ticket-ev", "1000", "--min-compute", "5s", "--hold-ttl-margin", "1s", "--sweep-interval", "100ms"}
	orch := startProcess(t, "serving", orchArgs...)
	startProcess(t, "worker", "worker", "--listen", "127.0.0.1:0", "--orchestrator", orchURL, "--secret", secret,
		"--insecure", "--capabilities", "sleep", "--price-per-unit", "1000", "--reregister-every", "100ms")
	c := newClient(t, orchURL, keyA)
	eventually(t, "the worker to register", func() bool { s, _ := c.tokenRaw("sleep", ""); return s == http.StatusOK })

	payment := c.pay(c.token("sleep", ""), 10)
	go c.job(jobSpec{capability: "sleep", id: "doomed", timeout: 3, body: sleepBody(time.Minute), payment: payment})
	eventually(t, "the job's hold to open", func() bool { return c.token("sleep", "doomed").JobBalance == "10000" })
	orch.kill9()

	startProcess(t, "serving", orchArgs...)
	eventually(t, "the worker to register again", func() bool { s, _ := c.tokenRaw("sleep", ""); return s == http.StatusOK })
	eventually(t, "the hold to expire back into the pool", func() bool { return c.token("sleep", "").PoolBalance == "10000" })

	if r := c.job(jobSpec{capability: "sleep", id: "replay", body: sleepBody(0), payment: payment}); r.status != http.StatusBadRequest {
		t.Errorf("replay after the crash: %d %s", r.status, r.body)
	}
	r := c.job(jobSpec{capability: "sleep", id: "next", body: sleepBody(0)})
	if r.status != http.StatusOK || r.header.Get(wire.HeaderBalance) != "9000" {
		t.Fatalf("next job on the carried-over credit: %d balance %q %s", r.status, r.header.Get(wire.HeaderBalance), r.body)
	}
	out, err := exec.CommandContext(context.Background(), byocBinary(t), "ledger", "verify", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all hold") {
		t.Fatalf("byoc ledger verify: %v\n%s", err, out)
	}
}
