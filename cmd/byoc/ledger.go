package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"byoc/gateway"
	"byoc/ledger"
)

const ledgerUsage = `Usage: byoc ledger <action> [flags]

Actions:
  verify      check every invariant (conservation, journal, no dust, no stranded
              hold, each payment credited once, no pool or open hold below
              zero, the archive checkpoint); exits 1 and lists what is wrong
  pools       list pool accounts (prepaid credit per counterparty, capability, customer)
  jobs        list job holds (open ones unless --all)
  statement   one account's history: --sender with --job, --stream, or --capability
              [--customer]. A stream's hold is the stream ID on an orchestrator,
              ~stream-<ID> in a gateway's books; --stream finds either (--role
              picks one). Its totals (credited: paid; charged: due and taken;
              released) are the same each time it is fetched.
  export      every entry in a period (--from, --to) as --format csv or jsonl
  archive     move jobs closed before --before, with their entries, into a gzipped
              JSON-lines file (--out) and keep a checkpoint that verify checks
  sweep       release every job idle past its TTL now (a running node does this itself)
  winners     winning PM tickets queued for redemption (--state queued|redeemed|failed|all)

The counterparty (the accounts' "sender") is the other node: on an
orchestrator the gateway that pays, on a gateway the orchestrator it pays.
--role names it in the tables. Tables show amounts in --unit; JSON and JSON
lines always give exact wei as strings.

Flags (all actions):
`

// ledgerActions are the actions runLedger knows.
var ledgerActions = []string{"verify", "pools", "jobs", "statement", "export", "archive", "sweep", "winners"}

func runLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	sender := fs.String("sender", "", "only this counterparty (pools, jobs); the account's counterparty (statement)")
	job := fs.String("job", "", "statement: the job ID")
	stream := fs.String("stream", "", "statement: a stream's ID (its hold: the ID on an orchestrator, ~stream-ID in a gateway's books)")
	capability := fs.String("capability", "", "statement: the pool's capability")
	customer := fs.String("customer", "", "statement: the pool's customer")
	all := fs.Bool("all", false, "jobs: include closed and expired jobs")
	limit := fs.Int("limit", 100, "at most this many rows or entries (0 = no limit)")
	state := fs.String("state", ledger.WinnerQueued, "winners: which state to list (all for every one)")
	staleAfter := fs.Duration("stale-after", time.Minute,
		"verify: an open job this long past its TTL counts as stranded (allow for the sweep interval of a running node)")
	unit := fs.String("unit", "wei", "tables: show amounts in wei, gwei or eth (exact decimals)")
	role := fs.String("role", "", "the node that wrote the ledger, orchestrator or gateway: names the counterparty column (GATEWAY, ORCHESTRATOR)")
	from := fs.String("from", "", "export: entries at or after this time (RFC 3339 or YYYY-MM-DD, UTC)")
	to := fs.String("to", "", "export: entries before this time (RFC 3339 or YYYY-MM-DD, UTC)")
	format := fs.String("format", "csv", "export: csv or jsonl")
	before := fs.String("before", "", "archive: move jobs closed before this time (RFC 3339 or YYYY-MM-DD, UTC; at least a day ago)")
	outFile := fs.String("out", "", "export: write to this file instead of standard output; archive: the archive file (default: ledger-archive-before-CUT-at-NOW.jsonl.gz in the data directory)")
	vacuum := fs.Bool("vacuum", false, "archive: VACUUM afterwards, giving the freed space back (blocks the node's writes while it runs)")
	if err := actionUsage(fs, ledgerUsage, args, stdout); err != nil {
		return err
	}
	action := args[0]
	if !slices.Contains(ledgerActions, action) {
		fmt.Fprintf(stderr, "byoc ledger: unknown action %q\n\n", action)
		fs.Usage()
		return exitError{2}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if _, ok := units[*unit]; !ok {
		return fmt.Errorf("--unit %q: want wei, gwei or eth", *unit)
	}
	who, ok := map[string]string{"": "COUNTERPARTY", "orchestrator": "GATEWAY", "gateway": "ORCHESTRATOR"}[*role]
	if !ok {
		return fmt.Errorf("--role %q: want orchestrator or gateway", *role)
	}
	amt := func(a ledger.Amount) string { return formatAmount(a, *unit) }
	u := strings.ToUpper(*unit)
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
		if err := out(r, func(w *tabwriter.Writer) { printReport(w, where, r, *unit) }); err != nil {
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
			fmt.Fprintf(w, "%s\tCAPABILITY\tCUSTOMER\tBALANCE (%s)\tCREDITED\tCHARGED\tTO JOBS\tFROM JOBS\tUPDATED\n", who, u)
			for _, a := range as {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Ref.Sender, a.Ref.Name, a.Ref.Customer,
					amt(a.Balance), amt(a.Credited), amt(a.Charged), amt(a.MovedOut), amt(a.MovedIn), a.UpdatedAt.Format(time.RFC3339))
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
			fmt.Fprintf(w, "%s\tJOB\tCAPABILITY\tCUSTOMER\tSTATE\tBALANCE (%s)\tCREDITED\tCHARGED\tOPENED\tEXPIRES/CLOSED\n", who, u)
			for _, a := range as {
				until := a.ExpiresAt
				if a.State.IsFinal() {
					until = a.ClosedAt
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Ref.Sender, a.Ref.Name, a.PoolRef.Name, a.PoolRef.Customer,
					a.State, amt(a.Balance), amt(a.Credited), amt(a.Charged), a.OpenedAt.Format(time.RFC3339), until.Format(time.RFC3339))
			}
		})
	case "statement":
		var ref ledger.Ref
		switch {
		case *sender == "":
			return fmt.Errorf("statement needs --sender")
		case *job != "" && *stream != "":
			return fmt.Errorf("statement: --job or --stream, not both")
		case *stream != "":
			return streamStatement(ctx, l, *sender, *stream, *role, *limit, func(s ledger.Statement) error {
				return out(s, func(w *tabwriter.Writer) { printStatement(w, s, who, *unit) })
			})
		case *job != "":
			ref = ledger.JobKey{Sender: *sender, JobID: *job}.Ref()
		case *capability != "":
			ref = ledger.PoolKey{Sender: *sender, Capability: *capability, Customer: *customer}.Ref()
		default:
			return fmt.Errorf("statement needs --job, --stream or --capability")
		}
		s, err := l.Statement(ctx, ref, *limit)
		if err != nil {
			return err
		}
		return out(s, func(w *tabwriter.Writer) { printStatement(w, s, who, *unit) })
	case "export":
		return runExport(ctx, store, *from, *to, *format, *outFile, *unit, stdout)
	case "archive":
		return runArchive(ctx, store, where, sf, *before, *outFile, *vacuum, *unit, stdout)
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
			fmt.Fprintf(w, "TICKET\t%s\tFACE VALUE (%s)\tREDEEM AFTER BLOCK\tACCOUNT\tQUEUED\tSTATE\n", who, u)
			for _, x := range ws {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", x.Key, x.Sender, amt(x.FaceValue), x.RedeemAfter,
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
	}
	return fmt.Errorf("action %q not handled", action) // ledgerActions and the switch disagree
}

// streamStatement prints the statement of stream id's hold: under id on
// an orchestrator, under gateway.StreamHoldJobID(id) in a gateway's books;
// without a role, whichever exists (the orchestrator's first).
func streamStatement(ctx context.Context, l *ledger.Ledger, sender, id, role string, limit int, print func(ledger.Statement) error) error {
	ids := map[string][]string{"orchestrator": {id}, "gateway": {gateway.StreamHoldJobID(id)}}[role]
	if ids == nil {
		ids = []string{id, gateway.StreamHoldJobID(id)}
	}
	var err error
	for _, jobID := range ids {
		var s ledger.Statement
		s, err = l.Statement(ctx, ledger.JobKey{Sender: sender, JobID: jobID}.Ref(), limit)
		if err == nil {
			return print(s)
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
	}
	return fmt.Errorf("stream %q of %s: %w", id, sender, err)
}

func printReport(w io.Writer, where string, r ledger.Report, unit string) {
	amt := func(a ledger.Amount) string { return formatAmount(a, unit) + " " + unit }
	fmt.Fprintf(w, "ledger\t%s\n", where)
	fmt.Fprintf(w, "accounts\t%d (%d pools, %d open jobs, %d closed or expired jobs)\n", r.Accounts, r.Pools, r.OpenJobs, r.FinalJobs)
	fmt.Fprintf(w, "entries\t%d\n", r.Entries)
	if a := r.Archived; a != nil {
		fmt.Fprintf(w, "archived\t%d jobs, %d entries in %d batches (latest cut %s); counted below\n",
			a.Jobs, a.Entries, a.Batches, a.Before.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "credited\t%s\n", amt(r.Credited))
	fmt.Fprintf(w, "= pools\t%s\n", amt(r.PoolTotal))
	fmt.Fprintf(w, "+ open jobs\t%s\n", amt(r.OpenJobHeld))
	fmt.Fprintf(w, "+ charged\t%s\n", amt(r.Charged))
	if r.OK() {
		fmt.Fprintln(w, "invariants\tall hold")
		return
	}
	fmt.Fprintf(w, "invariants\t%d VIOLATED:\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

func printStatement(w io.Writer, s ledger.Statement, who, unit string) {
	amt := func(a ledger.Amount) string { return formatAmount(a, unit) + " " + unit }
	a := s.Account
	fmt.Fprintf(w, "account\t%s\n", a.Ref)
	fmt.Fprintf(w, "%s\t%s\n", strings.ToLower(who), a.Ref.Sender)
	if s.Pool != nil {
		fmt.Fprintf(w, "pool\t%s (balance %s)\n", s.Pool.Ref, amt(s.Pool.Balance))
	}
	fmt.Fprintf(w, "state\t%s\n", a.State)
	fmt.Fprintf(w, "opened\t%s\n", s.Opened.Format(time.RFC3339Nano))
	if !s.Closed.IsZero() {
		fmt.Fprintf(w, "closed\t%s\n", s.Closed.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "balance\t%s\n", amt(a.Balance))
	fmt.Fprintf(w, "credited\t%s\n", amt(s.Credited))
	fmt.Fprintf(w, "charged\t%s\n", amt(s.Charged))
	fmt.Fprintf(w, "drawn\t%s\n", amt(s.Drawn))
	fmt.Fprintf(w, "released\t%s\n", amt(s.Released))
	if x := s.Archived; x != nil {
		fmt.Fprintf(w, "archived\tto jobs %s, from jobs %s (in archived entries; drawn and released above are the live ones)\n",
			amt(x.MovedOut), amt(x.MovedIn))
	}
	fmt.Fprintf(w, "\nID\tTIME\tKIND\tFROM\tTO\tAMOUNT (%s)\tBALANCE AFTER\tKEY\n", strings.ToUpper(unit))
	for _, e := range s.Entries {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At.Format(time.RFC3339Nano), e.Kind,
			side(e.From, s.Names), side(e.To, s.Names), formatAmount(e.Amount, unit), formatAmount(e.BalanceAfter, unit), e.Key)
	}
	if s.Truncated {
		fmt.Fprintln(w, "…\t(older entries not shown; raise --limit)")
	}
}

// side names one end of an entry for a statement: the job ID or the pool's
// capability (and customer), or the outside world.
func side(id int64, names map[int64]ledger.Ref) string {
	r, ok := names[id]
	switch {
	case id == 0:
		return "outside"
	case !ok:
		return fmt.Sprintf("account %d", id)
	case r.Kind == ledger.KindJob:
		return "job " + r.Name
	case r.Customer != "":
		return "pool " + r.Name + " customer " + r.Customer
	}
	return "pool " + r.Name
}

// units are the decimal places of each unit --unit offers.
var units = map[string]int{"wei": 0, "gwei": 9, "eth": 18}

// formatAmount writes a in unit as an exact decimal: the digits of the wei
// amount with the unit's decimal point, trailing zeros dropped.
func formatAmount(a ledger.Amount, unit string) string {
	places := units[unit]
	s := a.Big().String()
	if places == 0 {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if len(s) <= places {
		s = strings.Repeat("0", places-len(s)+1) + s
	}
	whole, frac := s[:len(s)-places], strings.TrimRight(s[len(s)-places:], "0")
	if frac != "" {
		whole += "." + frac
	}
	if neg {
		whole = "-" + whole
	}
	return whole
}
