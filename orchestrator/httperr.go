package orchestrator

import (
	"errors"
	"fmt"
	"net/http"

	"byoc/orchestrator/meter"
)

// meterErrors maps the meter's refusals to the status and body a job is
// answered with: the one table of them. The bodies are go-livepeer's where
// it has one (gateways and tests match on them).
var meterErrors = []struct {
	kind   error
	status int
	body   func(e *meter.Error) string
}{
	{meter.ErrInvalidPayment, http.StatusBadRequest, func(e *meter.Error) string { return "Invalid payment: " + cause(e) }},
	{meter.ErrInsufficientBalance, http.StatusPaymentRequired, func(*meter.Error) string { return "Insufficient balance for request" }},
	{meter.ErrJobRunning, http.StatusConflict, func(e *meter.Error) string { return fmt.Sprintf("job %s is already running", e.JobID) }},
	{meter.ErrJobIDUsed, http.StatusConflict, func(e *meter.Error) string {
		return fmt.Sprintf("job id %s was already used: %v", e.JobID, e.Err)
	}},
	{meter.ErrLedger, http.StatusInternalServerError, func(*meter.Error) string { return "could not open the job's hold" }},
}

func cause(e *meter.Error) string {
	if e.Err == nil {
		return e.Kind.Error()
	}
	return e.Err.Error()
}

// meterStatus is the status and body for an error of the meter.
func meterStatus(err error) (status int, body string) {
	var e *meter.Error
	if errors.As(err, &e) {
		for _, m := range meterErrors {
			if errors.Is(e.Kind, m.kind) {
				return m.status, m.body(e)
			}
		}
	}
	return http.StatusInternalServerError, "could not open the job's hold"
}

// meterError answers a job refused by the meter.
func meterError(w http.ResponseWriter, err error) {
	status, body := meterStatus(err)
	httpError(w, body, status)
}

// refusal is a request refused before any money moved: the reason
// counted in byoc_orchestrator_rejected_total ("" for none), the status
// and the body.
type refusal struct {
	reason string
	status int
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func refuse(reason string, status int, format string, args ...any) *refusal {
	return &refusal{reason, status, fmt.Sprintf(format, args...)}
}

// refused answers a refusal and counts it for endpoint.
func (o *Orchestrator) refused(w http.ResponseWriter, endpoint string, r *refusal) {
	if r.reason != "" {
		o.m.rejected.WithLabelValues(endpoint, r.reason).Inc()
	}
	httpError(w, r.msg, r.status)
}
