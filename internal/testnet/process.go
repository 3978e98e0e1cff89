package testnet

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"byoc/ledger/ledgertest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ByocBinary builds cmd/byoc once per test run, in go test's work
// directory, which go test removes when the run ends (ledgertest.Scratch).
func ByocBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := ledgertest.Scratch("byoc-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "byoc")
		out, err := exec.Command("go", "build", "-o", binPath, "byoc/cmd/byoc").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Process is a running byoc child Process.
type Process struct {
	Cmd   *exec.Cmd
	Lines chan string
}

// startProcess runs byoc with args and waits for a stdout line containing ready.
func StartProcess(t testing.TB, ready string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(ByocBinary(t), args...)
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
	p := &Process{Cmd: cmd, Lines: make(chan string, 100)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.Lines <- sc.Text():
			default: // nobody waits for more lines: drop them
			}
		}
		close(p.Lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.Lines:
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

func (p *Process) Kill9() {
	p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Cmd.Wait()
}

func FreePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
