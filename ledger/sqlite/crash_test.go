package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/ledger/sqlite"
)

// The crash test runs the ledger in a child process (this test binary,
// re-executed), kills it with SIGKILL in the middle of a concurrent load,
// and checks on the file that every operation the child acknowledged is
// there and that every invariant holds. It does so for several rounds on the
// same file, as a node that keeps crashing would.

const crashChildEnv = "BYOC_LEDGER_CRASH_CHILD"

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestKill9 as its child process")
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	l := ledger.New(s, ledger.Options{})
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	round := os.Getenv("BYOC_LEDGER_CRASH_ROUND")
	ack("READY")
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool := ledger.PoolKey{Sender: fmt.Sprintf("0xs%d", w%4), Capability: "echo"}
			for i := 0; ; i++ {
				key := fmt.Sprintf("r%s-w%d-%d", round, w, i)
				if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(1000), key+"-fund"); err != nil {
					ack("ERR credit %v", err)
					return
				}
				ack("CREDIT %s-fund", key)
				job := ledger.JobKey{Sender: pool.Sender, JobID: key}
				if _, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(600), TTL: time.Hour}); err != nil {
					ack("ERR open %v", err)
					return
				}
				ack("OPEN %s", key)
				if _, err := l.Charge(ctx, job.Ref(), ledger.Wei(250), ledger.Wei(0), key+"-use"); err != nil {
					ack("ERR charge %v", err)
					return
				}
				ack("CHARGE %s-use", key)
				if i%3 == 0 {
					continue // leave some jobs open across the crash
				}
				if _, err := l.CloseJob(ctx, job); err != nil {
					ack("ERR close %v", err)
					return
				}
				ack("CLOSE %s", key)
			}
		}()
	}
	wg.Wait()
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	acked := map[string][]string{} // kind → keys
	for round := range 3 {
		want := 1500 + 700*round // kill at a different point each round
		n := ledgertest.KillAfter(t, "TestCrashChild", []string{crashChildEnv + "=" + path, fmt.Sprintf("BYOC_LEDGER_CRASH_ROUND=%d", round)}, want, acked)
		checkAfterCrash(t, path, acked)
		t.Logf("round %d: killed after %d acknowledged operations; all present, invariants hold", round, n)
	}
}

func checkAfterCrash(t *testing.T, path string, acked map[string][]string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := ledger.Verify(ctx, s, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("after kill -9: %s", p)
	}
	var keys []string
	keys = append(keys, acked["CREDIT"]...)
	keys = append(keys, acked["CHARGE"]...)
	found := map[string]bool{}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		for i := 0; i < len(keys); i += 200 {
			es, err := tx.EntriesByKey(ctx, keys[i:min(i+200, len(keys))])
			if err != nil {
				return err
			}
			for _, e := range es {
				found[e.Key] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !found[k] {
			t.Errorf("acknowledged operation %s is missing after kill -9", k)
		}
	}
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	for _, kind := range []string{"OPEN", "CLOSE"} {
		for _, id := range acked[kind] {
			a, err := findJob(ctx, l, id)
			if err != nil {
				t.Errorf("acknowledged %s of job %s: %v", kind, id, err)
				continue
			}
			if kind == "CLOSE" && a.State != ledger.StateClosed {
				t.Errorf("acknowledged close of %s, state %s after kill -9", id, a.State)
			}
		}
	}
	if r.Credited.Sign() == 0 {
		t.Fatal("nothing was credited: the child did no work")
	}
}

// findJob finds a job by ID; the child spreads jobs over senders 0xs0..0xs3.
func findJob(ctx context.Context, l *ledger.Ledger, id string) (ledger.Account, error) {
	var err error
	for s := range 4 {
		var a ledger.Account
		a, err = l.Account(ctx, ledger.JobKey{Sender: fmt.Sprintf("0xs%d", s), JobID: id}.Ref())
		if err == nil {
			return a, nil
		}
	}
	return ledger.Account{}, err
}
