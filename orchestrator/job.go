package orchestrator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"byoc/ethsig"
	"byoc/internal/serve"
	"byoc/orchestrator/meter"
	"byoc/wire"
)

// LegacyJobPrefix starts the internal job ID under which a legacy request
// (one without an id) is held: LegacyJobPrefix + its request ID. Client job
// IDs may not start with it.
const LegacyJobPrefix = meter.LegacyJobPrefix

// jobRun is one job request in flight.
type jobRun struct {
	o     *Orchestrator
	req   *wire.JobRequest
	slot  *slot
	job   *meter.Job // its money side, once admitted
	reqID string     // for idempotency keys and logs
	path  string     // the job's path below the worker's URL, escaped (jobPath)
	log   *slog.Logger
	w     http.ResponseWriter // for the money headers
}

// jobInput is a job request as parsed, before any money moves.
type jobInput struct {
	signedInput
	path string // below the worker's URL, escaped (jobPath)
	body []byte
}

// signedInput is what a job's or a stream's Livepeer header and payment
// say: the request, its timeout, whether it is signed, the pool it draws
// from (with a bound customer) and its payment.
type signedInput struct {
	req     *wire.JobRequest
	details wire.JobRequestDetails
	pool    meter.Pool
	signed  bool
	timeout time.Duration
	payment *wire.Payment
}

// parseSigned reads and checks the Livepeer header (signature, binding,
// timeout, details) and the payment's sender, for work of the kind what
// ("job" or "stream"). A signed request is checked for a binding unless
// unboundEmpty and its parameters are empty (a go-livepeer gateway's
// stream stop). A bound customer keys the pool.
func (o *Orchestrator) parseSigned(r *http.Request, what string, unboundEmpty bool) (signedInput, *refusal) {
	var in signedInput
	req, err := wire.DecodeJobRequestHeader(r.Header.Get(wire.HeaderJobRequest))
	switch {
	case errors.Is(err, wire.ErrJobNoTimeout):
		return in, refuse("bad_request", http.StatusBadRequest, "no timeout_seconds set with request, timeout_seconds is required")
	case err != nil:
		return in, refuse("bad_request", http.StatusBadRequest, "Could not verify job creds: %v", err)
	}
	in.req, in.timeout = req, time.Duration(req.TimeoutSeconds)*time.Second
	if in.timeout > o.cfg.MaxTimeout {
		return in, refuse("bad_request", http.StatusBadRequest, "timeout_seconds %d exceeds the maximum of %d", req.TimeoutSeconds, int(o.cfg.MaxTimeout/time.Second))
	}
	sender, signed, err := jobSender(req)
	if err != nil {
		return in, refuse("bad_credentials", http.StatusBadRequest, "Could not verify job creds")
	}
	in.signed = signed
	customer := ""
	if signed && (!unboundEmpty || req.Parameters != "" || o.cfg.RequireBoundJobs) {
		b, err := req.CheckedBinding(o.cfg.Ledger.Now())
		switch {
		case err != nil:
			return in, refuse("bad_binding", http.StatusBadRequest, "Invalid job binding: %v", err)
		case b == nil && o.cfg.RequireBoundJobs:
			return in, refuse("unbound", http.StatusBadRequest, "this orchestrator accepts only bound job requests (a byoc_job binding in parameters)")
		case b != nil:
			// A remote signer's customer, covered by the sender's
			// signature: the work draws from that customer's pool.
			customer = b.Customer
		}
	}
	if err := json.Unmarshal([]byte(req.Request), &in.details); err != nil {
		return in, refuse("bad_request", http.StatusBadRequest, "Unable to unmarshal job request details err=%v", err)
	}
	if in.payment, err = wire.DecodePaymentHeader(r.Header.Get(wire.PaymentHeader)); err != nil {
		return in, refuse("bad_payment", http.StatusBadRequest, "Invalid payment: %v", err)
	}
	if len(in.payment.TicketSenderParams) > 0 && !bytes.Equal(in.payment.Sender, sender[:]) {
		return in, refuse("bad_payment", http.StatusBadRequest, "Invalid payment: tickets from 0x%x pay for a %s of %s", in.payment.Sender, what, sender.Hex())
	}
	in.pool = meter.Pool{Sender: sender, Capability: req.Capability, Customer: customer}
	if err := in.pool.Ref().Validate(); err != nil {
		return in, refuse("bad_binding", http.StatusBadRequest, "Invalid job binding: %v", err)
	}
	return in, nil
}

// parseJob reads and checks a job request: its path, the Livepeer header
// (signature, binding, timeout, details), the payment's sender, the job ID
// and the body. A refusal says why, for the answer and the metric.
func (o *Orchestrator) parseJob(w http.ResponseWriter, r *http.Request) (*jobInput, *refusal) {
	if r.Method != http.MethodPost {
		return nil, &refusal{"", http.StatusMethodNotAllowed, "Method not allowed"}
	}
	path, err := jobPath(r)
	if err != nil {
		return nil, refuse("bad_path", http.StatusBadRequest, "Invalid job path: %v", err)
	}
	si, ref := o.parseSigned(r, "job", false)
	if ref != nil {
		return nil, ref
	}
	in := &jobInput{signedInput: si, path: path}
	req := in.req
	if req.ID != "" {
		if err := in.pool.Job(req.ID).Ref().Validate(); err != nil {
			return nil, refuse("bad_request", http.StatusBadRequest, "Invalid job id: %v", err)
		}
		if strings.HasPrefix(req.ID, LegacyJobPrefix) {
			return nil, refuse("bad_request", http.StatusBadRequest, "Invalid job id: ids starting with %q are reserved for requests without an id", LegacyJobPrefix)
		}
	}
	body, berr := serve.ReadBody(w, r, o.cfg.MaxBodyBytes)
	if berr != nil {
		return nil, &refusal{berr.Reason, berr.Status, berr.Msg}
	}
	in.body = body
	return in, nil
}

// handleJob runs one job: parse it, reserve a slot, admit it through the
// meter (payment, hold), forward it to the worker, charge, release.
func (o *Orchestrator) handleJob(w http.ResponseWriter, r *http.Request) {
	in, rf := o.parseJob(w, r)
	if rf != nil {
		o.refused(w, "job", rf)
		return
	}
	req, sender, timeout := in.req, in.pool.Sender, in.timeout
	s, err := o.reg.reserve(req.Capability)
	if err != nil {
		o.refused(w, "job", refuse("no_capacity", http.StatusServiceUnavailable, "No capacity available for capability"))
		return
	}
	defer s.release()
	j := &jobRun{o: o, req: req, slot: s, reqID: newRequestID(), path: in.path, w: w}
	senderHex := ethsig.Hex(sender)
	j.log = o.log.With("request_id", j.reqID, "capability", req.Capability, "sender", senderHex, "job_id", req.ID)
	if !in.signed && s.price.Sign() != 0 {
		o.refused(w, "job", refuse("unsigned", http.StatusPaymentRequired, "capability %s costs %s wei per second: sign the request and pay with tickets", req.Capability, s.price.RatString()))
		return
	}
	if !o.tryOpen(senderHex) {
		o.refused(w, "job", refuse("too_many_jobs", http.StatusTooManyRequests, "sender %s already has %d jobs running", senderHex, o.cfg.MaxOpenJobsPerSender))
		return
	}
	defer o.done(senderHex)
	o.m.openJobs.Inc()
	defer o.m.openJobs.Dec()

	job, adm, err := o.meter.Admit(r.Context(), meter.Request{Pool: in.pool, JobID: req.ID, RequestID: j.reqID,
		Price: s.price, Timeout: timeout, Payment: in.payment, Log: j.log})
	j.admission(adm)
	if err != nil {
		o.m.jobs.WithLabelValues(req.Capability, "refused").Inc()
		meterError(w, err)
		return
	}
	j.job = job
	defer j.close()
	j.forward(w, r, in.body, timeout)
}

func newRequestID() string {
	b := make([]byte, 16) // also the charges' idempotency keys: never reused
	rand.Read(b)
	return hex.EncodeToString(b)
}

// admission tells the gateway what the request's payment credited, once
// that is final (Livepeer-Payment-Credited).
func (j *jobRun) admission(a meter.Admission) {
	if a.Paid {
		j.w.Header().Set(wire.HeaderPaymentCredited, a.Credited.String())
	}
}

// now is the time on the ledger's clock: what billing goes by.
func (j *jobRun) now() time.Time { return j.o.meter.Now() }

// finished sets Livepeer-Job-Charged from the meter's finish (what the
// ledger took for the job, which a hold that ran dry keeps below the price
// of the seconds used) and returns the Livepeer-Balance value: what the
// sender has left for this capability, its pool ("" when the ledger
// failed, "0" for a free job).
func (j *jobRun) finished(f meter.Final, err error) string {
	if j.job.Free() {
		return "0"
	}
	j.w.Header().Set(wire.HeaderJobCharged, f.Total.String())
	if err != nil {
		return ""
	}
	return wire.BalanceHeader(f.PoolBalance.Big())
}

// finish charges the time used up to now and closes the job's hold (used
// false: charges nothing more, the worker never got the job).
func (j *jobRun) finish(ctx context.Context, used bool) string {
	if used {
		return j.finished(j.job.Finish(ctx, j.now()))
	}
	return j.finished(j.job.FinishUnused(ctx))
}

// close ends a hold the job left open, releasing it to the pool.
func (j *jobRun) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j.job.Close(ctx)
}

// forward sends the job to the worker and relays the answer.
func (j *jobRun) forward(w http.ResponseWriter, r *http.Request, body []byte, timeout time.Duration) {
	o := j.o
	url, err := workerURL(j.slot.url, j.path)
	wctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var wreq *http.Request
	if err == nil {
		wreq, err = http.NewRequestWithContext(wctx, http.MethodPost, url, bytes.NewReader(body))
	}
	if err != nil {
		httpError(w, "job not able to be processed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		wreq.Header.Set("Content-Type", ct)
	}
	if j.slot.token != "" {
		wreq.Header.Set("Authorization", "Bearer "+j.slot.token)
	}
	// reached: the worker got the whole job, so it may have done work for
	// it (charged) even if the connection breaks before it answers.
	var reached atomic.Bool
	wreq = wreq.WithContext(httptrace.WithClientTrace(wctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { reached.Store(i.Err == nil) },
	}))
	began := time.Now() // for the worker_seconds metric only
	j.job.Start()
	resp, err := o.cfg.WorkerClient.Do(wreq)
	// The worker ran while the admission was being committed; nothing of
	// its answer goes out unless that commit held.
	adm, cerr := j.job.Confirm(context.WithoutCancel(r.Context()))
	j.admission(adm)
	if cerr != nil {
		status, msg := meterStatus(cerr)
		cancel()
		if err == nil {
			resp.Body.Close()
		}
		o.m.jobs.WithLabelValues(j.req.Capability, "refused").Inc()
		j.log.Warn("the job's admission was not committed; the worker's answer is dropped", "status", status, "reason", msg)
		httpError(w, msg, status)
		return
	}
	observe := func(outcome string) {
		o.m.workerSeconds.WithLabelValues(j.req.Capability).Observe(time.Since(began).Seconds())
		o.m.jobs.WithLabelValues(j.req.Capability, outcome).Inc()
	}
	ctx := context.WithoutCancel(r.Context())
	if err != nil {
		switch {
		case errors.Is(wctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil:
			bal := j.finish(ctx, true)
			observe("timeout")
			w.Header().Set(wire.HeaderBalance, bal)
			httpError(w, fmt.Sprintf("job timed out: the worker did not answer within %d s", j.req.TimeoutSeconds), http.StatusGatewayTimeout)
		case r.Context().Err() != nil:
			j.finish(ctx, true)
			observe("client_gone")
		default:
			o.reg.removeWorker(j.req.Capability, j.slot.url)
			outcome := "worker_unreachable"
			if reached.Load() {
				outcome = "worker_failed"
			}
			bal := j.finish(ctx, reached.Load())
			observe(outcome)
			j.log.Warn("worker failed; removed", "url", j.slot.url, "got_job", reached.Load(), "err", err)
			w.Header().Set(wire.HeaderBalance, bal)
			httpError(w, "job not able to be processed, removing capability err="+err.Error(), http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		o.reg.removeWorker(j.req.Capability, j.slot.url)
		observe("worker_auth_failed")
		j.log.Warn("worker refused our token; removed", "url", j.slot.url)
		bal := j.finish(ctx, false)
		w.Header().Set(wire.HeaderBalance, bal)
		httpError(w, "job not able to be processed, removing capability err=worker auth token failed", http.StatusBadGateway)
		return
	}
	if strings.Contains(resp.Header.Get("Content-Type"), "text/event-stream") {
		observe(j.relaySSE(w, r, resp, wctx, cancel))
		return
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, o.cfg.MaxResponseBytes+1))
	bal := j.finish(ctx, true)
	h := w.Header()
	h.Set(wire.HeaderBalance, bal)
	switch {
	case err != nil && r.Context().Err() != nil:
		observe("client_gone") // the gateway left while the worker answered
		return
	case err != nil:
		observe("worker_error")
		httpError(w, "job not able to be processed: reading the worker's response: "+err.Error(), http.StatusBadGateway)
		return
	case int64(len(out)) > o.cfg.MaxResponseBytes:
		observe("worker_error")
		httpError(w, fmt.Sprintf("the worker's response exceeds %d bytes", o.cfg.MaxResponseBytes), http.StatusBadGateway)
		return
	}
	h.Set(wire.HeaderMetadata, resp.Header.Get(wire.HeaderMetadata))
	if resp.StatusCode > 399 {
		observe("worker_error_status")
		httpError(w, string(out), resp.StatusCode)
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(out); err != nil || r.Context().Err() != nil {
		observe("client_gone") // as far as can be told: a small answer may sit in a buffer
		return
	}
	observe("ok")
}
