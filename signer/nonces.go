package signer

import (
	"context"
	"fmt"
	"math"

	"byoc/ledger"
)

// NonceName is the capability name of a ticket session's nonce counter in
// the ledger: pool (signer address, "nonces", recipientRandHash).
const NonceName = "nonces"

// Nonces reserves ticket nonces, so that signers sharing one key never sign
// the same nonce of a session twice.
type Nonces interface {
	// Reserve returns the first of n consecutive nonces of session, all
	// above floor, that no other Reserve call returns — except one with the
	// same key, which returns the same nonces (a retried call).
	Reserve(ctx context.Context, session string, floor uint32, n int, key string) (uint32, error)
}

// LedgerNonces keeps each session's last reserved nonce in a ledger
// account of its own, so replicas sharing a PostgreSQL ledger share it. A
// reservation is one credit of n to the counter: the ledger serialises
// them, and the counter after the credit ends the caller's range, which no
// other credit can return. (The counter's unit is nonces, not wei; it is
// never charged.) A floor above the counter — a state from elsewhere — is
// met by reserving the gap too.
type LedgerNonces struct {
	Ledger *ledger.Ledger
	Owner  string
}

func (ln *LedgerNonces) ref(session string) ledger.Ref {
	return ledger.Ref{Kind: ledger.KindPool, Sender: ln.Owner, Name: NonceName, Customer: session}
}

// Reserve reserves n nonces above floor. The credits' idempotency keys
// derive from key, so a retry with the same key gets the same range.
func (ln *LedgerNonces) Reserve(ctx context.Context, session string, floor uint32, n int, key string) (uint32, error) {
	if n <= 0 {
		return 0, fmt.Errorf("signer: reserving %d nonces", n)
	}
	ref := ln.ref(session)
	want := int64(n)
	for try := range 3 {
		r, err := ln.Ledger.Credit(ctx, ref, ledger.Wei(want), fmt.Sprintf("nonces:%s:%d", key, try))
		if err != nil {
			return 0, err
		}
		last, ok := r.Balance.Int64()
		if !ok || last > math.MaxUint32 {
			return 0, fmt.Errorf("signer: session %s is out of nonces", session)
		}
		first := last - int64(n) + 1
		if first > int64(floor) {
			return uint32(first), nil
		}
		if r.Replayed && try == 0 {
			// The same key once reserved nonces above its floor, so a
			// different floor now means it names another call: refuse
			// rather than hand out nonces its replayed spend did not pay.
			return 0, fmt.Errorf("signer: nonce reservation %s replayed below floor %d", key, floor)
		}
		// Our range is below the floor: take the gap and n more.
		want = int64(floor) - first + 1 + int64(n)
	}
	return 0, fmt.Errorf("signer: could not reserve nonces above %d in session %s", floor, session)
}
