package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Why an orchestrator was not used for a job. Each AttemptError wraps one of
// these; test with errors.Is.
var (
	// ErrUnknownCapability: the orchestrator does not offer the capability
	// (its token endpoint answered 404).
	ErrUnknownCapability = errors.New("capability not offered")
	// ErrNoCapacity: the orchestrator has no free slot for the capability
	// (a 503 token answer, available_capacity 0, or a 503 job answer).
	ErrNoCapacity = errors.New("no capacity")
	// ErrPriceTooHigh: the quoted price is above Config.MaxPrice.
	ErrPriceTooHigh = errors.New("price above the maximum")
	// ErrNeedsKey: the capability has a price and the gateway has no key to
	// sign tickets with (offchain mode).
	ErrNeedsKey = errors.New("payment needed but the gateway has no key")
	// ErrBadToken: the token answer could not be used (not JSON, no price,
	// no ticket params at a price, a bad service address).
	ErrBadToken = errors.New("unusable token")
	// ErrForeignServiceAddr: the token's service_addr names another host
	// than the orchestrator it was asked from, or drops https for http
	// (Config.AllowForeignServiceAddr).
	ErrForeignServiceAddr = errors.New("token sends the job to another host")
	// ErrStaleToken: the orchestrator refused the payment made from a
	// reused token (its params or price changed since).
	ErrStaleToken = errors.New("reused token refused")
	// ErrPayment: a payment for the job could not be made from the token's
	// ticket params (too many tickets for one payment, EV too high, ...).
	ErrPayment = errors.New("cannot pay")
	// ErrTimeout: the orchestrator did not answer within the search or
	// response timeout.
	ErrTimeout = errors.New("no answer in time")
	// ErrTransport: the connection to the orchestrator failed.
	ErrTransport = errors.New("transport error")
	// ErrOrchestratorFailed: the orchestrator answered the job with a 5xx
	// before any worker output (retryable).
	ErrOrchestratorFailed = errors.New("orchestrator failed")
	// ErrJobIDUsed: the job ID was already used with this orchestrator (it
	// keys holds by sender and ID, and a closed hold is never reopened).
	ErrJobIDUsed = errors.New("job id already used")
	// ErrBooks: the gateway's own ledger failed; nothing is paid without
	// books, so the job is refused.
	ErrBooks = errors.New("gateway ledger unavailable")
)

// Stage says where an attempt at an orchestrator ended.
type Stage string

// Stages of an attempt.
const (
	StageToken   Stage = "token"   // GET /process/token and selection
	StagePayment Stage = "payment" // sizing and signing the tickets
	StageJob     Stage = "job"     // POST /process/request/...
)

// AttemptError says why one orchestrator did not run a job.
type AttemptError struct {
	Orchestrator string // the discovery URL
	Stage        Stage
	Status       int // the orchestrator's HTTP status, 0 when none came
	Detail       string
	Err          error // one of the Err* values above
}

func (e *AttemptError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: ", e.Orchestrator, e.Stage)
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d ", e.Status)
	}
	b.WriteString(e.Err.Error())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

func (e *AttemptError) Unwrap() error { return e.Err }

// JobError is the answer when no orchestrator could run a job: every
// attempt, in order, and the status the client gets.
type JobError struct {
	Capability string
	JobID      string
	Attempts   []*AttemptError
	// Reason is set when there was nothing to attempt (no orchestrator known).
	Reason string
}

func (e *JobError) Error() string {
	var b strings.Builder
	if e.Reason != "" {
		fmt.Fprintf(&b, "no orchestrator can run capability %q (job %s): %s", e.Capability, e.JobID, e.Reason)
	} else {
		fmt.Fprintf(&b, "no orchestrator could run capability %q (job %s); tried %d:", e.Capability, e.JobID, len(e.Attempts))
	}
	for _, a := range e.Attempts {
		b.WriteString("\n  ")
		b.WriteString(a.Error())
	}
	return b.String()
}

// Status is the HTTP status for the client: 502 when a job was sent and
// failed; else 402 when every orchestrator wanted a payment the gateway
// cannot make (no key), 409 when every one had seen the job ID already,
// and 503 otherwise (no orchestrator known, none with the capability,
// capacity or an acceptable price).
func (e *JobError) Status() int {
	if len(e.Attempts) == 0 {
		return http.StatusServiceUnavailable
	}
	allKey, allID := true, true
	for _, a := range e.Attempts {
		if a.Stage == StageJob {
			return http.StatusBadGateway
		}
		allKey = allKey && errors.Is(a, ErrNeedsKey)
		allID = allID && errors.Is(a, ErrJobIDUsed)
	}
	switch {
	case allKey:
		return http.StatusPaymentRequired
	case allID:
		return http.StatusConflict
	}
	return http.StatusServiceUnavailable
}

// RequestError is bad client input: the gateway answers Status (4xx) with
// Msg and contacts no orchestrator.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

func badRequest(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}
