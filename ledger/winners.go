package ledger

import (
	"context"
	"errors"
	"fmt"
)

// ErrWinnerState is returned by UpdateWinner when the winning ticket is not
// in the state the caller read: someone else (an operator's command, another
// redeemer) moved it meanwhile.
var ErrWinnerState = errors.New("ledger: winning ticket is not in the expected state")

// WinnerUpdate is a change to a queued winning ticket's redemption. The
// redeemer decides it; the ledger only stores it, atomically and only from
// the state the redeemer read.
type WinnerUpdate struct {
	State     string  // the new state (the same to only note an error)
	TxHash    string  // with TxNonce and TxRaw: the transaction signed for it
	TxNonce   int64   // -1 clears
	TxRaw     []byte  //
	Payout    *Amount // what the redemption paid (redeemed only)
	LastError string  // why it waits, or why it died; "" clears
	Attempt   bool    // counts one more transaction sent
	KeepTx    bool    // leaves TxHash, TxNonce and TxRaw as they are
}

// UpdateWinner changes winning ticket key from state from, or fails with
// ErrWinnerState when it is not in that state (ErrNotFound when there is no
// such ticket).
func (l *Ledger) UpdateWinner(ctx context.Context, key, from string, u WinnerUpdate) error {
	switch u.State {
	case WinnerQueued, WinnerSubmitted, WinnerRedeemed, WinnerDead:
	default:
		return fmt.Errorf("%w: winner state %q", ErrInvalidInput, u.State)
	}
	if u.Payout != nil && (u.Payout.Sign() < 0 || u.Payout.outOfRange()) {
		return fmt.Errorf("%w: payout %s", ErrInvalidInput, u.Payout)
	}
	now := l.clock.Now().UTC()
	return l.store.Update(ctx, func(tx Tx) error {
		w, err := tx.Winner(ctx, key)
		if err != nil {
			return err
		}
		if w == nil {
			return fmt.Errorf("%w: winning ticket %s", ErrNotFound, key)
		}
		if w.State != from {
			return fmt.Errorf("%w: %s is %s, not %s", ErrWinnerState, key, w.State, from)
		}
		ok, err := tx.UpdateWinner(ctx, key, from, u, now)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s changed meanwhile", ErrConflict, key)
		}
		return nil
	})
}

// Winner returns one winning ticket, or ErrNotFound.
func (l *Ledger) Winner(ctx context.Context, key string) (Winner, error) {
	var out *Winner
	err := l.store.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.Winner(ctx, key)
		return err
	})
	if err != nil {
		return Winner{}, err
	}
	if out == nil {
		return Winner{}, fmt.Errorf("%w: winning ticket %s", ErrNotFound, key)
	}
	return *out, nil
}
