// Command journalload runs paid jobs through the journal ledger store, as
// an orchestrator does (Admit with one ticket that opens the job's hold,
// then FinishJob), and prints the process's resident memory as it goes:
// the journal store keeps what is open in memory, not history, so memory
// should stay flat however many jobs ran (docs/performance.md).
//
//	go run ./internal/journalload -dir /tmp/jl -jobs 1000000
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/sqlite"
)

func main() {
	dir := flag.String("dir", "", "data directory to create (must not exist)")
	jobs := flag.Int64("jobs", 1_000_000, "paid jobs to run")
	workers := flag.Int("g", 16, "concurrent jobs")
	every := flag.Int64("every", 100_000, "report every this many jobs")
	flag.Parse()
	if *dir == "" {
		log.Fatal("give -dir")
	}
	if _, err := os.Stat(*dir); err == nil {
		log.Fatalf("%s exists", *dir)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	s, err := journal.Open(ctx, *dir+"/"+sqlite.FileName, journal.Options{})
	if err != nil {
		log.Fatal(err)
	}
	l := ledger.New(s, ledger.Options{})
	senders := make([]string, 8)
	for i := range senders {
		senders[i] = fmt.Sprintf("0x%040x", 0xbe0c0+i)
		if _, err := l.Credit(ctx, ledger.PoolKey{Sender: senders[i], Capability: "echo"}.Ref(),
			ledger.MustParseAmount("1000000000000000000"), fmt.Sprint("fund", i)); err != nil {
			log.Fatal(err)
		}
	}
	var next, done atomic.Int64
	var sessions atomic.Int64 // a ticket session per 8 jobs of a worker; its expiry is its number
	start := time.Now()
	last := start
	var mu sync.Mutex
	report := func(n int64) {
		mu.Lock()
		defer mu.Unlock()
		// Sessions expire: forget those more than 1000 sessions old, as a
		// node forgets sessions whose params expired.
		if _, err := l.ForgetSessions(ctx, sessions.Load()-1000); err != nil {
			log.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := s.Stats()
		now := time.Now()
		fmt.Printf("jobs %8d  %6.0f jobs/s  rss %4d MiB  heap %4d MiB  in memory: %d accounts, %d keys, %d sessions; journal records %d, pending %d\n",
			n, float64(*every)/now.Sub(last).Seconds(), rssMiB(), ms.HeapInuse>>20, st.Accounts, st.Keys, st.Sessions, st.Records, st.Pending)
		last = now
	}
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var session string
			var expiry int64
			for k := 0; ; k++ {
				i := next.Add(1)
				if i > *jobs {
					return
				}
				if k%8 == 0 {
					expiry = sessions.Add(1)
					session = fmt.Sprintf("0x%032x%032x", w, expiry)
				}
				if err := paidJob(ctx, l, senders[int(i)%len(senders)], fmt.Sprintf("%032x", i), session, expiry, uint32(k%8), i%64 == 0); err != nil {
					log.Fatal(err)
				}
				if n := done.Add(1); n%*every == 0 {
					report(n)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%d jobs in %s\n", *jobs, time.Since(start).Round(time.Second))
	l.Close()
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
}

func paidJob(ctx context.Context, l *ledger.Ledger, sender, id, session string, expiry int64, nonce uint32, win bool) error {
	ticket := fmt.Sprintf("pm:0x%064x", sha256.Sum256([]byte(session+id)))
	pay := &ledger.PaymentRequest{Session: session, SessionExpiry: expiry,
		Tickets: []ledger.PaymentTicket{{Nonce: nonce, Credit: ledger.PaymentCredit{Key: ticket, Amount: ledger.Wei(1_000)}}}}
	if win {
		pay.Winners = []ledger.Winner{{Key: ticket, Sender: sender, FaceValue: ledger.Wei(1_000_000),
			RedeemAfter: expiry, Payload: make([]byte, 700)}}
	}
	job := ledger.JobKey{Sender: sender, JobID: id}
	res, err := l.Admit(ctx, ledger.AdmitRequest{Payment: pay, OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: "echo",
		Reserve: ledger.Wei(30_000), Minimum: ledger.Wei(1_000), TTL: 35 * time.Second}})
	if err != nil || !res.Admitted {
		return fmt.Errorf("admit %s: %+v, %v", id, res, err)
	}
	_, err = l.FinishJob(ctx, job, ledger.Wei(1_000), ledger.Wei(1_000), "compute:"+id+":1")
	return err
}

// rssMiB is the process's resident set size.
func rssMiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb >> 10
		}
	}
	return -1
}
