package signer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
)

// everyStore runs fn on every store (ledgertest.Stores: plain SQLite, the
// journal store a signer runs on by default, and PostgreSQL, skipped,
// saying so, without BYOC_POSTGRES_DSN); the ledger's invariants are
// verified after each.
func everyStore(t *testing.T, fn func(t *testing.T, env *ledgertest.Env)) {
	for _, st := range ledgertest.Stores {
		t.Run(st.Name, func(t *testing.T) { fn(t, ledgertest.NewEnv(t, st.Factory)) })
	}
}

// budgetSigner is a test signer charging budgets in env's ledger.
func budgetSigner(t *testing.T, rc *recorded, env *ledgertest.Env, alert func(Alert)) (*Signer, *Budgets) {
	b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex(), Thresholds: []int{80, 100}, Alert: alert}
	s, _ := newTestSigner(t, rc, func(c *Config) { c.Budget = b })
	return s, b
}

// costOf is what n tickets of the recorded params cost a budget.
func costOf(t *testing.T, n int64) ledger.Amount {
	c := ledger.CreditFor(evOf(t))
	return ledger.AmountFromBig(c.Big().Mul(c.Big(), ledger.Wei(n).Big()))
}

// TestBudgetRefusesBeforeSigning: a customer without a budget, or with too
// little, gets 483 insufficient_balance and no nonce is spent; after a
// grant the payment goes through, starting at nonce 1, and the budget is
// charged what the tickets are worth.
func TestBudgetRefusesBeforeSigning(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		s, b := budgetSigner(t, rc, env, nil)
		h := s.Handler()
		req := rc.request(nil, "m", 27648000, "") // 3 tickets
		code, body, _ := post(t, h, "/generate-live-payment", req, HeaderAuthID, "alice")
		if code != 483 || !strings.Contains(body, `"code":"insufficient_balance"`) || !strings.Contains(body, `has no budget`) {
			t.Fatalf("no budget: %d %s", code, body)
		}
		if _, err := b.Grant(env.Ctx, "alice", costOf(t, 2), "g1"); err != nil {
			t.Fatal(err)
		}
		code, body, _ = post(t, h, "/generate-live-payment", req, HeaderAuthID, "alice")
		if code != 483 || !strings.Contains(body, "cannot cover") {
			t.Fatalf("too little: %d %s", code, body)
		}
		// A grant replayed under its key adds nothing; a new key tops up.
		for range 2 {
			if _, err := b.Grant(env.Ctx, "alice", costOf(t, 1), "g2"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Grant(env.Ctx, "alice", costOf(t, 2), "g2"); err == nil {
			t.Error("a key reused for another amount was accepted")
		}
		code, body, _ = post(t, h, "/generate-live-payment", req, HeaderAuthID, "alice")
		r := decodeOK(t, code, body)
		if got := nonces(t, r.Payment); len(got) != 3 || got[0] != 1 {
			t.Errorf("nonces %v: a refusal spent some", got)
		}
		v, err := b.Read(env.Ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if v.Granted.Cmp(costOf(t, 3)) != 0 || v.Spent.Cmp(costOf(t, 3)) != 0 || !v.Balance.IsZero() {
			t.Errorf("budget %+v, want granted = spent = %s", v, costOf(t, 3))
		}
		// Bob's budget is his own.
		code, _, _ = post(t, h, "/generate-live-payment", req, HeaderAuthID, "bob")
		if code != 483 {
			t.Errorf("bob without a budget: %d", code)
		}
	})
}

// TestBudgetConcurrent: many goroutines paying from one budget that covers
// exactly k payments: k succeed, the rest get 483, the budget ends at zero
// and never below.
func TestBudgetConcurrent(t *testing.T) {
	rc := loadRecorded(t)
	// Alerts from memory after the spend, and from the outbox, decided in
	// the spend's transaction.
	for _, outbox := range []bool{false, true} {
		t.Run(fmt.Sprintf("outbox=%v", outbox), func(t *testing.T) {
			everyStore(t, func(t *testing.T, env *ledgertest.Env) {
				var mu sync.Mutex
				var alerts []Alert
				s, b := budgetSigner(t, rc, env, func(a Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() })
				b.AlertOutbox = outbox
				h := s.Handler()
				const k, workers, each = 10, 16, 3
				if _, err := b.Grant(env.Ctx, "carol", costOf(t, 3*k), "g"); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				codes := make(chan int, workers*each)
				seen := make(chan []uint32, workers*each)
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range each {
							req := rc.request(nil, fmt.Sprintf("m%d", w), 27648000, "")
							code, body, _ := post(t, h, "/generate-live-payment", req, HeaderAuthID, "carol")
							codes <- code
							if code == 200 {
								var r RemotePaymentResponse
								json.Unmarshal([]byte(body), &r)
								seen <- nonces(t, r.Payment)
							}
						}
					}()
				}
				wg.Wait()
				close(codes)
				close(seen)
				ok, refused := 0, 0
				for c := range codes {
					switch c {
					case 200:
						ok++
					case 483:
						refused++
					default:
						t.Errorf("status %d", c)
					}
				}
				if ok != k || refused != workers*each-k {
					t.Errorf("%d paid, %d refused; want %d and %d", ok, refused, k, workers*each-k)
				}
				used := map[uint32]bool{}
				for ns := range seen {
					for _, n := range ns {
						if used[n] {
							t.Errorf("nonce %d signed twice", n)
						}
						used[n] = true
					}
				}
				if len(used) != 3*k {
					t.Errorf("%d nonces signed, want %d", len(used), 3*k)
				}
				v, _ := b.Read(env.Ctx, "carol")
				if !v.Balance.IsZero() || v.Spent.Cmp(costOf(t, 3*k)) != 0 {
					t.Errorf("budget %+v", v)
				}
				mu.Lock()
				defer mu.Unlock()
				slices.SortFunc(alerts, func(a, b Alert) int { return a.Threshold - b.Threshold }) // concurrent: any order
				if len(alerts) != 2 || alerts[0].Threshold != 80 || alerts[1].Threshold != 100 {
					t.Errorf("alerts %+v, want one at 80 %% and one at 100 %%", alerts)
				}
			})
		})
	}
}

// TestBudgetAlertsOncePerCrossing: an alert fires when a threshold is
// crossed, not again while spending stays above it, and again after a
// top-up brings the share spent back below it and it is crossed anew.
func TestBudgetAlertsOncePerCrossing(t *testing.T) {
	rc := loadRecorded(t)
	// Alerts from memory after the spend, and from the outbox, decided in
	// the spend's transaction.
	for _, outbox := range []bool{false, true} {
		t.Run(fmt.Sprintf("outbox=%v", outbox), func(t *testing.T) {
			everyStore(t, func(t *testing.T, env *ledgertest.Env) {
				var alerts []Alert
				s, b := budgetSigner(t, rc, env, func(a Alert) { alerts = append(alerts, a) })
				b.AlertOutbox = outbox
				h := s.Handler()
				pay := func() int {
					code, _, _ := post(t, h, "/generate-live-payment", rc.request(nil, "m", 1, ""), HeaderAuthID, "dave") // 1 ticket
					return code
				}
				b.Grant(env.Ctx, "dave", costOf(t, 10), "g1")
				for i := range 7 {
					if c := pay(); c != 200 {
						t.Fatalf("payment %d: %d", i, c)
					}
				}
				if len(alerts) != 0 {
					t.Fatalf("alerts at 70 %%: %+v", alerts)
				}
				pay() // 80 %
				pay() // 90 %
				if len(alerts) != 1 || alerts[0].Threshold != 80 || alerts[0].Customer != "dave" {
					t.Fatalf("alerts %+v", alerts)
				}
				pay() // 100 %
				if pay() != 483 {
					t.Error("paid past the budget")
				}
				if len(alerts) != 2 || alerts[1].Threshold != 100 {
					t.Fatalf("alerts %+v", alerts)
				}
				b.Grant(env.Ctx, "dave", costOf(t, 10), "g2") // 10 of 20 spent: 50 %
				for range 6 {
					pay()
				}
				if len(alerts) != 3 || alerts[2].Threshold != 80 || alerts[2].ID == alerts[0].ID {
					t.Fatalf("after the top-up: %+v", alerts)
				}
			})
		})
	}
}

// TestBudgetAdmin: the admin API grants (idempotently), reads and lists.
func TestBudgetAdmin(t *testing.T) {
	rc := loadRecorded(t)
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	_, b := budgetSigner(t, rc, env, nil)
	mux := http.NewServeMux()
	BudgetRoutes(mux, b)
	do := func(method, path, body string) (int, string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
	for range 2 {
		if c, body := do("POST", "/admin/budget/grant", `{"customer":"erin","amount":"1000","key":"k1"}`); c != 200 ||
			body != `{"customer":"erin","granted":"1000","spent":"0","balance":"1000"}`+"\n" {
			t.Errorf("grant: %d %s", c, body)
		}
	}
	for _, bad := range []string{`{"customer":"erin","amount":"1000"}`, `{"customer":"erin","amount":"-1","key":"k"}`,
		`{"customer":"erin","amount":"x","key":"k"}`, `{`, `{"customer":"a\u0001","amount":"1","key":"k"}`} {
		if c, body := do("POST", "/admin/budget/grant", bad); c != 400 {
			t.Errorf("%s: %d %s", bad, c, body)
		}
	}
	if c, body := do("POST", "/admin/budget/grant", `{"customer":"erin","amount":"5","key":"k1"}`); c != 409 {
		t.Errorf("key reused: %d %s", c, body)
	}
	if c, body := do("GET", "/admin/budget?customer=nobody", ""); c != 200 || !strings.Contains(body, `"granted":"0"`) {
		t.Errorf("unknown customer: %d %s", c, body)
	}
	do("POST", "/admin/budget/grant", `{"customer":"","amount":"7","key":"anon"}`)
	if c, body := do("GET", "/admin/budgets", ""); c != 200 ||
		body != `[{"customer":"erin","granted":"1000","spent":"0","balance":"1000"},{"customer":"","granted":"7","spent":"0","balance":"7"}]`+"\n" {
		t.Errorf("list: %d %s", c, body)
	}
}

// TestAppBudgets: a customer's budget for an app limits the customer's
// payments for that app — each is charged to both budgets in one
// transaction, and refused (483, nothing charged) when either cannot pay
// — while apps without one spend from the customer's budget alone.
func TestAppBudgets(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		s, b := budgetSigner(t, rc, env, nil)
		h := s.Handler()
		pay := func(app string) (int, string) {
			var m map[string]any
			json.Unmarshal([]byte(rc.request(nil, "m", 1, "")), &m) // 1 ticket
			m["app"] = app
			body, _ := json.Marshal(m)
			code, out, _ := post(t, h, "/generate-live-payment", string(body), HeaderAuthID, "ida")
			return code, out
		}
		if _, err := b.Grant(env.Ctx, "ida", costOf(t, 10), "g"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.GrantApp(env.Ctx, "ida", "x", costOf(t, 3), "gx"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if code, out := pay("x"); code != 200 {
				t.Fatalf("payment %d for app x: %d %s", i, code, out)
			}
		}
		if code, out := pay("x"); code != 483 || !strings.Contains(out, `budget for app \"x\"`) {
			t.Errorf("app x past its budget: %d %s", code, out)
		}
		for _, app := range []string{"y", "y", ""} {
			if code, out := pay(app); code != 200 {
				t.Errorf("app %q without a budget of its own: %d %s", app, code, out)
			}
		}
		v, err := b.Read(env.Ctx, "ida")
		if err != nil || v.Spent.Cmp(costOf(t, 6)) != 0 {
			t.Errorf("ida spent %s (%v), want %s", v.Spent, err, costOf(t, 6))
		}
		x, err := b.ReadApp(env.Ctx, "ida", "x")
		if err != nil || x.Spent.Cmp(costOf(t, 3)) != 0 || !x.Balance.IsZero() || x.App != "x" {
			t.Errorf("ida's budget for x: %+v (%v)", x, err)
		}
		// The app's budget topped up: the customer's own then limits it.
		if _, err := b.GrantApp(env.Ctx, "ida", "x", costOf(t, 100), "gx2"); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if code, out := pay("x"); code != 200 {
				t.Fatalf("app x after its top-up: %d %s", code, out)
			}
		}
		if code, out := pay("x"); code != 483 || !strings.Contains(out, "cannot cover") || strings.Contains(out, "for app") {
			t.Errorf("ida's own budget spent: %d %s", code, out)
		}
		if x, _ := b.ReadApp(env.Ctx, "ida", "x"); x.Spent.Cmp(costOf(t, 7)) != 0 {
			t.Errorf("ida's budget for x spent %s, want %s", x.Spent, costOf(t, 7))
		}
		// App budgets are not customers' budgets in the list.
		if l, _ := b.List(env.Ctx); len(l) != 1 || l[0].Customer != "ida" {
			t.Errorf("list: %+v", l)
		}
		// A spend refunded (its tickets failed to sign) is credited back to
		// both budgets, once however often the refund is retried.
		b.Grant(env.Ctx, "jo", costOf(t, 5), "gj")
		b.GrantApp(env.Ctx, "jo", "x", costOf(t, 2), "gjx")
		sp := &Spend{Customer: "jo", App: "x", Amount: costOf(t, 1), Key: "r1", Event: UsageEvent{ID: "r1"}}
		if err := b.Spend(env.Ctx, sp); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := b.Refund(env.Ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		jo, _ := b.Read(env.Ctx, "jo")
		jx, _ := b.ReadApp(env.Ctx, "jo", "x")
		if jo.Balance.Cmp(costOf(t, 5)) != 0 || jx.Balance.Cmp(costOf(t, 2)) != 0 {
			t.Errorf("after the refund: jo holds %s, jo's budget for x %s; want %s and %s", jo.Balance, jx.Balance, costOf(t, 5), costOf(t, 2))
		}
	})
}
