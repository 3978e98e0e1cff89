// Package pmledger receives Livepeer PM payments into the ledger. pm checks
// what can be checked without state (signatures, params, price, wins); the
// ledger then records, in one transaction, the nonces the payment uses, one
// credit per ticket keyed by its hash, and the winning tickets. A replayed
// ticket is refused by its nonce — also after a restart, because the nonces
// are in the ledger's store — and could not be credited twice anyway,
// because its hash is taken.
package pmledger

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"

	"byoc/ledger"
	"byoc/pm"
	"byoc/wire"

	"github.com/ethereum/go-ethereum/common"
)

// KeyPrefix starts the idempotency key of a ticket's credit: "pm:" + the
// ticket hash in hex.
const KeyPrefix = "pm:"

// TicketKey is the ledger idempotency key of a ticket.
func TicketKey(h common.Hash) string { return KeyPrefix + h.Hex() }

// Receiver credits PM payments to ledger accounts.
type Receiver struct {
	Recipient *pm.Recipient
	Ledger    *ledger.Ledger
	// MaxNonces is the per-session nonce cap (0: pm.DefaultMaxNoncesPerSession).
	MaxNonces int
}

// Receipt is the outcome of a received payment.
type Receipt struct {
	// Validation has one result per ticket (errors, credit, wins).
	Validation *pm.Validation
	// Ledger is what the ledger recorded.
	Ledger ledger.PaymentResult
}

// Err is the error to report to the payer, as go-livepeer reports it: the
// last ticket error, nil when every ticket was good. Valid tickets before
// the first bad one are credited even when Err is not nil.
func (r Receipt) Err() error {
	if r.Validation == nil {
		return nil
	}
	return r.Validation.Err()
}

// Receive validates p against our quote and records it to the account to.
// A fatal payment error (wrong recipient, tampered params, price below the
// quote, malformed values) is returned as *pm.FatalError and records
// nothing; so does a ledger error (e.g. the job is closed). A payment
// without tickets records nothing and returns a zero Receipt.
func (r *Receiver) Receive(ctx context.Context, p *wire.Payment, quote *big.Rat, to ledger.Ref) (Receipt, error) {
	v, req, err := r.Prepare(ctx, p, quote, to)
	if err != nil || req == nil {
		return Receipt{Validation: v}, err
	}
	res, err := r.Ledger.ReceivePayment(ctx, *req)
	if err != nil {
		return Receipt{}, err
	}
	return Receipt{Validation: v, Ledger: res}, nil
}

// Prepare validates p against our quote and returns the ledger request that
// records it (nil when the payment carries no tickets), for a caller that
// records it as part of a larger ledger operation (ledger.Admit). The
// validation's per-ticket outcome is final once the request has been
// applied.
func (r *Receiver) Prepare(ctx context.Context, p *wire.Payment, quote *big.Rat, to ledger.Ref) (*pm.Validation, *ledger.PaymentRequest, error) {
	v, err := r.Recipient.Validate(p, quote)
	if err != nil {
		return nil, nil, err
	}
	if len(v.Tickets) == 0 {
		return v, nil, nil
	}
	var nonces []uint32
	for _, t := range v.Tickets {
		if t.Err == nil { // Validate leaves errors only on bad signatures
			nonces = append(nonces, t.Nonce)
		}
	}
	expiry := v.Params.ExpirationBlock
	if !expiry.IsInt64() {
		return nil, nil, fmt.Errorf("%w: expiration block %s", pm.ErrValueOutOfRange, expiry)
	}
	return v, &ledger.PaymentRequest{
		To:            to,
		Session:       v.Params.RecipientRandHash.Hex(),
		SessionExpiry: expiry.Int64(),
		Nonces:        nonces,
		Decide: func(seen ledger.NonceView) (ledger.PaymentDecision, error) {
			b := &book{seen: seen, max: r.MaxNonces}
			if err := v.Settle(ctx, b); err != nil {
				return ledger.PaymentDecision{}, err
			}
			return decision(v, b.accepted)
		},
	}, nil
}

// book is the pm.NonceBook that Settle uses inside the ledger transaction:
// the session as the ledger sees it, and pm's rule.
type book struct {
	seen     ledger.NonceView
	max      int
	accepted []uint32
}

func (b *book) RecordNonces(_ context.Context, _ pm.NonceSession, nonces []uint32) ([]pm.NonceVerdict, error) {
	verdicts, accepted := pm.ApplyNonceRule(b.seen, nonces, b.max)
	b.accepted = accepted
	return verdicts, nil
}

// decision turns a settled validation into what the ledger records. The
// ledger credits whole wei: a ticket's exact EV rounded down (CreditFor).
func decision(v *pm.Validation, accepted []uint32) (ledger.PaymentDecision, error) {
	d := ledger.PaymentDecision{Accepted: accepted}
	for _, t := range v.Tickets {
		if t.Credit {
			d.Credits = append(d.Credits, ledger.PaymentCredit{Key: TicketKey(t.TicketHash), Amount: ledger.CreditFor(t.EV)})
		}
		if t.Winner == nil {
			continue
		}
		payload, err := json.Marshal(NewWinningTicket(t.Winner))
		if err != nil {
			return d, err
		}
		tk := t.Winner.Ticket
		d.Winners = append(d.Winners, ledger.Winner{
			Key:         TicketKey(t.TicketHash),
			Sender:      tk.Sender.Hex(),
			FaceValue:   ledger.AmountFromBig(tk.FaceValue),
			RedeemAfter: tk.ParamsExpirationBlock.Int64(),
			Payload:     payload,
		})
	}
	return d, nil
}
