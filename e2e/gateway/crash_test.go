package gateway_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/stores"
	"byoc/orchestrator"
	"byoc/worker"
)

// A gateway killed with SIGKILL mid-job: the tickets it sent were booked
// when they left, so after the restart the job's hold expires back into
// the books' pool and the next job counts on that credit (paying only
// what the orchestrator's charge for the cut-off job took); the charge the
// crash kept from the books shows up as a shortfall, is confirmed, and
// written down, after which both sides agree again.
func TestCrashCarryOver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs byoc processes")
	}
	o := startOrch(t, nil)
	w := startWorker(t)
	register(t, o.URL, w, worker.Sleep, "sleep", 1000, 4)
	dir, addr := t.TempDir(), testnet.FreePort(t)
	args := []string{"gateway", "--orch-addr", o.URL, "--data-dir", dir, "--listen", addr, "--admin-listen", "",
		"--dev-key", keyB, "--min-compute", minCompute.String(), "--hold-ttl-margin", "1s", "--log-level", "warn"}
	gw := testnet.StartProcess(t, "gateway serving", args...)
	url := "http://" + addr
	send := func(id, body string) (int, string) {
		h := base64.StdEncoding.EncodeToString([]byte(`{"id":"` + id + `","capability":"sleep","request":"{}","parameters":"{}","timeout_seconds":3}`))
		req, _ := http.NewRequest(http.MethodPost, url+"/process/request/", strings.NewReader(body))
		req.Header.Set("Livepeer", h)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	sender := keyBAddress(t)
	go send("cut-off", sleepBody(time.Minute))
	testnet.Eventually(t, "the cut-off job's hold to open", func() bool {
		a, err := o.Ledger.Account(context.Background(), ledger.JobKey{Sender: sender, JobID: "cut-off"}.Ref())
		return err == nil && a.State == ledger.StateOpen
	})
	gw.Kill9()
	testnet.Eventually(t, "the orchestrator to release the cut-off hold", func() bool {
		a, err := o.Ledger.Account(context.Background(), ledger.JobKey{Sender: sender, JobID: "cut-off"}.Ref())
		return err == nil && a.State.IsFinal()
	})
	cut := statement(t, o, sender, "cut-off")
	if amount(t, cut.Credited) != 5000 {
		t.Fatalf("cut-off job at the orchestrator: %+v", cut)
	}

	testnet.StartProcess(t, "gateway serving", args...)
	// The restarted gateway's sweeper releases the hold after its TTL (3 s
	// + 1 s); until then its credit is held and the next job would pay in
	// full, so wait for the books to show it back in the pool.
	testnet.Eventually(t, "the books to release the cut-off hold", func() bool {
		return bookedPool(t, dir, o.Address.Hex(), "sleep") == 5000
	})
	for _, id := range []string{"next", "after"} {
		if status, body := send(id, sleepBody(0)); status != http.StatusOK {
			t.Fatalf("%s: %d %s", id, status, body)
		}
	}
	next := statement(t, o, sender, "next")
	if amount(t, next.Drawn) != 4000 || amount(t, next.Credited) != 1000 {
		t.Errorf("next job: drew %s and paid %s; want the 4000 carried over and one ticket", next.Drawn, next.Credited)
	}
	testnet.Eventually(t, "the shortfall to be written down", func() bool {
		return bookedPool(t, dir, o.Address.Hex(), "sleep") == amount(t, mustBalance(t, o, sender, "sleep"))
	})
}

func keyBAddress(t *testing.T) string {
	t.Helper()
	gw := startGateway(t, keyB, nil, func(c *gateway.NodeConfig) { c.Discovery.Static = []string{"https://127.0.0.1:1"} })
	return gw.Address()
}

// bookedPool reads a pool from a gateway's books on disk (another process
// writes them; SQLite in WAL mode lets us read alongside).
func bookedPool(t *testing.T, dir, orch, capability string) int64 {
	t.Helper()
	s, _, err := stores.Open(context.Background(), dir, "", true)
	if err != nil {
		return -1
	}
	defer s.Close()
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	b, err := l.Balance(context.Background(), ledger.PoolKey{Sender: orch, Capability: capability}.Ref())
	if err != nil {
		return -1
	}
	return amount(t, b)
}

func mustBalance(t *testing.T, o *orchestrator.Node, sender, capability string) ledger.Amount {
	t.Helper()
	b, err := o.Ledger.Balance(context.Background(), ledger.PoolKey{Sender: sender, Capability: capability}.Ref())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
