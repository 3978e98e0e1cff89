package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/postgres"
)

// privatePostgres runs a PostgreSQL cluster of the test's own on a free
// port, so that it can be crashed without touching the machine's server.
// It needs the server binaries and root (the cluster runs as user
// postgres); elsewhere the test skips and says so.
type privatePostgres struct {
	t          *testing.T
	bin, data  string
	port       string
	runAsOwner []string
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	u, err := user.Lookup("postgres")
	if len(bins) == 0 || err != nil || os.Geteuid() != 0 {
		t.Skip("PostgreSQL restart test skipped: needs the PostgreSQL server binaries, a postgres user and root to run a private cluster")
	}
	root, err := os.MkdirTemp("", "byoc-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Chmod(root, 0o755)
	if err := os.Chown(root, uid, gid); err != nil {
		t.Fatal(err)
	}
	_, port, _ := splitHostPort(testnet.FreePort(t))
	p := &privatePostgres{t: t, bin: filepath.Dir(bins[0]), data: filepath.Join(root, "data"), port: port,
		runAsOwner: []string{"runuser", "-u", "postgres", "--"}}
	p.run(filepath.Join(p.bin, "initdb"), "-D", p.data, "-A", "trust", "-U", "postgres", "--no-sync")
	p.start()
	t.Cleanup(func() { p.stop("immediate") })
	return p
}

func (p *privatePostgres) run(args ...string) {
	p.t.Helper()
	cmd := exec.Command(p.runAsOwner[0], append(p.runAsOwner[1:], args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func (p *privatePostgres) start() {
	p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "-w", "-l", filepath.Join(p.data, "log"),
		"-o", fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1", p.port, p.data), "start")
}

// stop stops the cluster; mode "immediate" is a crash (no checkpoint).
func (p *privatePostgres) stop(mode string) {
	cmd := exec.Command(p.runAsOwner[0], append(p.runAsOwner[1:], filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "-m", mode, "-w", "stop")...)
	cmd.Run()
}

func (p *privatePostgres) dsn() string {
	return "postgres://postgres@127.0.0.1:" + p.port + "/postgres?sslmode=disable&connect_timeout=2"
}

func splitHostPort(hp string) (string, string, error) {
	for i := len(hp) - 1; i >= 0; i-- {
		if hp[i] == ':' {
			return hp[:i], hp[i+1:], nil
		}
	}
	return hp, "", fmt.Errorf("no port in %q", hp)
}

// TestFaultPostgresRestartUnderLoad crashes the PostgreSQL server under the
// ledger while writers credit, open, charge and close jobs, and restarts it.
// Writers retry what failed with the same idempotency keys; at the end every
// acknowledged operation is there exactly once and every invariant holds.
func TestFaultPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a private PostgreSQL cluster")
	}
	pg := startPrivatePostgres(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, pg.dsn(), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ledger.New(store, ledger.Options{})
	defer l.Close()

	restarts := 2
	if *long {
		restarts = 6
	}
	var (
		acked, attempts, failures atomic.Int64
		stop                      atomic.Bool
		wg                        sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool := ledger.PoolKey{Sender: fmt.Sprintf("0xs%d", w%3), Capability: "echo"}
			for i := 0; !stop.Load(); i++ {
				job := ledger.JobKey{Sender: pool.Sender, JobID: fmt.Sprintf("w%d-%d", w, i)}
				steps := []func() error{
					func() error { _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(100), job.JobID+"-fund"); return err },
					func() error {
						_, err := l.OpenJob(ctx, ledger.OpenJobRequest{Job: job, Capability: "echo", Reserve: ledger.Wei(80)})
						return err
					},
					func() error {
						_, err := l.Charge(ctx, job.Ref(), ledger.Wei(30), ledger.Amount{}, job.JobID+"-use")
						return err
					},
					func() error { _, err := l.CloseJob(ctx, job); return err },
				}
				for _, step := range steps {
					// Retry with the same inputs until it is acknowledged: every
					// operation is idempotent, so a retry never doubles it.
					for {
						attempts.Add(1)
						if err := step(); err == nil {
							acked.Add(1)
							break
						}
						failures.Add(1)
						time.Sleep(20 * time.Millisecond) // the server is down; try again shortly
					}
				}
			}
		}()
	}
	for range restarts {
		target := acked.Load() + 400
		testnet.Eventually(t, "load before the crash", func() bool { return acked.Load() >= target })
		pg.stop("immediate")
		pg.start()
	}
	target := acked.Load() + 400
	testnet.Eventually(t, "load after the last restart", func() bool { return acked.Load() >= target })
	stop.Store(true)
	wg.Wait()

	r, err := ledger.Verify(ctx, store, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("invariant violated: %s", p)
	}
	jobs := acked.Load() / 4
	want := faultReport{Operations: int(attempts.Load()), Acknowledged: int(acked.Load()), Faults: restarts, Entries: r.Entries,
		Credited: r.Credited, Charged: r.Charged}
	if r.Credited.Cmp(ledger.Wei(100*jobs)) != 0 || r.Charged.Cmp(ledger.Wei(30*jobs)) != 0 || r.OpenJobs != 0 {
		want.MoneyLost = 1
		t.Errorf("after %d jobs: credited %s (want %d), charged %s (want %d), open jobs %d", jobs, r.Credited, 100*jobs, r.Charged, 30*jobs, r.OpenJobs)
	}
	t.Logf("report: %s; %d attempts failed while the server was down and were retried", want, failures.Load())
}
