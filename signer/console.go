package signer

import (
	"context"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"byoc/internal/console"
	"byoc/ledger"
)

// The signer's pages of the web console (docs/console.md): its customers'
// budgets (or usage tallies) as the budget admin API reads them, the
// thresholds each has crossed, the alerts fired, and each customer's
// spend and usage over time — series the signer builds from the
// customer's statement, which the page draws.

// alertKeep is how many fired alerts the signer remembers for the console
// (in memory; the Alert hook is where they go for good).
const alertKeep = 50

// alertLog keeps the latest alerts, newest last.
type alertLog struct {
	mu sync.Mutex
	l  []firedAlert
}

type firedAlert struct {
	Alert
	At time.Time
}

func (l *alertLog) add(a firedAlert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, a)
	if len(l.l) > alertKeep {
		l.l = append(l.l[:0:0], l.l[len(l.l)-alertKeep:]...)
	}
}

// list returns the alerts newest first, those of customer only unless it
// is "*".
func (l *alertLog) list(customer string) []firedAlert {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []firedAlert
	for i := len(l.l) - 1; i >= 0; i-- {
		if customer == "*" || l.l[i].Customer == customer {
			out = append(out, l.l[i])
		}
	}
	return out
}

// Crossed returns the thresholds (percent, ascending) that v's spend has
// reached: spent ≥ t % of what was granted, the rule alerts fire on.
// Without a grant (or with budgets not enforced) none is crossed.
func (b *Budgets) Crossed(v BudgetView) []int {
	var out []int
	if v.Granted.Sign() <= 0 {
		return nil
	}
	for _, t := range slices.Sorted(slices.Values(b.Thresholds)) {
		if reached(v.Spent, v.Granted, t) {
			out = append(out, t)
		}
	}
	return out
}

// reached reports whether spent is at least t % of granted.
func reached(spent, granted ledger.Amount, t int) bool {
	line := new(big.Int).Mul(granted.Big(), big.NewInt(int64(t)))
	return new(big.Int).Mul(spent.Big(), big.NewInt(100)).Cmp(line) >= 0
}

func (n *Node) consoleViews() []console.View {
	return []console.View{
		{Path: console.Customers, Title: "Customers", Load: n.customersPage},
		{Path: "customer", Load: n.customerPage},
	}
}

func customerLink(c string) string {
	return "customer?" + url.Values{"customer": {c}}.Encode()
}

// customerName shows "" (callers no one names) readably.
func customerName(c string) string {
	if c == "" {
		return "(no customer)"
	}
	return c
}

// alertCell is the alerts state of a customer's budget.
func (n *Node) alertCell(v BudgetView) console.Cell {
	b := n.Budgets
	switch {
	case b.Unlimited:
		return console.Cell{Text: "no budget (usage only)", Class: "num"}
	case len(b.Thresholds) == 0:
		return console.Cell{Text: "no thresholds"}
	case v.Granted.Sign() <= 0:
		return console.Cell{Text: "nothing granted", Class: "bad"}
	}
	crossed := b.Crossed(v)
	if len(crossed) == 0 {
		return console.Cell{Text: fmt.Sprintf("below %d %%", slices.Min(b.Thresholds)), Class: "ok"}
	}
	top := crossed[len(crossed)-1]
	c := console.Cell{Text: fmt.Sprintf("%d %% crossed", top), Class: "warn"}
	if top >= 100 || v.Balance.Sign() <= 0 {
		c.Class = "bad"
	}
	return c
}

// share is spent as a percentage of granted, one decimal, for people.
func share(v BudgetView) console.Cell {
	if v.Granted.Sign() <= 0 {
		return console.Cell{}
	}
	r := new(big.Rat).SetFrac(new(big.Int).Mul(v.Spent.Big(), big.NewInt(100)), v.Granted.Big())
	return console.Cell{Text: r.FloatString(1) + " %", Class: "num"}
}

// customerAccounts lists the customers' budget (or usage) accounts, in
// the order they were first used.
func (n *Node) customerAccounts(ctx context.Context) ([]ledger.Account, bool, error) {
	b := n.Budgets
	var out []ledger.Account
	var after int64
	for {
		as, err := b.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, Sender: b.Owner, AfterID: after, Limit: 500})
		if err != nil {
			return nil, false, err
		}
		for _, a := range as {
			if a.Ref.Name == b.Ref("").Name {
				if len(out) == console.Rows {
					return out, true, nil
				}
				out = append(out, a)
			}
			after = a.ID
		}
		if len(as) < 500 {
			return out, false, nil
		}
	}
}

func (n *Node) customersPage(ctx context.Context, _ url.Values) (console.Page, error) {
	b := n.Budgets
	as, more, err := n.customerAccounts(ctx)
	if err != nil {
		return console.Page{}, err
	}
	t := console.Table{ID: "customers", Title: "Customers",
		Columns: []string{"customer", "granted (gwei)", "spent (gwei)", "balance (gwei)", "spent", "alerts", "last activity"},
		Empty:   "no customer yet: grant a budget with POST /admin/budget/grant"}
	if b.Unlimited {
		t.Note = "budgets are not enforced (start the signer with --budgets): spent is each customer's usage tally"
	}
	if more {
		t.Note += fmt.Sprintf(" (the first %d; GET /admin/budgets lists them all)", console.Rows)
	}
	crossed := int64(0)
	var top []ledger.Account // the customers charted: the most spent
	for _, a := range as {
		v := view(a)
		if len(b.Crossed(v)) > 0 {
			crossed++
		}
		t.Rows = append(t.Rows, console.Row{Key: a.Ref.Customer, Cells: []console.Cell{
			{Text: customerName(a.Ref.Customer), Link: customerLink(a.Ref.Customer)},
			console.Amount(v.Granted), console.Amount(v.Spent), console.Amount(v.Balance), share(v), n.alertCell(v), console.Time(a.UpdatedAt)}})
		top = append(top, a)
	}
	slices.SortStableFunc(top, func(x, y ledger.Account) int { return view(y).Spent.Cmp(view(x).Spent) })
	top = top[:min(len(top), 4)]
	spent := console.Chart{ID: "spent", Title: "Spent over time", Unit: "gwei", Wide: true,
		Note:  fmt.Sprintf("what each customer has spent in all, after each payment signed (the %d who spent most)", len(top)),
		Empty: "nothing spent yet"}
	for _, a := range top {
		st, err := b.Statement(ctx, a.Ref.Customer, chartLines)
		if err != nil {
			return console.Page{}, err
		}
		spent.Series = append(spent.Series, console.Series{Name: customerName(a.Ref.Customer), Kind: console.SeriesLine, Points: b.cumulativeSpent(st)})
	}
	alerts := n.alertsTable("*")
	mode := "enforced"
	if b.Unlimited {
		mode = "not enforced (usage tallies)"
	}
	thresholds := "none"
	if len(b.Thresholds) > 0 {
		var ts []string
		for _, x := range slices.Sorted(slices.Values(b.Thresholds)) {
			ts = append(ts, fmt.Sprint(x, " %"))
		}
		thresholds = strings.Join(ts, ", ")
	}
	return console.Page{Title: "Signer", Note: "signs as " + n.Address() + "; each customer's budget is a pool in the signer's ledger, charged before a payment is signed",
		Figures: []console.Figure{
			{ID: "customers", Label: "customers", Value: console.Int(int64(len(as)))},
			{ID: "budgets", Label: "budgets", Value: console.Text(mode)},
			{ID: "thresholds", Label: "alert thresholds (spent)", Value: console.Text(thresholds)},
			{ID: "crossed", Label: "customers past a threshold", Value: console.Int(crossed)},
		},
		Charts: []console.Chart{spent},
		Tables: []console.Table{t, alerts}}, nil
}

func (n *Node) alertsTable(customer string) console.Table {
	t := console.Table{ID: "alerts", Title: "Alerts fired", Note: fmt.Sprintf("the latest %d since the signer started, newest first: a spend that crossed a threshold of what was granted", alertKeep),
		Columns: []string{"at", "customer", "threshold", "granted (gwei)", "spent (gwei)", "balance (gwei)"},
		Empty:   "no alert fired"}
	for _, a := range n.alerts.list(customer) {
		t.Rows = append(t.Rows, console.Row{Key: a.ID, Cells: []console.Cell{console.Time(a.At),
			{Text: customerName(a.Customer), Link: customerLink(a.Customer)}, console.Text(fmt.Sprint(a.Threshold, " %")),
			console.Amount(a.Granted), console.Amount(a.Spent), console.Amount(a.Balance)}})
	}
	return t
}

// chartLines is how many of a customer's latest statement lines the
// charts are drawn from.
const chartLines = 1000

// spentBy is what a statement line adds to what the customer spent, as
// the budget's figures count it (view): a spend's amount; with budgets a
// refund is credited back as a grant is (granted grows, spent stays),
// with a usage tally it is taken off what was spent; a grant adds nothing.
func (b *Budgets) spentBy(l StatementLine) ledger.Amount {
	a := l.Amount
	if a.Sign() < 0 {
		a = a.Neg()
	}
	switch {
	case l.Kind == "spend":
		return a
	case l.Kind == "refund" && b.Unlimited:
		return a.Neg()
	}
	return ledger.Amount{}
}

// cumulativeSpent is what the customer had spent in all after each line
// of the statement (a grant leaves it as it was). A truncated statement
// starts from what was spent before its first line.
func (b *Budgets) cumulativeSpent(st CustomerStatement) []console.Point {
	total := st.Spent
	for _, l := range st.Lines {
		total = total.Sub(b.spentBy(l))
	}
	var out []console.Point
	for _, l := range st.Lines {
		total = total.Add(b.spentBy(l))
		out = append(out, console.Point{T: l.At, V: console.Amount(total)})
	}
	return out
}

// buckets are the periods the per-period charts sum over: the shortest
// that puts the statement's span in at most maxBuckets.
var buckets = []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
	15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

const maxBuckets = 30

func bucketFor(first, last time.Time) time.Duration {
	for _, b := range buckets {
		if last.Truncate(b).Sub(first.Truncate(b))/b < maxBuckets {
			return b
		}
	}
	return buckets[len(buckets)-1]
}

// perPeriod sums the statement's spends (less refunds) and counts its
// signed payments per period, every period from the statement's first
// line's to now's (empty ones as 0); it returns the period too.
func (b *Budgets) perPeriod(st CustomerStatement, now time.Time) (spent, payments []console.Point, period time.Duration) {
	var lines []StatementLine
	for _, l := range st.Lines {
		if l.Kind == "spend" || l.Kind == "refund" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, nil, 0
	}
	first, last := st.Lines[0].At, lines[len(lines)-1].At
	if now.After(last) {
		last = now
	}
	period = bucketFor(first, last)
	start, end := first.Truncate(period), last.Truncate(period)
	i := 0
	for at := start; !at.After(end); at = at.Add(period) {
		sum, count := ledger.Amount{}, int64(0)
		for ; i < len(lines) && lines[i].At.Truncate(period).Equal(at); i++ {
			sum = sum.Add(b.spentBy(lines[i]))
			if lines[i].Kind == "spend" {
				count++
			}
		}
		spent = append(spent, console.Point{T: at, V: console.Amount(sum)})
		payments = append(payments, console.Point{T: at, V: console.Int(count)})
	}
	return spent, payments, period
}

func (n *Node) customerPage(ctx context.Context, q url.Values) (console.Page, error) {
	customer := q.Get("customer")
	b := n.Budgets
	if err := b.Ref(customer).Validate(); err != nil {
		return console.Page{}, fmt.Errorf("%w: customer %q: %v", ledger.ErrInvalidInput, customer, err)
	}
	st, err := b.Statement(ctx, customer, console.Rows)
	if err != nil {
		return console.Page{}, err
	}
	chart := st
	if st.Truncated {
		if chart, err = b.Statement(ctx, customer, chartLines); err != nil {
			return console.Page{}, err
		}
	}
	v := st.BudgetView
	p := console.Page{Title: "Customer " + customerName(customer), Note: "the customer's budget in the signer's ledger: grants in, each signed payment's spend out"}
	p.Figures = []console.Figure{
		{ID: "granted", Label: "granted (gwei)", Value: console.Amount(v.Granted)},
		{ID: "spent", Label: "spent (gwei)", Value: console.Amount(v.Spent)},
		{ID: "balance", Label: "balance (gwei)", Value: console.Amount(v.Balance)},
		{ID: "share", Label: "spent of granted", Value: share(v)},
		{ID: "alerts", Label: "alerts", Value: n.alertCell(v)},
	}
	balance := console.Series{Name: "balance", Kind: console.SeriesLine}
	for _, l := range chart.Lines {
		balance.Points = append(balance.Points, console.Point{T: l.At, V: console.Amount(l.Balance)})
	}
	balanceTitle := "Budget over time"
	if b.Unlimited {
		balanceTitle, balance.Name = "Usage tally over time", "spent"
	}
	spent, payments, period := b.perPeriod(chart, b.Ledger.Now())
	p.Charts = []console.Chart{
		{ID: "balance", Title: balanceTitle, Unit: "gwei", Note: "after each grant, spend and refund", Series: []console.Series{balance}, Empty: "no movement yet", Wide: true},
		{ID: "spend", Title: "Spend per period", Unit: "gwei", Note: "what the payments signed in each period cost" + refundNote(b.Unlimited) + periodNote(period),
			Series: []console.Series{{Name: "spent", Kind: console.SeriesBars, Points: spent}}, Empty: "nothing spent yet"},
		{ID: "usage", Title: "Usage per period", Unit: "payments", Note: "payments signed in each period" + periodNote(period),
			Series: []console.Series{{Name: "payments", Kind: console.SeriesBars, Points: payments}}, Empty: "no payment signed yet"},
	}
	t := console.Table{ID: "lines", Title: "Statement", Columns: []string{"at", "kind", "amount (gwei)", "balance after (gwei)", "ref"},
		Note: "oldest first; ref is a grant's key or a spend's usage event ID", Empty: "no movement yet"}
	if st.Truncated {
		t.Note = fmt.Sprintf("the last %d lines, oldest first; the figures above count them all", console.Rows)
	}
	for i, l := range st.Lines {
		kind := console.Text(l.Kind)
		if l.Kind == "grant" {
			kind.Class = "ok"
		}
		t.Rows = append(t.Rows, console.Row{Key: fmt.Sprint(i), Cells: []console.Cell{console.Time(l.At), kind,
			console.Amount(l.Amount), console.Amount(l.Balance), console.Mono(l.Ref)}})
	}
	p.Tables = []console.Table{t, n.alertsTable(customer)}
	return p, nil
}

func periodNote(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return " (" + d.String() + " each)"
}

func refundNote(unlimited bool) string {
	if unlimited {
		return ", less refunds"
	}
	return " (a refund goes back to the budget, as a grant does)"
}
