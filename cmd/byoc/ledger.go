package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"byoc/ledger"
)

const ledgerUsage = `Usage: byoc ledger <action> [flags]

Actions:
  verify      check every invariant (conservation, journal, no dust, no stranded
              hold, each payment credited once, no pool or open hold below
              zero); exits 1 and lists what is wrong
  pools       list pool accounts (prepaid credit per sender, capability, customer)
  jobs        list job holds (open ones unless --all)
  statement   one account's history: --sender with --job, or with --capability [--customer]
  sweep       release every job idle past its TTL now (a running node does this itself)
  winners     winning PM tickets queued for redemption (--state queued|redeemed|failed|all)

Flags (all actions):
`

func runLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	sender := fs.String("sender", "", "only this sender (pools, jobs); the account's sender (statement)")
	job := fs.String("job", "", "statement: the job ID")
	capability := fs.String("capability", "", "statement: the pool's capability")
	customer := fs.String("customer", "", "statement: the pool's customer")
	all := fs.Bool("all", false, "jobs: include closed and expired jobs")
	limit := fs.Int("limit", 100, "at most this many rows or entries (0 = no limit)")
	state := fs.String("state", ledger.WinnerQueued, "winners: which state to list (all for every one)")
	staleAfter := fs.Duration("stale-after", time.Minute,
		"verify: an open job this long past its TTL counts as stranded (allow for the sweep interval of a running node)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), ledgerUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	action := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	store, where, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer store.Close()
	l := ledger.New(store, ledger.Options{})
	defer l.Close()
	out := func(v any, table func(*tabwriter.Writer)) error {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
	switch action {
	case "verify":
		r, err := ledger.Verify(ctx, store, ledger.VerifyOptions{Now: l.Now(), StaleAfter: *staleAfter})
		if err != nil {
			return err
		}
		if err := out(r, func(w *tabwriter.Writer) { printReport(w, where, r) }); err != nil {
			return err
		}
		if !r.OK() {
			return exitError{1}
		}
		return nil
	case "pools":
		as, err := l.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, Sender: *sender, Limit: *limit})
		if err != nil {
			return err
		}
		return out(as, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "SENDER\tCAPABILITY\tCUSTOMER\tBALANCE\tCREDITED\tCHARGED\tTO JOBS\tFROM JOBS\tUPDATED")
			for _, a := range as {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Ref.Sender, a.Ref.Name, a.Ref.Customer,
					a.Balance, a.Credited, a.Charged, a.MovedOut, a.MovedIn, a.UpdatedAt.Format(time.RFC3339))
			}
		})
	case "jobs":
		f := ledger.AccountFilter{Kind: ledger.KindJob, Sender: *sender, Limit: *limit}
		if !*all {
			f.State = ledger.StateOpen
		}
		as, err := l.List(ctx, f)
		if err != nil {
			return err
		}
		return out(as, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "SENDER\tJOB\tCAPABILITY\tCUSTOMER\tSTATE\tBALANCE\tCREDITED\tCHARGED\tOPENED\tEXPIRES/CLOSED")
			for _, a := range as {
				until := a.ExpiresAt
				if a.State.IsFinal() {
					until = a.ClosedAt
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Ref.Sender, a.Ref.Name, a.PoolRef.Name, a.PoolRef.Customer,
					a.State, a.Balance, a.Credited, a.Charged, a.OpenedAt.Format(time.RFC3339), until.Format(time.RFC3339))
			}
		})
	case "statement":
		var ref ledger.Ref
		switch {
		case *sender == "":
			return fmt.Errorf("statement needs --sender")
		case *job != "":
			ref = ledger.JobKey{Sender: *sender, JobID: *job}.Ref()
		case *capability != "":
			ref = ledger.PoolKey{Sender: *sender, Capability: *capability, Customer: *customer}.Ref()
		default:
			return fmt.Errorf("statement needs --job or --capability")
		}
		s, err := l.Statement(ctx, ref, *limit)
		if err != nil {
			return err
		}
		return out(s, func(w *tabwriter.Writer) { printStatement(w, s) })
	case "winners":
		st := *state
		if st == "all" {
			st = ""
		}
		ws, err := l.Winners(ctx, st, *limit)
		if err != nil {
			return err
		}
		return out(ws, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "TICKET\tSENDER\tFACE VALUE\tREDEEM AFTER BLOCK\tACCOUNT\tQUEUED\tSTATE")
			for _, x := range ws {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", x.Key, x.Sender, x.FaceValue, x.RedeemAfter,
					x.Account, x.QueuedAt.Format(time.RFC3339), x.State)
			}
		})
	case "sweep":
		n, err := l.ExpireJobs(ctx)
		if err != nil {
			return err
		}
		return out(map[string]int{"expired": n}, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "released %d idle job(s) to their pools\n", n)
		})
	default:
		fs.Usage()
		return fmt.Errorf("unknown action %q", action)
	}
}

func printReport(w io.Writer, where string, r ledger.Report) {
	fmt.Fprintf(w, "ledger\t%s\n", where)
	fmt.Fprintf(w, "accounts\t%d (%d pools, %d open jobs, %d closed or expired jobs)\n", r.Accounts, r.Pools, r.OpenJobs, r.FinalJobs)
	fmt.Fprintf(w, "entries\t%d\n", r.Entries)
	fmt.Fprintf(w, "credited\t%s wei\n", r.Credited)
	fmt.Fprintf(w, "= pools\t%s wei\n", r.PoolTotal)
	fmt.Fprintf(w, "+ open jobs\t%s wei\n", r.OpenJobHeld)
	fmt.Fprintf(w, "+ charged\t%s wei\n", r.Charged)
	if r.OK() {
		fmt.Fprintln(w, "invariants\tall hold")
		return
	}
	fmt.Fprintf(w, "invariants\t%d VIOLATED:\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

func printStatement(w io.Writer, s ledger.Statement) {
	a := s.Account
	fmt.Fprintf(w, "account\t%s\n", a.Ref)
	if s.Pool != nil {
		fmt.Fprintf(w, "pool\t%s (balance %s)\n", s.Pool.Ref, s.Pool.Balance)
	}
	fmt.Fprintf(w, "state\t%s\n", a.State)
	fmt.Fprintf(w, "opened\t%s\n", s.Opened.Format(time.RFC3339Nano))
	if !s.Closed.IsZero() {
		fmt.Fprintf(w, "closed\t%s\n", s.Closed.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "balance\t%s\n", a.Balance)
	fmt.Fprintf(w, "credited\t%s\n", s.Credited)
	fmt.Fprintf(w, "charged\t%s\n", s.Charged)
	fmt.Fprintf(w, "drawn\t%s\n", s.Drawn)
	fmt.Fprintf(w, "released\t%s\n", s.Released)
	fmt.Fprintln(w, "\nID\tTIME\tKIND\tFROM\tTO\tAMOUNT\tBALANCE AFTER\tKEY")
	for _, e := range s.Entries {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At.Format(time.RFC3339Nano), e.Kind,
			side(e.From, a, s.Pool), side(e.To, a, s.Pool), e.Amount, e.BalanceAfter, e.Key)
	}
	if s.Truncated {
		fmt.Fprintln(w, "…\t(older entries not shown; raise --limit)")
	}
}

// side names one end of an entry for a statement.
func side(id int64, a ledger.Account, pool *ledger.Account) string {
	switch {
	case id == 0:
		return "outside"
	case id == a.ID:
		return "this"
	case pool != nil && id == pool.ID:
		return "pool"
	}
	return fmt.Sprintf("account %d", id)
}
