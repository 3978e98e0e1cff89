package signer

import (
	"slices"
	"testing"
	"time"

	"byoc/internal/console"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
)

// The console's series of a customer are built from the statement and
// agree with the budget's figures: what was spent in all after each line
// ending at the budget's spent (a refund is credited back to the budget,
// as a grant is), what was spent and how many payments were signed per
// period, from the first line to now, adding up to it; the thresholds
// crossed are those the alerts fired for.
func TestConsoleSeries(t *testing.T) {
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		var fired []int
		b := &Budgets{Ledger: env.Ledger, Owner: "0x00000000000000000000000000000000000000aa", Thresholds: []int{100, 50},
			Alert: func(a Alert) { fired = append(fired, a.Threshold) }}
		t0 := env.Clock.Now()
		if _, err := b.Grant(env.Ctx, "alice", ledger.Wei(100), "g1"); err != nil {
			t.Fatal(err)
		}
		step := func(d time.Duration, kind string, wei int64, key string) {
			t.Helper()
			env.Clock.Advance(d)
			s := &Spend{Customer: "alice", Amount: ledger.Wei(wei), Key: key}
			var err error
			if kind == "refund" {
				err = b.Refund(env.Ctx, s)
			} else {
				err = b.Spend(env.Ctx, s)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		step(10*time.Second, "spend", 30, "s1")
		step(20*time.Second, "spend", 30, "s2") // 60 %: past 50
		step(5*time.Second, "refund", 30, "s2")
		step(35*time.Second, "spend", 50, "s3") // 110 of 130
		st, err := b.Statement(env.Ctx, "alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		wei := func(ps []console.Point) []string {
			var out []string
			for _, p := range ps {
				out = append(out, p.V.Wei)
			}
			return out
		}
		if got, want := wei(b.cumulativeSpent(st)), []string{"0", "30", "60", "60", "110"}; !slices.Equal(got, want) || want[4] != st.Spent.String() {
			t.Errorf("spent in all after each line: %v, want %v", got, want)
		}
		// The last 2 lines: the total before them is what was spent then.
		last2, err := b.Statement(env.Ctx, "alice", 2)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := wei(b.cumulativeSpent(last2)), []string{"60", "110"}; !last2.Truncated || !slices.Equal(got, want) {
			t.Errorf("from a truncated statement (%v): %v, want %v", last2.Truncated, got, want)
		}
		// 90 s from the grant to now: 5 s periods, the shortest of which
		// there are fewer than 30 (19, both ends counted).
		env.Clock.Advance(20 * time.Second)
		spent, payments, period := b.perPeriod(st, env.Clock.Now())
		if period != 5*time.Second || len(spent) != 19 || len(payments) != 19 {
			t.Fatalf("periods: %v × %d (%d), want 5s × 19", period, len(spent), len(payments))
		}
		if !spent[0].T.Equal(t0.Truncate(period)) {
			t.Errorf("the first period starts at %v, want the grant's %v", spent[0].T, t0.Truncate(period))
		}
		sum, count := ledger.Amount{}, 0
		for i := range spent {
			a, err := ledger.ParseAmount(spent[i].V.Wei)
			if err != nil {
				t.Fatal(err)
			}
			sum = sum.Add(a)
			if payments[i].V.Text != "0" {
				count++
			}
		}
		if sum.Cmp(st.Spent) != 0 || count != 3 {
			t.Errorf("per period: %s spent in %d periods with payments; the statement says %s spent in 3 payments", sum, count, st.Spent)
		}
		if got := b.Crossed(st.BudgetView); !slices.Equal(got, []int{50}) || len(fired) == 0 || slices.ContainsFunc(fired, func(x int) bool { return x != 50 }) {
			t.Errorf("crossed %v, fired %v; want 50 each", got, fired)
		}
		if got := bucketFor(t0, t0.Add(30*24*time.Hour)); got != 7*24*time.Hour {
			t.Errorf("a month: %v periods", got)
		}
	})
}

// Without budgets, a customer's usage tally is what was spent: a refund
// takes its spend back, and the series end at the tally.
func TestConsoleSeriesUsageTally(t *testing.T) {
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		b := &Budgets{Ledger: env.Ledger, Owner: "0x00000000000000000000000000000000000000aa", Unlimited: true}
		for _, s := range []struct {
			refund bool
			wei    int64
			key    string
		}{{false, 30, "s1"}, {false, 20, "s2"}, {true, 20, "s2"}} {
			env.Clock.Advance(time.Second)
			sp := &Spend{Customer: "bob", Amount: ledger.Wei(s.wei), Key: s.key}
			var err error
			if s.refund {
				err = b.Refund(env.Ctx, sp)
			} else {
				err = b.Spend(env.Ctx, sp)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		st, err := b.Statement(env.Ctx, "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range b.cumulativeSpent(st) {
			got = append(got, p.V.Wei)
		}
		if want := []string{"30", "50", "30"}; !slices.Equal(got, want) || st.Spent.String() != "30" {
			t.Errorf("usage tally after each line: %v (spent %s), want %v", got, st.Spent, want)
		}
		spent, payments, _ := b.perPeriod(st, env.Clock.Now())
		sum, n := ledger.Amount{}, 0
		for i := range spent {
			a, _ := ledger.ParseAmount(spent[i].V.Wei)
			sum = sum.Add(a)
			if payments[i].V.Text == "1" {
				n++
			}
		}
		if sum.Cmp(st.Spent) != 0 || n != 2 {
			t.Errorf("per period: %s in %d payments, want 30 in 2", sum, n)
		}
	})
}
