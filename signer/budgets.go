package signer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"byoc/ledger"
)

// BudgetName is the capability name of a customer's budget pool in the
// signer's ledger: pool (signer address, "budget", customer). UsageName
// names the pool that tallies what was signed for a customer when budgets
// are not enforced.
const (
	BudgetName = "budget"
	UsageName  = "usage"
)

// Usage event topics in the outbox.
const (
	TopicUsage  = "usage"
	TopicRefund = "usage.refund"
	TopicAlert  = "budget.alert"
)

// Budgets keeps customers' prepaid budgets in the signer's ledger, one pool
// per customer (the customer being the state's auth ID; "" is the budget of
// callers no one names). A grant is a ledger credit under the caller's
// idempotency key; a payment's spend a ledger charge that may not take the
// pool below zero, so concurrent payments — from one signer or several on
// one database — cannot overspend. Alerts fire once per crossing of each
// threshold (a share of what was granted, spent).
type Budgets struct {
	// Ledger holds the budgets; Owner is the pools' sender (the signer's
	// address).
	Ledger *ledger.Ledger
	Owner  string
	// Unlimited records spends without enforcing a budget: each is
	// credited to the customer's usage tally (pool "usage", whose balance
	// is what was spent) instead of charged to a budget.
	Unlimited bool
	// Events writes each spend's usage event to the ledger's outbox, in
	// the spend's transaction, for an EventSink to deliver.
	Events bool
	// Thresholds are the shares spent, in percent, that fire an alert
	// (e.g. 80, 100).
	Thresholds []int
	// Alert receives each crossing (after its spend is committed); nil:
	// none.
	Alert func(Alert)
	// AlertOutbox writes each crossing to the ledger's outbox (topic
	// TopicAlert) in the transaction of the spend that crossed it, for an
	// EventSink to deliver: an alert then exists exactly when its spend
	// does, and survives a kill.
	AlertOutbox bool
	// Notify, if set, is called after each spend or refund with an event
	// (to wake the EventSink).
	Notify func()
}

// Alert says a customer's spend crossed a threshold.
type Alert struct {
	// ID is unique per crossing: customer, threshold and the grant total
	// it was crossed against.
	ID        string        `json:"id"`
	Customer  string        `json:"customer"`
	Threshold int           `json:"threshold_percent"`
	Granted   ledger.Amount `json:"granted"`
	Spent     ledger.Amount `json:"spent"`
	Balance   ledger.Amount `json:"balance"`
}

// BudgetView is a customer's budget.
type BudgetView struct {
	Customer string        `json:"customer"`
	App      string        `json:"app,omitempty"` // an app's budget within the customer's
	Granted  ledger.Amount `json:"granted"`
	Spent    ledger.Amount `json:"spent"`
	Balance  ledger.Amount `json:"balance"`
}

// Ref is the ledger account of customer's budget (or usage tally).
func (b *Budgets) Ref(customer string) ledger.Ref {
	name := BudgetName
	if b.Unlimited {
		name = UsageName
	}
	return ledger.Ref{Kind: ledger.KindPool, Sender: b.Owner, Name: name, Customer: customer}
}

// AppBudgetPrefix starts the capability name of an app's budget within a
// customer's: pool (signer address, "budget:"+app, customer). It limits
// what the customer's payments for that app may spend; they are charged to
// both, in one transaction.
const AppBudgetPrefix = BudgetName + ":"

// AppRef is the ledger account of customer's budget for app.
func (b *Budgets) AppRef(customer, app string) ledger.Ref {
	return ledger.Ref{Kind: ledger.KindPool, Sender: b.Owner, Name: AppBudgetPrefix + app, Customer: customer}
}

// GrantApp adds amount to customer's budget for app, once per key: a
// limit on what the customer's payments for that app spend, on top of the
// customer's own budget (each such payment is charged to both). An app
// without one spends from the customer's budget alone.
func (b *Budgets) GrantApp(ctx context.Context, customer, app string, amount ledger.Amount, key string) (BudgetView, error) {
	if app == "" {
		return b.Grant(ctx, customer, amount, key)
	}
	if b.Unlimited {
		return BudgetView{}, fmt.Errorf("%w: budgets are not enforced (start the signer with --budgets)", ledger.ErrInvalidInput)
	}
	if key == "" {
		return BudgetView{}, fmt.Errorf("%w: a grant needs an idempotency key", ledger.ErrInvalidInput)
	}
	if amount.Sign() <= 0 {
		return BudgetView{}, fmt.Errorf("%w: a grant must be positive", ledger.ErrInvalidInput)
	}
	if _, err := b.Ledger.Credit(ctx, b.AppRef(customer, app), amount, "grant:"+key); err != nil {
		return BudgetView{}, err
	}
	return b.ReadApp(ctx, customer, app)
}

// ReadApp returns customer's budget for app (zero when none was granted).
func (b *Budgets) ReadApp(ctx context.Context, customer, app string) (BudgetView, error) {
	if app == "" {
		return b.Read(ctx, customer)
	}
	a, err := b.Ledger.Account(ctx, b.AppRef(customer, app))
	if errors.Is(err, ledger.ErrNotFound) {
		return BudgetView{Customer: customer, App: app}, nil
	}
	if err != nil {
		return BudgetView{}, err
	}
	v := view(a)
	v.App = app
	return v, nil
}

// Grant adds amount to customer's budget, once per key.
func (b *Budgets) Grant(ctx context.Context, customer string, amount ledger.Amount, key string) (BudgetView, error) {
	if b.Unlimited {
		return BudgetView{}, fmt.Errorf("%w: budgets are not enforced (start the signer with --budgets)", ledger.ErrInvalidInput)
	}
	if key == "" {
		return BudgetView{}, fmt.Errorf("%w: a grant needs an idempotency key", ledger.ErrInvalidInput)
	}
	if amount.Sign() <= 0 {
		return BudgetView{}, fmt.Errorf("%w: a grant must be positive", ledger.ErrInvalidInput)
	}
	if _, err := b.Ledger.Credit(ctx, b.Ref(customer), amount, "grant:"+key); err != nil {
		return BudgetView{}, err
	}
	return b.Read(ctx, customer)
}

// Read returns customer's budget; a customer never granted anything has
// a zero one.
func (b *Budgets) Read(ctx context.Context, customer string) (BudgetView, error) {
	a, err := b.Ledger.Account(ctx, b.Ref(customer))
	if errors.Is(err, ledger.ErrNotFound) {
		return BudgetView{Customer: customer}, nil
	}
	if err != nil {
		return BudgetView{}, err
	}
	return view(a), nil
}

func view(a ledger.Account) BudgetView {
	if a.Ref.Name == UsageName {
		return BudgetView{Customer: a.Ref.Customer, Spent: a.Balance}
	}
	return BudgetView{Customer: a.Ref.Customer, Granted: a.Credited, Spent: a.Charged, Balance: a.Balance}
}

// List returns every customer's budget, in the order they were first granted.
func (b *Budgets) List(ctx context.Context) ([]BudgetView, error) {
	out := []BudgetView{}
	var after int64
	for {
		as, err := b.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, Sender: b.Owner, AfterID: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if a.Ref.Name == b.Ref("").Name {
				out = append(out, view(a))
			}
			after = a.ID
		}
		if len(as) < 500 {
			return out, nil
		}
	}
}

// Spend charges a payment to its customer's budget: ErrOverBudget when the
// customer has none or too little left.
func (b *Budgets) Spend(ctx context.Context, s *Spend) error {
	ref := b.Ref(s.Customer)
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("%w: customer %q: %v", ErrOverBudget, s.Customer, err)
	}
	ev, err := b.event(TopicUsage, s, s.Event)
	if err != nil {
		return err
	}
	if ev != nil && b.Notify != nil {
		defer b.Notify()
	}
	if b.Unlimited {
		if ev != nil {
			_, err = b.Ledger.CreditWithEvent(ctx, ref, s.Amount, "spend:"+s.Key, *ev)
		} else {
			_, err = b.Ledger.Credit(ctx, ref, s.Amount, "spend:"+s.Key)
		}
		return err
	}
	var res ledger.ChargeResult
	outboxAlerts := b.AlertOutbox && len(b.Thresholds) > 0
	var also []ledger.Ref
	if s.App != "" {
		// The app's budget, if the customer has one for it, limits the
		// payment too: both are charged, or neither.
		appRef := b.AppRef(s.Customer, s.App)
		switch _, err := b.Ledger.Account(ctx, appRef); {
		case err == nil:
			also = []ledger.Ref{appRef}
		case !errors.Is(err, ledger.ErrNotFound):
			return err
		}
	}
	if len(also) > 0 {
		var more func(before, after ledger.Account) []ledger.OutboxEvent
		if outboxAlerts {
			more = func(before, after ledger.Account) []ledger.OutboxEvent {
				return b.alertEvents(s.Customer, before, after)
			}
		}
		res, err = b.Ledger.ChargeAlso(ctx, ref, also, s.Amount, ledger.Amount{}, "spend:"+s.Key, ev, more)
		s.appCharged = err == nil
	} else if outboxAlerts {
		res, err = b.Ledger.ChargeWithEvents(ctx, ref, s.Amount, ledger.Amount{}, "spend:"+s.Key, ev, func(before, after ledger.Account) []ledger.OutboxEvent {
			return b.alertEvents(s.Customer, before, after)
		})
	} else if ev != nil {
		res, err = b.Ledger.ChargeWithEvent(ctx, ref, s.Amount, ledger.Amount{}, "spend:"+s.Key, *ev)
	} else {
		res, err = b.Ledger.Charge(ctx, ref, s.Amount, ledger.Amount{}, "spend:"+s.Key)
	}
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("%w: customer %q has no budget", ErrOverBudget, s.Customer)
	case errors.Is(err, ledger.ErrInsufficientFunds) && len(also) > 0 && b.appShort(ctx, also[0], s.Amount):
		return fmt.Errorf("%w: customer %q's budget for app %q cannot cover %s wei", ErrOverBudget, s.Customer, s.App, s.Amount)
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return fmt.Errorf("%w: customer %q cannot cover %s wei", ErrOverBudget, s.Customer, s.Amount)
	case err != nil:
		return err
	}
	if res.Replayed {
		return nil // a retried call: charged once, alerted once
	}
	if outboxAlerts {
		if len(res.Events) > 0 && b.Notify != nil && ev == nil {
			defer b.Notify()
		}
		for _, e := range res.Events {
			var a Alert
			if json.Unmarshal(e.Body, &a) == nil && b.Alert != nil {
				b.Alert(a)
			}
		}
		return nil
	}
	if len(b.Thresholds) > 0 && b.Alert != nil && s.Amount.Sign() > 0 {
		b.alerts(ctx, s, res.Balance)
	}
	return nil
}

// alerts fires, from memory after the spend, the thresholds it crossed
// (without AlertOutbox: a crossing is then lost if the process dies
// before it is delivered).
func (b *Budgets) alerts(ctx context.Context, s *Spend, after ledger.Amount) {
	a, err := b.Ledger.Account(ctx, b.Ref(s.Customer))
	if err != nil || a.Credited.Sign() <= 0 {
		return
	}
	spentAfter := a.Credited.Sub(after)
	for _, al := range crossings(s.Customer, b.Thresholds, a.Credited, spentAfter.Sub(s.Amount), spentAfter, after) {
		b.Alert(al)
	}
}

// appShort reports whether an app's budget holds less than amount (which
// of the two budgets refused a payment, for the message).
func (b *Budgets) appShort(ctx context.Context, app ledger.Ref, amount ledger.Amount) bool {
	a, err := b.Ledger.Account(ctx, app)
	return err == nil && a.Balance.Cmp(amount) < 0
}

// alertEvents are the outbox events of the thresholds a charge crossed,
// from the budget before and after it: spent before below t % of the
// grants, spent after at or above. The event's key is unique per crossing
// (customer, threshold, grants), as the alert's ID.
func (b *Budgets) alertEvents(customer string, before, after ledger.Account) []ledger.OutboxEvent {
	if after.Credited.Sign() <= 0 {
		return nil
	}
	var out []ledger.OutboxEvent
	for _, a := range crossings(customer, b.Thresholds, after.Credited, before.Credited.Sub(before.Balance), after.Credited.Sub(after.Balance), after.Balance) {
		body, err := json.Marshal(a)
		if err != nil {
			continue
		}
		h := sha256.Sum256([]byte(a.ID))
		out = append(out, ledger.OutboxEvent{Key: "alert-" + hex.EncodeToString(h[:15]), Topic: TopicAlert, Subject: customer, Body: body})
	}
	return out
}

// crossings are the thresholds (percent of granted) that spent crossed
// going from spentBefore to spentAfter.
func crossings(customer string, thresholds []int, granted, spentBefore, spentAfter, balance ledger.Amount) []Alert {
	var out []Alert
	for _, t := range slices.Sorted(slices.Values(thresholds)) {
		line := new(big.Int).Mul(granted.Big(), big.NewInt(int64(t)))
		if new(big.Int).Mul(spentBefore.Big(), big.NewInt(100)).Cmp(line) < 0 &&
			new(big.Int).Mul(spentAfter.Big(), big.NewInt(100)).Cmp(line) >= 0 {
			out = append(out, Alert{
				ID:       fmt.Sprintf("%s:%d:%s", customer, t, granted),
				Customer: customer, Threshold: t, Granted: granted, Spent: spentAfter, Balance: balance,
			})
		}
	}
	return out
}

// Refund returns a spend whose payment was not signed, with an event that
// cancels its usage event (refund_of names it): credited back to the
// budget, or charged back from the usage tally.
func (b *Budgets) Refund(ctx context.Context, s *Spend) error {
	ev, err := b.event(TopicRefund, s, map[string]string{"refund_of": s.Key, "auth_id": s.Customer, "spent": "-" + s.Amount.String()})
	if err != nil {
		return err
	}
	if ev != nil && b.Notify != nil {
		defer b.Notify()
	}
	ref, key := b.Ref(s.Customer), "refund:"+s.Key
	switch {
	case b.Unlimited && ev != nil:
		_, err = b.Ledger.ChargeWithEvent(ctx, ref, s.Amount, ledger.Amount{}, key, *ev)
	case b.Unlimited:
		_, err = b.Ledger.Charge(ctx, ref, s.Amount, ledger.Amount{}, key)
	case ev != nil:
		_, err = b.Ledger.CreditWithEvent(ctx, ref, s.Amount, key, *ev)
	default:
		_, err = b.Ledger.Credit(ctx, ref, s.Amount, key)
	}
	if err == nil && s.appCharged {
		// The app's budget was charged with it: credited back too (its own
		// key, so a retried refund credits it once).
		_, err = b.Ledger.Credit(ctx, b.AppRef(s.Customer, s.App), s.Amount, key+"|app")
	}
	return err
}

// event is the outbox event of a spend or refund; nil without Events.
func (b *Budgets) event(topic string, s *Spend, data any) (*ledger.OutboxEvent, error) {
	if !b.Events {
		return nil, nil
	}
	body, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	key := s.Key
	if topic == TopicRefund {
		key = "refund-" + s.Key
	}
	return &ledger.OutboxEvent{Key: key, Topic: topic, Subject: s.Customer, Body: body}, nil
}
