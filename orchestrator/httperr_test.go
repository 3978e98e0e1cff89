package orchestrator

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"byoc/ledger"
	"byoc/orchestrator/meter"
)

// Each refusal of the meter keeps the status and body the job handler
// answered with before the meter: gateways and go-livepeer match on them.
func TestMeterErrorTable(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		body   string
	}{
		{&meter.Error{Kind: meter.ErrInvalidPayment, JobID: "j", Err: errors.New("ticket expired")}, http.StatusBadRequest, "Invalid payment: ticket expired"},
		{&meter.Error{Kind: meter.ErrInsufficientBalance, JobID: "j"}, http.StatusPaymentRequired, "Insufficient balance for request"},
		{&meter.Error{Kind: meter.ErrJobRunning, JobID: "j", Err: ledger.ErrJobExists}, http.StatusConflict, "job j is already running"},
		{&meter.Error{Kind: meter.ErrJobIDUsed, JobID: "j", Err: ledger.ErrJobClosed}, http.StatusConflict, "job id j was already used: ledger: job is closed"},
		{&meter.Error{Kind: meter.ErrLedger, JobID: "j", Err: errors.New("disk full")}, http.StatusInternalServerError, "could not open the job's hold"},
		{fmt.Errorf("wrapped: %w", &meter.Error{Kind: meter.ErrJobRunning, JobID: "k"}), http.StatusConflict, "job k is already running"},
		{errors.New("not the meter's"), http.StatusInternalServerError, "could not open the job's hold"},
	} {
		if status, body := meterStatus(tc.err); status != tc.status || body != tc.body {
			t.Errorf("%v: %d %q, want %d %q", tc.err, status, body, tc.status, tc.body)
		}
	}
}
