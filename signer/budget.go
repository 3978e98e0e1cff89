package signer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"net/http"
	"time"

	"byoc/ledger"
)

// Spend is what one signed payment costs a customer.
type Spend struct {
	// Customer is the state's auth ID ("" for a caller no webhook or
	// header names); App the state's app.
	Customer, App string
	// Amount is what the tickets are worth to the orchestrator: each
	// ticket's EV rounded down to a whole wei, as it credits them.
	Amount ledger.Amount
	// Key is the spend's idempotency key, unique per signed payment.
	Key string
	// Event is the usage event the spend records.
	Event UsageEvent
	// appCharged: Spend charged the customer's budget for App too (a
	// Refund credits it back).
	appCharged bool
}

// Budget is charged for a payment before it is signed.
type Budget interface {
	// Spend charges s.Amount to s.Customer; ErrOverBudget (wrapped) when
	// the customer cannot pay, any other error when the budget cannot be
	// read or written.
	Spend(ctx context.Context, s *Spend) error
	// Refund returns a spend whose payment was not signed after all.
	Refund(ctx context.Context, s *Spend) error
}

// ErrOverBudget: the customer's budget cannot cover the payment (or the
// customer has none).
var ErrOverBudget = errors.New("customer budget exhausted")

// budgetError maps a Budget's refusal: 483 insufficient_balance, or 503
// billing_unavailable when the budget could not be checked (fail closed).
func budgetError(err error) error {
	if errors.Is(err, ErrOverBudget) {
		return &apiError{status: StatusInsufficientBalance, msg: err.Error(), code: CodeInsufficientBalance}
	}
	if errors.Is(err, ledger.ErrIdempotencyConflict) {
		return &apiError{status: http.StatusConflict, msg: "this state was already used for another payment", code: "state_used"}
	}
	return &apiError{status: http.StatusServiceUnavailable, msg: "billing unavailable", code: CodeBillingUnavailable}
}

// UsageEvent is one signed payment, with the fields of go-livepeer's
// create_signed_ticket event (docs/signer.md, "Usage events").
type UsageEvent struct {
	ID               string    `json:"id"`
	SessionID        string    `json:"session_id"`
	SessionStatus    string    `json:"session_status"`
	App              string    `json:"app"`
	Pipeline         string    `json:"pipeline"`
	RequestID        string    `json:"request_id"`
	OrchAddress      string    `json:"orch_address"`
	OrchURL          string    `json:"orch_url"`
	ManifestID       string    `json:"manifest_id"`
	PMSessionID      string    `json:"pm_session_id"`
	CurrentTime      time.Time `json:"current_time"`
	CurrentTimeUnix  int64     `json:"current_time_unix"`
	PreviousTime     time.Time `json:"previous_time"`
	PreviousTimeUnix int64     `json:"previous_time_unix"`
	// BillableSecs is exact: a decimal string of seconds (go-livepeer: a float).
	BillableSecs   string `json:"billable_secs"`
	Pixels         int64  `json:"pixels"`
	SessionBalance string `json:"session_balance"`
	ComputedFee    string `json:"computed_fee"`
	Cost           string `json:"cost"`
	SequenceNumber uint64 `json:"sequence_number"`
	NumTickets     int    `json:"num_tickets"`
	AuthID         string `json:"auth_id"`
	// Spent is what the customer's budget was charged (wei); byoc's addition.
	Spent string `json:"spent"`
}

// usage is the event of the payment c is about to sign.
func (s *Signer) usage(c *call, n int, after *big.Rat, spent ledger.Amount) UsageEvent {
	status := "continuing"
	if c.state.SequenceNumber == 0 {
		status = "new"
	}
	pipeline := ""
	switch c.req.Type {
	case TypeLV2V:
		pipeline = "live-video-to-video"
	case TypeLive, TypeFixed:
		pipeline = c.req.Type
	}
	secs := ""
	if c.req.Type == TypeLV2V || c.req.Type == TypeLive {
		secs = new(big.Rat).SetFrac64(int64(c.secs), int64(time.Second)).FloatString(9)
	} else {
		secs = new(big.Rat).SetFrac64(int64(c.now.Sub(c.last)), int64(time.Second)).FloatString(9)
	}
	return UsageEvent{
		ID:               newKey(),
		SessionID:        c.state.StateID,
		SessionStatus:    status,
		App:              c.state.App,
		Pipeline:         pipeline,
		RequestID:        c.requestID,
		OrchAddress:      c.orchAddr.Hex(),
		OrchURL:          c.info.Transcoder,
		ManifestID:       c.manifest,
		PMSessionID:      c.state.PMSessionID,
		CurrentTime:      c.now.UTC(),
		CurrentTimeUnix:  c.now.UTC().UnixMilli(),
		PreviousTime:     c.last.UTC(),
		PreviousTimeUnix: c.last.UTC().UnixMilli(),
		BillableSecs:     secs,
		Pixels:           c.pixels,
		SessionBalance:   after.FloatString(0),
		ComputedFee:      c.fee.FloatString(0),
		Cost:             c.orchPrice.FloatString(10),
		SequenceNumber:   c.state.SequenceNumber,
		NumTickets:       n,
		AuthID:           c.state.AuthID,
		Spent:            spent.String(),
	}
}

// newKey is a 128-bit random key: a spend's idempotency key and its
// event's ID.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
