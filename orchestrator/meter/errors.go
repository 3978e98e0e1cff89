package meter

import (
	"errors"
	"fmt"
)

// The meter's refusals. Each comes wrapped in an *Error; test with
// errors.Is.
var (
	// ErrInvalidPayment: the payment's tickets were refused (a fatal
	// error: nothing recorded), or one of them was bad (the valid ones
	// before it stay credited, in the pool). The work does not run.
	ErrInvalidPayment = errors.New("invalid payment")
	// ErrInsufficientBalance: the hold could not reach the minimum
	// (admission), or cannot cover the next debit (the caller stops the
	// work; nothing was charged).
	ErrInsufficientBalance = errors.New("insufficient balance")
	// ErrJobRunning: the job ID is in use by a running job of the sender.
	ErrJobRunning = errors.New("job already running")
	// ErrJobIDUsed: the job ID was used before (closed, expired, or under
	// another capability).
	ErrJobIDUsed = errors.New("job id already used")
	// ErrLedger: the ledger failed; nothing of the step happened (for an
	// admission: no hold was opened).
	ErrLedger = errors.New("ledger failure")
)

// Error is a refusal of the meter: which one (Kind, one of the Err
// values), for which job, and the cause below it (the ledger's or pm's
// error; nil when there is none to tell).
type Error struct {
	Kind  error
	Op    string // admit, debit or finish
	JobID string // the client's job ID, "" for a legacy request
	Err   error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("meter: %s job %q: %v", e.Op, e.JobID, e.Kind)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is see the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// refuse is a refusal of kind in op.
func (j *Job) refuse(op string, kind, cause error) error {
	return &Error{Kind: kind, Op: op, JobID: j.req.JobID, Err: cause}
}

// fail is a ledger failure in op.
func (j *Job) fail(op string, cause error) error { return j.refuse(op, ErrLedger, cause) }
