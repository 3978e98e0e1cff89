package orchestrator_test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/wire"
)

// TestOrchestratorProcessKilledMidJob runs `byoc orchestrator` and `byoc
// worker` as real processes. The orchestrator is killed with SIGKILL while a
// paid job runs; after a restart its hold expires after its TTL and the
// whole payment is back in the sender's pool, where the next job spends it.
// A replay of the payment made before the crash is refused.
func TestOrchestratorProcessKilledMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir, addr := t.TempDir(), testnet.FreePort(t)
	orchURL := "https://" + addr
	orchArgs := []string{"orchestrator", "--secret", testnet.Secret, "--data-dir", dir, "--listen", orchURL, "--admin-listen", "",
		"--ticket-ev", "1000", "--min-compute", "5s", "--hold-ttl-margin", "1s", "--sweep-interval", "100ms"}
	orch := testnet.StartProcess(t, "serving", orchArgs...)
	testnet.StartProcess(t, "worker serving", "worker", "--listen", "127.0.0.1:0", "--orchestrator", orchURL, "--secret", testnet.Secret,
		"--insecure", "--capabilities", "sleep", "--price-per-unit", "1000", "--reregister-every", "100ms")
	c := testnet.NewClient(t, orchURL, testnet.KeyA)
	testnet.Eventually(t, "the worker to register", func() bool { s, _ := c.TokenRaw("sleep", ""); return s == http.StatusOK })

	payment := c.Pay(c.Token("sleep", ""), 10)
	go c.Job(testnet.JobSpec{Capability: "sleep", ID: "doomed", Timeout: 3, Body: testnet.SleepBody(time.Minute), Payment: payment})
	testnet.Eventually(t, "the job's hold to open", func() bool { return c.Token("sleep", "doomed").JobBalance == "10000" })
	orch.Kill9()

	testnet.StartProcess(t, "serving", orchArgs...)
	testnet.Eventually(t, "the worker to register again", func() bool { s, _ := c.TokenRaw("sleep", ""); return s == http.StatusOK })
	testnet.Eventually(t, "the hold to expire back into the pool", func() bool { return c.Token("sleep", "").PoolBalance == "10000" })

	if r := c.Job(testnet.JobSpec{Capability: "sleep", ID: "replay", Body: testnet.SleepBody(0), Payment: payment}); r.Status != http.StatusBadRequest {
		t.Errorf("replay after the crash: %d %s", r.Status, r.Body)
	}
	r := c.Job(testnet.JobSpec{Capability: "sleep", ID: "next", Body: testnet.SleepBody(0)})
	if r.Status != http.StatusOK || r.Header.Get(wire.HeaderBalance) != "9000" {
		t.Fatalf("next job on the carried-over credit: %d balance %q %s", r.Status, r.Header.Get(wire.HeaderBalance), r.Body)
	}
	out, err := exec.CommandContext(context.Background(), testnet.ByocBinary(t), "ledger", "verify", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all hold") {
		t.Fatalf("byoc ledger verify: %v\n%s", err, out)
	}
}
