// Command ledgerfill writes a SQLite ledger with many closed jobs, fast, for
// measuring retention by hand (docs/performance.md): one pool and n jobs,
// each reserved, paid, charged and released, all closed in 2025. Rows are
// inserted directly, many to a statement, so a million jobs take minutes,
// not the hours the ledger's own API would; byoc ledger verify checks the
// result like any ledger. With -lists it times instead, on a ledger it
// filled, the lists of accounts the consoles and /admin/pools read (opening
// the ledger applies, and times, any migration it lacks).
//
//	go run ./internal/ledgerfill -out /tmp/fill/ledger.db -jobs 1000000
//	go run ./internal/ledgerfill -lists /tmp/fill/ledger.db
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"byoc/internal/cpu"
	"byoc/ledger"
	"byoc/ledger/sqlite"
)

const (
	reserve = 3000 // wei a job draws from the pool
	paid    = 500  // wei a job is credited by a ticket
	charged = 1000 // wei a job is charged
	fund    = 1_000_000_000_000
	batch   = 500 // jobs per statement
)

func main() {
	out := flag.String("out", "", "the ledger file to create (must not exist)")
	jobs := flag.Int("jobs", 1_000_000, "how many closed jobs")
	lists := flag.String("lists", "", "time the account lists on this ledger instead")
	rounds := flag.Int("rounds", 20, "with -lists: how many times each list is read")
	flag.Parse()
	if *lists != "" {
		if err := timeLists(context.Background(), *lists, *rounds); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *out == "" {
		log.Fatal("give -out")
	}
	if _, err := os.Stat(*out); err == nil {
		log.Fatalf("%s exists", *out)
	}
	if err := fill(context.Background(), *out, *jobs); err != nil {
		log.Fatal(err)
	}
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func fill(ctx context.Context, path string, n int) error {
	start := time.Now()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	sender := "0x" + hash("gateway")[:40]
	pool := ledger.PoolKey{Sender: sender, Capability: "text-to-image"}
	l := ledger.New(s, ledger.Options{Clock: ledger.NewManualClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))})
	if _, err := l.Credit(ctx, pool.Ref(), ledger.Wei(fund), "fund"); err != nil {
		return err
	}
	l.Close()
	db := s.DB()
	var poolID int64
	if err := db.QueryRowContext(ctx, `SELECT id FROM accounts WHERE kind = 'pool'`).Scan(&poolID); err != nil {
		return err
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC).UnixMicro()
	step := int64(20_000_000) // a job every 20 s
	accountRow := "(?, 'job', ?, ?, '', ?, ?, 'closed', '0', ?, ?, ?, ?, 60000000, ?, ?, NULL, ?)"
	entryRow := "(?, ?, ?, ?, ?, ?, ?, ?)"
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var accts, ents []any
		for i := lo; i < hi; i++ {
			id := hash(fmt.Sprint("job", i))[:32]
			ref := ledger.JobKey{Sender: sender, JobID: id}.Ref().Encode()
			at := t0 + int64(i)*step
			accts = append(accts, ref, sender, id, pool.Ref().Encode(), poolID, fmt.Sprint(paid), fmt.Sprint(charged),
				fmt.Sprint(reserve), fmt.Sprint(reserve+paid-charged), at, at+5_000_000, at+5_000_000)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (ref, kind, sender, name, customer, pool_ref, pool_id, state,
			balance, credited, charged, moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at) VALUES `+
			strings.TrimSuffix(strings.Repeat(accountRow+", ", hi-lo), ", "), accts...); err != nil {
			tx.Rollback()
			return err
		}
		var firstID int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM accounts WHERE ref = ?`, accts[0]).Scan(&firstID); err != nil {
			tx.Rollback()
			return err
		}
		for i := lo; i < hi; i++ {
			job := firstID + int64(i-lo)
			at := t0 + int64(i)*step
			ticket := "pm:0x" + hash(fmt.Sprint("ticket", i))
			use := "charge:" + sender + ":" + hash(fmt.Sprint("job", i))[:32]
			ents = append(ents,
				at, "reserve", poolID, job, fmt.Sprint(reserve), nil, nil, fmt.Sprint(reserve),
				at+1, "credit", nil, job, fmt.Sprint(paid), ticket, hash(ticket), fmt.Sprint(reserve+paid),
				at+5_000_000, "charge", job, nil, fmt.Sprint(charged), use, hash(use), fmt.Sprint(reserve+paid-charged),
				at+5_000_000, "release", job, poolID, fmt.Sprint(reserve+paid-charged), nil, nil, "0")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO entries (at, kind, from_id, to_id, amount, idem_key, input_hash, balance_after) VALUES `+
			strings.TrimSuffix(strings.Repeat(entryRow+", ", 4*(hi-lo)), ", "), ents...); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if hi%100_000 == 0 {
			log.Printf("%d jobs (%s)", hi, time.Since(start).Round(time.Second))
		}
	}
	// The pool's counters and balance, as the jobs left them.
	out, in := int64(n)*reserve, int64(n)*(reserve+paid-charged)
	if _, err := db.ExecContext(ctx, `UPDATE accounts SET moved_out = ?, moved_in = ?, balance = ? WHERE id = ?`,
		fmt.Sprint(out), fmt.Sprint(in), fmt.Sprint(fund-out+in), poolID); err != nil {
		return err
	}
	log.Printf("%d closed jobs in %s (%s)", n, path, time.Since(start).Round(time.Second))
	return nil
}

// timeLists opens the ledger at path (applying any migration it lacks)
// and reads each list the consoles and /admin/pools read rounds times,
// printing the median wall time and the process's CPU time per read.
func timeLists(ctx context.Context, path string, rounds int) error {
	began := time.Now()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("open (with migrations): %s\n", time.Since(began).Round(time.Millisecond))
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	const rows = 200 // internal/console.Rows
	for _, q := range []struct {
		name string
		f    ledger.AccountFilter
	}{
		{"pools (console, /admin/pools)", ledger.AccountFilter{Kind: ledger.KindPool, Limit: rows}},
		{"open holds (console)", ledger.AccountFilter{Kind: ledger.KindJob, State: ledger.StateOpen, Newest: true, Limit: rows}},
		{"recent jobs (console)", ledger.AccountFilter{Kind: ledger.KindJob, Newest: true, Limit: 20}},
	} {
		walls := make([]time.Duration, rounds)
		cpu0 := cpu.Process()
		for i := range walls {
			t := time.Now()
			if _, err := l.List(ctx, q.f); err != nil {
				return err
			}
			walls[i] = time.Since(t)
		}
		cpuPer := (cpu.Process() - cpu0) / time.Duration(rounds)
		slices.Sort(walls)
		fmt.Printf("%-32s median %-10s cpu/read %s\n", q.name, walls[rounds/2].Round(time.Microsecond), cpuPer.Round(time.Microsecond))
	}
	return nil
}
