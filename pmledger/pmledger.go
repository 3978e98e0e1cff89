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
	if err == nil {
		err = Settle(v, res)
	}
	if err != nil {
		return Receipt{}, err
	}
	return Receipt{Validation: v, Ledger: res}, nil
}

// Prepare validates p against our quote and returns the ledger request that
// records it (nil when the payment carries no tickets), for a caller that
// records it as part of a larger ledger operation (ledger.Admit). The
// request is data: the tickets in order, each with its nonce (none for a
// bad signature), its credit (its EV rounded down to whole wei, CreditFor)
// and whether the payment's params expired; the winners; the session and
// its nonce cap. The ledger applies the nonce rule inside its transaction;
// Settle then gives its verdicts to the validation, whose per-ticket
// outcome is final once the request has been applied.
func (r *Receiver) Prepare(ctx context.Context, p *wire.Payment, quote *big.Rat, to ledger.Ref) (*pm.Validation, *ledger.PaymentRequest, error) {
	v, err := r.Recipient.Validate(p, quote)
	if err != nil {
		return nil, nil, err
	}
	if len(v.Tickets) == 0 {
		return v, nil, nil
	}
	expiry := v.Params.ExpirationBlock
	if !expiry.IsInt64() {
		return nil, nil, fmt.Errorf("%w: expiration block %s", pm.ErrValueOutOfRange, expiry)
	}
	req := &ledger.PaymentRequest{
		To:            to,
		Session:       v.Params.RecipientRandHash.Hex(),
		SessionExpiry: expiry.Int64(),
		MaxNonces:     r.MaxNonces,
		Chained:       true, // go-livepeer's rule: credit stops at the first bad ticket
	}
	if req.MaxNonces <= 0 {
		req.MaxNonces = pm.DefaultMaxNoncesPerSession
	}
	for _, t := range v.Tickets {
		// Validate leaves errors only on bad signatures: those tickets
		// present no nonce.
		tk := ledger.PaymentTicket{Nonce: t.Nonce, NoNonce: t.Err != nil, Refused: t.Err != nil || v.Expired}
		if !tk.Refused {
			tk.Credit = ledger.PaymentCredit{Key: TicketKey(t.TicketHash), Amount: ledger.CreditFor(t.EV)}
		}
		req.Tickets = append(req.Tickets, tk)
		if t.Winner == nil {
			continue
		}
		payload, err := json.Marshal(NewWinningTicket(t.Winner))
		if err != nil {
			return nil, nil, err
		}
		w := t.Winner.Ticket
		req.Winners = append(req.Winners, ledger.Winner{
			Key:         TicketKey(t.TicketHash),
			Sender:      w.Sender.Hex(),
			FaceValue:   ledger.AmountFromBig(w.FaceValue),
			RedeemAfter: w.ParamsExpirationBlock.Int64(),
			Payload:     payload,
		})
	}
	return v, req, nil
}

// Settle gives the validation of a prepared payment what the ledger found
// of its nonces (res, the outcome of the request Prepare returned), which
// decides each ticket's outcome (pm.Validation.SettleNonces). It calls
// nothing and may be called again with a later outcome (a store that ran
// the request again).
func Settle(v *pm.Validation, res ledger.PaymentResult) error {
	var verdicts []pm.NonceVerdict
	for _, n := range res.Nonces {
		switch n {
		case ledger.NonceUnchecked:
			continue
		case ledger.NonceNew:
			verdicts = append(verdicts, pm.NonceAccepted)
		case ledger.NonceSeen:
			verdicts = append(verdicts, pm.NonceSeen)
		default:
			verdicts = append(verdicts, pm.NonceTooMany)
		}
	}
	return v.SettleNonces(verdicts)
}
