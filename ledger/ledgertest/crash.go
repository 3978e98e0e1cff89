package ledgertest

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// KillAfter runs this test binary's test named run as a crash child, with
// env added to its environment. The child prints a line "KIND KEY" for each
// operation the ledger acknowledged ("READY" and blank lines are passed
// over, "ERR …" fails the test); each is added to acked[KIND]. Once want
// operations are acknowledged the child is killed (SIGKILL on Unix), at a
// moment it does not choose. It returns how many it acknowledged; a child
// that stops before want fails the test.
func KillAfter(t *testing.T, run string, env []string, want int, acked map[string][]string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v=false")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "READY" {
			continue
		}
		if f[0] == "ERR" {
			t.Fatalf("child: %s", sc.Text())
		}
		if len(f) == 2 {
			acked[f[0]] = append(acked[f[0]], f[1])
		}
		if n++; n == want {
			cmd.Process.Kill()
		}
	}
	cmd.Wait()
	if n < want {
		t.Fatalf("child stopped after %d acknowledgements, before the kill at %d", n, want)
	}
	return n
}
