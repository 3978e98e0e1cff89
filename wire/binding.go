package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A go-livepeer job signature covers only request‖parameters (docs/protocol.md
// §5.2, D8): not the job ID, the capability, the timeout, nor any expiry, so a
// captured Livepeer header can be sent again — with another ID — to spend
// its sender's prepaid credit. byoc gateways close that hole without a new
// wire format: they put a binding in `parameters`, which the signature
// covers and which go-livepeer orchestrators ignore (unknown keys):
//
//	"byoc_job": {"id": "...", "capability": "...", "timeout_seconds": 30, "not_after": 1767312000}
//
// A byoc orchestrator checks a bound request's binding against the request
// and the clock; since job IDs are single-use per sender in its ledger, a
// replay of a bound request is refused. Unbound requests (go-livepeer
// gateways) stay accepted unless the operator requires bindings.

// BindingKey is the key of the binding inside the parameters JSON object.
const BindingKey = "byoc_job"

// JobBinding ties a signed job request to one job.
type JobBinding struct {
	ID             string `json:"id"`
	Capability     string `json:"capability"`
	TimeoutSeconds int    `json:"timeout_seconds"`
	// NotAfter is the unix time after which the request is refused.
	NotAfter int64 `json:"not_after"`
	// Customer is the remote signer's customer the job is for (its auth
	// ID), when a signer that keeps customers signed it; absent otherwise.
	Customer string `json:"customer,omitempty"`
}

// Errors of job bindings.
var (
	// ErrBindingMismatch: the binding names another job, capability or
	// timeout than the request, or the request has no job ID.
	ErrBindingMismatch = errors.New("wire: job binding does not match the request")
	// ErrBindingExpired: the binding's not_after has passed.
	ErrBindingExpired = errors.New("wire: job binding expired")
)

// Bind adds a binding for req's ID, capability and timeout, valid until
// notAfter, to req.Parameters (which must be a JSON object, or empty). Call
// it before SignJobRequest.
func Bind(req *JobRequest, notAfter time.Time) error { return BindFor(req, notAfter, "") }

// BindFor is Bind naming the customer the job is for ("" for none): a
// remote signer binds the customer it authenticated, so the signature
// covers it and one customer cannot have a job run on another's account.
func BindFor(req *JobRequest, notAfter time.Time, customer string) error {
	if req.ID == "" {
		return fmt.Errorf("%w: a bound request needs a job ID", ErrBindingMismatch)
	}
	b, err := json.Marshal(JobBinding{ID: req.ID, Capability: req.Capability, TimeoutSeconds: req.TimeoutSeconds, NotAfter: notAfter.Unix(), Customer: customer})
	if err != nil {
		return err
	}
	if req.Parameters == "" || req.Parameters == "{}" {
		// What marshalling the one-key map below gives, without the map.
		req.Parameters = `{"` + BindingKey + `":` + string(b) + `}`
		return nil
	}
	params := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(req.Parameters), &params); err != nil {
		return fmt.Errorf("%w: %w", ErrJobParametersNotJSON, err)
	}
	params[BindingKey] = b
	out, err := json.Marshal(params)
	if err != nil {
		return err
	}
	req.Parameters = string(out)
	return nil
}

// Binding returns req's binding, or nil for an unbound request. It does not
// check it; see CheckBinding.
func (r *JobRequest) Binding() (*JobBinding, error) {
	var p struct {
		B *JobBinding `json:"byoc_job"`
	}
	if err := json.Unmarshal([]byte(r.Parameters), &p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJobParametersNotJSON, err)
	}
	return p.B, nil
}

// CheckBinding verifies that a bound request's binding matches the request
// and has not expired at now. It returns (false, nil) for an unbound request.
func (r *JobRequest) CheckBinding(now time.Time) (bound bool, err error) {
	b, err := r.CheckedBinding(now)
	return b != nil, err
}

// CheckedBinding is CheckBinding returning the binding it checked: nil for
// an unbound request (or one whose parameters are not JSON, with the
// error); with a mismatch or expiry, the binding and the error.
func (r *JobRequest) CheckedBinding(now time.Time) (*JobBinding, error) {
	b, err := r.Binding()
	switch {
	case err != nil:
		return nil, err
	case b == nil:
		return nil, nil
	case b.ID == "" || b.ID != r.ID || b.Capability != r.Capability || b.TimeoutSeconds != r.TimeoutSeconds:
		return b, fmt.Errorf("%w: bound to job %q, capability %q, timeout %d", ErrBindingMismatch, b.ID, b.Capability, b.TimeoutSeconds)
	case now.Unix() > b.NotAfter:
		return b, fmt.Errorf("%w at %s", ErrBindingExpired, time.Unix(b.NotAfter, 0).UTC().Format(time.RFC3339))
	}
	return b, nil
}
