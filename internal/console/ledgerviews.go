package console

import (
	"context"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"time"

	"byoc/ledger"
)

// Rows is how many rows a list shows at most; the JSON admin API and
// `byoc ledger` have the rest.
const Rows = 200

// Text is a plain cell.
func Text(s string) Cell { return Cell{Text: s} }

// Mono is a cell of an identifier (address, job ID), set in monospace.
func Mono(s string) Cell { return Cell{Text: s, Class: "mono", Title: s} }

// Int is a count.
func Int(n int64) Cell { return Cell{Text: strconv.FormatInt(n, 10), Class: "num"} }

// Amount is an amount of wei shown in gwei, exactly; its Wei keeps the
// wei and its tooltip says them.
func Amount(a ledger.Amount) Cell {
	return Cell{Text: Gwei(a), Wei: a.String(), Class: "num", Title: a.String() + " wei"}
}

// Time is a ledger time, as UTC clock time with the full time as tooltip;
// the zero time is blank.
func Time(t time.Time) Cell {
	if t.IsZero() {
		return Cell{}
	}
	return Cell{Text: t.UTC().Format("15:04:05"), Title: t.UTC().Format(time.RFC3339Nano), Class: "num"}
}

// Gwei writes wei as gwei with every decimal that is not zero: exact.
func Gwei(a ledger.Amount) string {
	b := a.Big()
	sign := ""
	if b.Sign() < 0 {
		sign, b = "-", b.Neg(b)
	}
	q, r := new(big.Int).QuoRem(b, big.NewInt(1_000_000_000), new(big.Int))
	if r.Sign() == 0 {
		return sign + q.String()
	}
	frac := fmt.Sprintf("%09s", r.String())
	for frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	return sign + q.String() + "." + frac
}

// JobLink is the route of a job's statement.
func JobLink(sender, job string) string {
	return Job + "?" + url.Values{"sender": {sender}, "job": {job}}.Encode()
}

// StreamLink is the route of a stream's statement: sender and job name
// its hold (the job ID of a stream's hold is the stream's ID at an
// orchestrator, "~stream-<id>" in a gateway's books).
func StreamLink(sender, job string) string {
	return Stream + "?" + url.Values{"sender": {sender}, "job": {job}}.Encode()
}

// Outcome is a hold's state as the console shows it: running, closed,
// expired.
func Outcome(s ledger.State) Cell { return outcome(s) }

// LedgerViews builds the tables every role's ledger can show. Party names
// the account's other side: "sender" at an orchestrator (who pays), and
// "orchestrator" at a gateway (whom the books are kept with).
type LedgerViews struct {
	L     *ledger.Ledger
	Party string
	// StreamHold, if set, reports whether a hold is a stream's: its links
	// then open the stream's statement rather than a job's.
	StreamHold func(ledger.Ref) bool
}

// link is the route of a hold's statement: a stream's or a job's.
func (v LedgerViews) link(r ledger.Ref) string {
	if v.StreamHold != nil && v.StreamHold(r) {
		return StreamLink(r.Sender, r.Name)
	}
	return JobLink(r.Sender, r.Name)
}

// Pools lists the pools and their balances.
func (v LedgerViews) Pools(ctx context.Context) (Table, error) {
	as, err := v.L.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, Limit: Rows})
	t := Table{ID: "pools", Title: "Pools", Columns: []string{v.Party, "capability", "customer", "balance (gwei)", "credited (gwei)", "charged (gwei)"},
		Empty: "no pools yet: a pool appears with its first payment"}
	for _, a := range as {
		t.Rows = append(t.Rows, Row{Key: a.Ref.Sender + "/" + a.Ref.Name + "/" + a.Ref.Customer, Cells: []Cell{
			Mono(a.Ref.Sender), Text(a.Ref.Name), Text(a.Ref.Customer), Amount(a.Balance), Amount(a.Credited), Amount(a.Charged)}})
	}
	return truncated(t, len(as)), err
}

// Holds lists the open jobs' holds.
func (v LedgerViews) Holds(ctx context.Context) (Table, error) {
	as, err := v.L.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, State: ledger.StateOpen, Newest: true, Limit: Rows})
	t := Table{ID: "holds", Title: "Open holds", Note: "what running jobs hold back from their pools until they end",
		Columns: []string{"job", v.Party, "capability", "held (gwei)", "paid (gwei)", "opened", "expires"},
		Empty:   "no open holds: no job is running"}
	for _, a := range as {
		t.Rows = append(t.Rows, Row{Key: a.Ref.Name, Cells: []Cell{
			{Text: a.Ref.Name, Class: "mono", Link: v.link(a.Ref)}, Mono(a.Ref.Sender), Text(a.PoolRef.Name),
			Amount(a.Balance), Amount(a.Credited), Time(a.OpenedAt), Time(a.ExpiresAt)}})
	}
	return truncated(t, len(as)), err
}

// Recent lists the latest jobs, open or not, with outcome and charge.
func (v LedgerViews) Recent(ctx context.Context, n int) (Table, error) {
	as, err := v.L.List(ctx, ledger.AccountFilter{Kind: ledger.KindJob, Newest: true, Limit: n})
	t := Table{ID: "recent", Title: "Recent jobs", Note: "newest first; paid is what the job's own tickets credited, reserved what its hold drew from the pool",
		Columns: []string{"job", v.Party, "capability", "outcome", "paid (gwei)", "reserved (gwei)", "charged (gwei)", "released (gwei)", "opened", "closed"},
		Empty:   "no jobs yet"}
	for _, a := range as {
		t.Rows = append(t.Rows, Row{Key: a.Ref.Name, Cells: []Cell{
			{Text: a.Ref.Name, Class: "mono", Link: v.link(a.Ref)}, Mono(a.Ref.Sender), Text(a.PoolRef.Name),
			outcome(a.State), Amount(a.Credited), Amount(a.MovedIn), Amount(a.Charged), Amount(a.MovedOut), Time(a.OpenedAt), Time(a.ClosedAt)}})
	}
	return t, err
}

func outcome(s ledger.State) Cell {
	switch s {
	case ledger.StateOpen:
		return Cell{Text: "running", Class: "warn"}
	case ledger.StateClosed:
		return Cell{Text: "closed", Class: "ok"}
	case ledger.StateExpired:
		return Cell{Text: "expired", Class: "bad", Title: "the hold expired: the job's end was never posted (a crash or a lost connection)"}
	}
	return Text(string(s))
}

// Winners lists winning tickets in the order they were queued, with their
// redemption on chain (docs/chain.md): state, payout, transaction, why one
// waits or died.
func (v LedgerViews) Winners(ctx context.Context) (Table, []ledger.Winner, error) {
	ws, err := v.L.Winners(ctx, "", Rows)
	t := Table{ID: "winners", Title: "Winning tickets",
		Note:    "offchain, winners stay queued (recorded, not redeemed); on chain the redeemer sends them and records what each paid",
		Columns: []string{"queued", "sender", "face value (gwei)", "state", "redeem after (block)", "paid into", "payout (gwei)", "transaction", "last error"},
		Empty:   "no winning tickets yet"}
	for _, w := range ws {
		into := Mono(w.Account.Name)
		if w.Account.Kind == ledger.KindJob {
			into.Link = JobLink(w.Account.Sender, w.Account.Name)
		} else {
			into.Text = "pool " + w.Account.Name
		}
		state := Text(w.State)
		switch w.State {
		case ledger.WinnerQueued, ledger.WinnerSubmitted:
			state.Class = "warn"
		case ledger.WinnerRedeemed:
			state.Class = "ok"
		default:
			state.Class = "bad"
		}
		payout := Text("")
		if w.Payout != nil {
			payout = Amount(*w.Payout)
		}
		t.Rows = append(t.Rows, Row{Key: w.Key, Cells: []Cell{Time(w.QueuedAt), Mono(w.Sender), Amount(w.FaceValue), state,
			Int(w.RedeemAfter), into, payout, Mono(w.TxHash), Text(w.LastError)}})
	}
	return truncated(t, len(ws)), ws, err
}

// Statement is a job's statement page: q has sender and job.
func (v LedgerViews) Statement(ctx context.Context, q url.Values) (Page, error) {
	return v.statement(ctx, q, "Job ", "this job")
}

// StreamStatement is a stream's statement page, the statement of its hold
// (q has sender and job, as StreamLink writes them), titled with the
// stream's ID; the role adds its live figures (what is owed now, why it
// ended) in front of the ledger's.
func (v LedgerViews) StreamStatement(ctx context.Context, q url.Values, id string, live []Figure) (Page, error) {
	p, err := v.statement(ctx, q, "", "this stream")
	if err != nil {
		return p, err
	}
	p.Title = "Stream " + id
	p.Figures = append(live, p.Figures...)
	return p, nil
}

func (v LedgerViews) statement(ctx context.Context, q url.Values, title, self string) (Page, error) {
	ref := ledger.JobKey{Sender: q.Get("sender"), JobID: q.Get("job")}.Ref()
	s, err := v.L.Statement(ctx, ref, Rows)
	if err != nil {
		return Page{}, err
	}
	p := Page{Title: title + ref.Name, Note: v.Party + " " + ref.Sender}
	p.Figures = []Figure{
		{"state", "outcome", outcome(s.Account.State)},
		{"capability", "capability", Text(s.Account.PoolRef.Name)},
		{"credited", "paid by its tickets (gwei)", Amount(s.Credited)},
		{"drawn", "reserved from the pool (gwei)", Amount(s.Drawn)},
		{"charged", "charged (gwei)", Amount(s.Charged)},
		{"released", "released to the pool (gwei)", Amount(s.Released)},
		{"balance", "held now (gwei)", Amount(s.Account.Balance)},
	}
	if s.Pool != nil {
		p.Figures = append(p.Figures, Figure{"pool", "pool balance now (gwei)", Amount(s.Pool.Balance)})
	}
	t := Table{ID: "entries", Title: "Entries", Columns: []string{"#", "time", "kind", "from", "to", "amount (gwei)", "balance after (gwei)", "key"}}
	name := func(id int64) Cell {
		if id == 0 {
			return Cell{}
		}
		if id == s.Account.ID {
			return Text(self)
		}
		if r, ok := s.Names[id]; ok {
			if r.Kind == ledger.KindPool {
				return Text("pool " + r.Name)
			}
			return Cell{Text: r.Name, Class: "mono", Link: JobLink(r.Sender, r.Name)}
		}
		return Text("#" + strconv.FormatInt(id, 10))
	}
	for _, e := range s.Entries {
		t.Rows = append(t.Rows, Row{Key: strconv.FormatInt(e.ID, 10), Cells: []Cell{Int(e.ID), Time(e.At), Text(string(e.Kind)),
			name(e.From), name(e.To), Amount(e.Amount), Amount(e.BalanceAfter), Mono(e.Key)}})
	}
	if s.Truncated {
		t.Note = fmt.Sprintf("the last %d entries; the totals above count them all", Rows)
	}
	p.Tables = []Table{t}
	return p, nil
}

func truncated(t Table, n int) Table {
	if n >= Rows {
		t.Note += fmt.Sprintf(" (the first %d; the admin API lists them all)", Rows)
	}
	return t
}
