// Package e2e holds byoc's end-to-end suites that cross components: the
// fault-and-load suite (faults_test.go) and the answers to go-livepeer PR
// #3914 (pr3914_test.go). Everything runs on loopback.
package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/sqlite"
	"byoc/wire"
	"byoc/worker"
)

var long = flag.Bool("faults.long", false, "run the fault-and-load suite longer: more kills, more load")

// faultReport is what a fault run prints: what it did and what it lost.
type faultReport struct {
	Operations, Acknowledged, Faults int
	AckedTickets, MissingTickets     int
	Entries                          int
	Credited, Charged                ledger.Amount
	MoneyLost                        int64
}

func (r faultReport) String() string {
	return fmt.Sprintf("operations %d (acknowledged %d), faults injected %d, acknowledged tickets %d (missing %d), "+
		"ledger entries %d, credited %s, charged %s, money lost %d wei",
		r.Operations, r.Acknowledged, r.Faults, r.AckedTickets, r.MissingTickets, r.Entries, r.Credited, r.Charged, r.MoneyLost)
}

// TestFaultOrchestratorKilledUnderLoad runs `byoc orchestrator` as a process
// under concurrent paid load and kills it with SIGKILL, then restarts it on
// the same data directory, several times. Afterwards every ticket of every
// acknowledged job is on the books exactly once, the holds of the jobs cut
// off by the kills came back to their pools, and every invariant holds.
func TestFaultOrchestratorKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	kills, clients := 2, 6
	if *long {
		kills, clients = 8, 16
	}
	dir, addr := t.TempDir(), FreePort(t)
	url := "https://" + addr
	args := []string{"orchestrator", "--secret", Secret, "--data-dir", dir, "--listen", url, "--admin-listen", "",
		"--ticket-ev", "1000", "--min-compute", "2s", "--hold-ttl-margin", "1s", "--sweep-interval", "100ms"}
	w := StartWorker(t)
	orch := StartProcess(t, "serving", args...)
	Register(t, url, w, worker.Sleep, "sleep", 1000, 64)

	var (
		mu         sync.Mutex
		acked      []string // ledger keys of tickets in acknowledged jobs
		ops, oks   atomic.Int64
		stop       atomic.Bool
		up         atomic.Bool
		wg         sync.WaitGroup
		keyByIndex = []string{KeyA, KeyB}
	)
	up.Store(true)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewClient(t, url, keyByIndex[i%2])
			for j := 0; !stop.Load(); j++ {
				if !up.Load() {
					time.Sleep(10 * time.Millisecond) // the node is being restarted
					continue
				}
				status, body := c.TokenRaw("sleep", "")
				if status != http.StatusOK {
					continue // down, or not registered again yet
				}
				tok, err := wire.DecodeJobToken(body)
				if err != nil {
					t.Error(err)
					return
				}
				payment, keys := c.PayTickets(tok, 3)
				ops.Add(1)
				r := c.Job(JobSpec{Capability: "sleep", ID: fmt.Sprintf("c%d-%d", i, j), Timeout: 3,
					Body: SleepBody(time.Duration(20+j%5*40) * time.Millisecond), Payment: payment})
				if r.Err == nil && r.Status == http.StatusOK {
					oks.Add(1)
					mu.Lock()
					acked = append(acked, keys...)
					mu.Unlock()
				}
			}
		}()
	}
	for k := range kills {
		target := oks.Load() + 40
		Eventually(t, "load before the kill", func() bool { return oks.Load() >= target })
		up.Store(false)
		orch.Kill9()
		orch = StartProcess(t, "serving", args...)
		Register(t, url, w, worker.Sleep, "sleep", 1000, 64)
		up.Store(true)
		t.Logf("kill %d done after %d acknowledged jobs", k+1, oks.Load())
	}
	target := oks.Load() + 40
	Eventually(t, "load after the last restart", func() bool { return oks.Load() >= target })
	stop.Store(true)
	wg.Wait()
	// Holds cut off by a kill expire after their TTL (3 s + 1 s).
	Eventually(t, "every hold to close", func() bool { return openJobs(t, dir) == 0 })
	orch.Cmd.Process.Signal(os.Interrupt)
	orch.Cmd.Wait()

	rep := checkBooks(t, dir, acked)
	rep.Operations, rep.Acknowledged, rep.Faults = int(ops.Load()), int(oks.Load()), kills
	t.Logf("report: %s", rep)
	if rep.MissingTickets != 0 || rep.MoneyLost != 0 {
		t.Fatalf("money lost: %s", rep)
	}
}

// openJobs counts open holds in the ledger at dir (read while the node runs).
func openJobs(t *testing.T, dir string) int {
	out, err := exec.Command(ByocBinary(t), "ledger", "jobs", "--data-dir", dir, "--json").Output()
	if err != nil {
		t.Fatalf("byoc ledger jobs: %v", err)
	}
	var jobs []json.RawMessage
	if err := json.Unmarshal(out, &jobs); err != nil {
		t.Fatalf("byoc ledger jobs: %v\n%s", err, out)
	}
	return len(jobs)
}

// checkBooks opens the ledger at dir and checks every invariant and that
// each acknowledged ticket is credited exactly once.
func checkBooks(t *testing.T, dir string, acked []string) faultReport {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("invariant violated: %s", p)
	}
	rep := faultReport{AckedTickets: len(acked), Entries: r.Entries, Credited: r.Credited, Charged: r.Charged}
	found := map[string]int{}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		for i := 0; i < len(acked); i += 256 {
			es, err := tx.EntriesByKey(ctx, acked[i:min(i+256, len(acked))])
			if err != nil {
				return err
			}
			for _, e := range es {
				found[e.Key]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range acked {
		if found[k] != 1 {
			rep.MissingTickets++
			rep.MoneyLost += 1000
		}
	}
	return rep
}
