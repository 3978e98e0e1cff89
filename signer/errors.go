package signer

import (
	"encoding/json"
	"net/http"
)

// Statuses of go-livepeer's remote signer protocol beside the standard ones.
const (
	StatusRefreshSession = 480 // fresh OrchestratorInfo needed; Livepeer-Orchestrator-URL says whose
	StatusPriceExceeded  = 481 // the orchestrator's price is above a ceiling
	StatusNoTickets      = 482 // the state's balance covers the fee; nothing to sign
	// StatusInsufficientBalance is the clearinghouse's refusal of a customer
	// without money, and this signer's when a customer's budget cannot
	// cover a payment.
	StatusInsufficientBalance = 483
)

// HeaderOrchestratorURL names the orchestrator to refresh in a 480 answer.
const HeaderOrchestratorURL = "Livepeer-Orchestrator-URL"

// HeaderAuthID carries the customer's ID when no webhook names one.
const HeaderAuthID = "Signer-Auth-Id"

// HeaderIdempotencyKey, on a first call (no state) to
// /generate-live-payment, names the call so that, with the shared nonce
// counter, sending it again is charged once and answered with the same
// tickets (a continuing call is keyed by its state; a first call has none).
const HeaderIdempotencyKey = "Idempotency-Key"

// Codes this signer puts in error answers (beside any a webhook sends).
const (
	CodeInsufficientBalance = "insufficient_balance"
	CodeBillingUnavailable  = "billing_unavailable"
)

// apiError is an answer other than 200: the status, the message, an
// optional machine-readable code and, for a 482, the state to go on with.
type apiError struct {
	status int
	msg    string
	code   string
	state  *StateSig
	header http.Header
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, msg string) *apiError { return &apiError{status: status, msg: msg} }

// errorBody is the JSON of an error answer: go-livepeer's envelope
// {"error":{"message":…}}, with "code" when there is one and "state" on a
// 482.
type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Code    string `json:"code,omitempty"`
	} `json:"error"`
	State *StateSig `json:"state,omitempty"`
}

// respondError writes e. As in go-livepeer, the text of a 500 is replaced
// by "Internal Server Error" (the reason goes to the log), and so is a 503's
// by "Service Unavailable Error" unless it carries a code (a webhook's
// refusal, passed on).
func respondError(w http.ResponseWriter, e *apiError) {
	for k, vs := range e.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	var b errorBody
	b.Error.Message = e.msg
	b.Error.Code = e.code
	b.State = e.state
	switch {
	case e.status == http.StatusInternalServerError:
		b.Error.Message = "Internal Server Error"
	case e.status == http.StatusServiceUnavailable && e.code == "":
		b.Error.Message = "Service Unavailable Error"
	}
	respondJSON(w, e.status, b)
}

// respondJSON writes v as go-livepeer does: json.Encoder (HTML escaped, a
// trailing newline).
func respondJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
