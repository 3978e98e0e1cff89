// Package e2e holds byoc's end-to-end suites that cross components: the
// fault-and-load suite (faults_test.go) and the answers to go-livepeer PR
// #3914 (pr3914_test.go). Everything runs on loopback.
package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/internal/testnet"
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
	dir, addr := t.TempDir(), testnet.FreePort(t)
	url := "https://" + addr
	args := []string{"orchestrator", "--secret", testnet.Secret, "--data-dir", dir, "--listen", url, "--admin-listen", "",
		"--ticket-ev", "1000", "--min-compute", "2s", "--hold-ttl-margin", "1s", "--sweep-interval", "100ms"}
	w := startWorker(t)
	orch := testnet.StartProcess(t, "serving", args...)
	testnet.Register(t, url, w, worker.Sleep, "sleep", 1000, 64)

	var (
		mu         sync.Mutex
		acked      []string // ledger keys of tickets in acknowledged jobs
		ops, oks   atomic.Int64
		stop       atomic.Bool
		up         atomic.Bool
		wg         sync.WaitGroup
		keyByIndex = []string{testnet.KeyA, testnet.KeyB}
	)
	up.Store(true)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testnet.NewClient(t, url, keyByIndex[i%2])
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
				r := c.Job(testnet.JobSpec{Capability: "sleep", ID: fmt.Sprintf("c%d-%d", i, j), Timeout: 3,
					Body: testnet.SleepBody(time.Duration(20+j%5*40) * time.Millisecond), Payment: payment})
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
		testnet.Eventually(t, "load before the kill", func() bool { return oks.Load() >= target })
		up.Store(false)
		orch.Kill9()
		orch = testnet.StartProcess(t, "serving", args...)
		testnet.Register(t, url, w, worker.Sleep, "sleep", 1000, 64)
		up.Store(true)
		t.Logf("kill %d done after %d acknowledged jobs", k+1, oks.Load())
	}
	target := oks.Load() + 40
	testnet.Eventually(t, "load after the last restart", func() bool { return oks.Load() >= target })
	stop.Store(true)
	wg.Wait()
	// Holds cut off by a kill expire after their TTL (3 s + 1 s).
	testnet.Eventually(t, "every hold to close", func() bool { return openJobs(t, dir) == 0 })
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
	out, err := exec.Command(testnet.ByocBinary(t), "ledger", "jobs", "--data-dir", dir, "--json").Output()
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

// TestFaultGatewayKilledMidStream kills a `byoc gateway` process while it
// relays a server-sent-events job: the orchestrator stops the stream,
// charges the seconds it ran and releases the rest of its hold at once;
// the restarted gateway's books release their hold after its TTL; both
// ledgers verify and agree on what the gateway paid.
func TestFaultGatewayKilledMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	orch := testnet.StartNode(t, t.TempDir(), nil)
	w := startWorker(t)
	testnet.Register(t, orch.URL, w, worker.SSE, "sse", 1000, 4)
	gwDir, gwAddr := t.TempDir(), testnet.FreePort(t)
	args := []string{"gateway", "--orch-addr", orch.URL, "--data-dir", gwDir, "--listen", gwAddr, "--admin-listen", "",
		"--dev-key", testnet.KeyA, "--min-compute", "5s", "--hold-ttl-margin", "1s"}
	gw := testnet.StartProcess(t, "gateway serving", args...)
	hdr, _ := json.Marshal(wire.JobRequest{ID: "stream", Request: "{}", Parameters: "{}", Capability: "sse", TimeoutSeconds: 3})
	req, _ := http.NewRequest(http.MethodPost, "http://"+gwAddr+"/process/request/", strings.NewReader(`{"events":100,"interval_ms":100}`))
	req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", resp, err)
	}
	first := make([]byte, 16)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("no event before the kill: %v", err)
	}
	gw.Kill9()
	resp.Body.Close()
	sender := testnet.NewClient(t, orch.URL, testnet.KeyA).Addr()
	job := ledger.JobKey{Sender: sender, JobID: "stream"}.Ref()
	testnet.Eventually(t, "the orchestrator to close the stream's hold", func() bool {
		a, err := orch.Ledger.Account(context.Background(), job)
		return err == nil && a.State.IsFinal()
	})
	st := testnet.Statement(t, orch, sender, "stream")
	testnet.StartProcess(t, "gateway serving", args...)
	testnet.Eventually(t, "the gateway's books to release their hold", func() bool { return openJobs(t, gwDir) == 0 })
	testnet.Verify(t, orch)
	rep := checkBooks(t, gwDir, nil)
	if rep.Credited.Cmp(st.Credited) != 0 {
		t.Errorf("the gateway booked %s paid, the orchestrator credited %s", rep.Credited, st.Credited)
	}
	t.Logf("report: gateway killed mid-stream: the stream was charged %s for the seconds it ran, %s went back to the pool; both ledgers verify, money lost 0", st.Charged, st.Released)
}
