package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// OutboxEvent is a message written in the same transaction as the money
// move it reports, so that it exists exactly when the move does, and
// delivered afterwards, at least once, by whoever reads PendingOutbox (a
// signer's usage events). Key is unique: a receiver de-duplicates by it.
type OutboxEvent struct {
	ID          int64     `json:"id"`
	Key         string    `json:"key"`
	Topic       string    `json:"topic"`
	Subject     string    `json:"subject"`
	At          time.Time `json:"at"`
	Body        []byte    `json:"body"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
}

func (e *OutboxEvent) check() error {
	if e == nil {
		return nil
	}
	if err := checkKey(e.Key); err != nil || e.Key == "" {
		return fmt.Errorf("%w: outbox event key %q", ErrInvalidInput, e.Key)
	}
	if err := checkName("outbox topic", e.Topic, true); err != nil {
		return err
	}
	return checkName("outbox subject", e.Subject, false)
}

// ChargeWithEvent is Charge that also writes ev to the outbox in the same
// transaction; a charge replayed under its key writes nothing again. ev's
// At is set to the ledger's time.
func (l *Ledger) ChargeWithEvent(ctx context.Context, from Ref, amount, grace Amount, key string, ev OutboxEvent) (ChargeResult, error) {
	if err := firstErr(from.Validate(), checkAmount("charge", amount), checkAmount("grace", grace), checkKey(key), ev.check()); err != nil {
		return ChargeResult{}, err
	}
	return run[ChargeResult](ctx, l, &chargeOp{ref: from, amount: amount, grace: grace, k: key, event: &ev})
}

// ChargeWithEvents is ChargeWithEvent (ev may be nil) that also writes the
// events more returns, decided in the charge's transaction from the
// account as it was before the charge and as it is after it (a budget's
// threshold alerts: whether this charge crossed one depends on what was
// charged before it, which only the transaction knows). more must be a
// pure function of its arguments: it may run more than once. A replayed
// charge calls it not and writes nothing; the result's Events are what was
// written.
func (l *Ledger) ChargeWithEvents(ctx context.Context, from Ref, amount, grace Amount, key string, ev *OutboxEvent, more func(before, after Account) []OutboxEvent) (ChargeResult, error) {
	if err := firstErr(from.Validate(), checkAmount("charge", amount), checkAmount("grace", grace), checkKey(key), ev.check()); err != nil {
		return ChargeResult{}, err
	}
	return run[ChargeResult](ctx, l, &chargeOp{ref: from, amount: amount, grace: grace, k: key, event: ev, more: more})
}

// ChargeAlso is ChargeWithEvents that also charges amount to each of also
// in the same transaction (e.g. a customer's budget and its app's budget):
// all or none, and none of also may go below zero (ErrInsufficientFunds,
// ErrNotFound when one does not exist). Replayed under key, nothing is
// charged again.
func (l *Ledger) ChargeAlso(ctx context.Context, from Ref, also []Ref, amount, grace Amount, key string, ev *OutboxEvent, more func(before, after Account) []OutboxEvent) (ChargeResult, error) {
	errs := []error{from.Validate(), checkAmount("charge", amount), checkAmount("grace", grace), checkKey(key), ev.check()}
	for _, r := range also {
		errs = append(errs, r.Validate())
		if r == from {
			errs = append(errs, fmt.Errorf("%w: %s charged twice", ErrInvalidInput, r))
		}
	}
	if err := firstErr(errs...); err != nil {
		return ChargeResult{}, err
	}
	return run[ChargeResult](ctx, l, &chargeOp{ref: from, amount: amount, grace: grace, k: key, event: ev, more: more, also: also})
}

// CreditWithEvent is Credit that also writes ev to the outbox in the same
// transaction.
func (l *Ledger) CreditWithEvent(ctx context.Context, to Ref, amount Amount, key string, ev OutboxEvent) (CreditResult, error) {
	if err := firstErr(to.Validate(), checkAmount("credit", amount), checkKey(key), ev.check()); err != nil {
		return CreditResult{}, err
	}
	return run[CreditResult](ctx, l, &creditOp{ref: to, amount: amount, k: key, event: &ev})
}

// PendingOutbox returns undelivered outbox events with an ID above after,
// of topics (all when none), oldest first, at most limit (0: 100).
func (l *Ledger) PendingOutbox(ctx context.Context, after int64, limit int, topics ...string) ([]OutboxEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []OutboxEvent
	err := l.store.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.PendingOutbox(ctx, after, limit, topics...)
		return err
	})
	return out, err
}

// MarkDelivered records that the outbox events with these IDs were
// delivered, at the ledger's time.
func (l *Ledger) MarkDelivered(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	at := l.clock.Now()
	return l.store.Update(ctx, func(tx Tx) error { return tx.MarkDelivered(ctx, ids, at) })
}

// OutboxPruner is a store that can delete delivered outbox events.
type OutboxPruner interface {
	// PruneOutbox deletes the outbox events delivered before the given
	// time, except the newest event (whose ID the next one's follows);
	// undelivered events are never deleted. It returns how many went.
	PruneOutbox(ctx context.Context, deliveredBefore time.Time) (int64, error)
}

// PruneOutbox deletes the outbox events delivered longer than retention
// ago (by the ledger's clock); undelivered events stay whatever their age.
// A pruned event's spend stays in the ledger, and its idempotency key with
// it, so a retried spend is still replayed, not written again.
func (l *Ledger) PruneOutbox(ctx context.Context, retention time.Duration) (int64, error) {
	if retention < 0 {
		return 0, fmt.Errorf("%w: a negative outbox retention", ErrInvalidInput)
	}
	p, ok := l.store.(OutboxPruner)
	if !ok {
		return 0, fmt.Errorf("%w: this store does not prune its outbox", errors.ErrUnsupported)
	}
	return p.PruneOutbox(ctx, l.clock.Now().Add(-retention))
}
