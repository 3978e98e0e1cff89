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
	"math/big"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/internal/serve"
	"byoc/ledger"
	"byoc/pm"
	"byoc/wire"
)

// LegacyJobPrefix starts the internal job ID under which a legacy request
// (one without an id) is held: LegacyJobPrefix + its request ID. Client job
// IDs may not start with it.
const LegacyJobPrefix = "~legacy-"

// jobRun is one job request in flight.
type jobRun struct {
	o       *Orchestrator
	req     *wire.JobRequest
	sender  common.Address
	price   *big.Rat // wei per second
	slot    *slot
	account ledger.Ref // the job's hold once admitted, else the pool
	job     *ledger.JobKey
	reqID   string // for idempotency keys and logs
	path    string // the job's path below the worker's URL, escaped (jobPath)
	charged int64  // billing units charged so far
	// chargedWei is what the ledger took for them (a charge capped at
	// the hold may take less than their price): Livepeer-Job-Charged.
	chargedWei ledger.Amount
	began      time.Time // when the worker got the job, on the ledger's clock
	// confirm, while set, settles an admission decided but not yet durable
	// (see confirmAdmission).
	confirm func(context.Context) (int, string)
	log     *slog.Logger
	w       http.ResponseWriter // for headers set along the way
}

func (j *jobRun) free() bool { return j.price.Sign() == 0 }

// handleJob runs one job: authenticate, reserve a slot, take the payment,
// admit against the hold, forward to the worker, charge, release.
func (o *Orchestrator) handleJob(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpError(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	reject := func(reason, msg string, status int) {
		o.m.rejected.WithLabelValues("job", reason).Inc()
		httpError(w, msg, status)
	}
	path, err := jobPath(r)
	if err != nil {
		reject("bad_path", "Invalid job path: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, err := wire.DecodeJobRequestHeader(r.Header.Get(wire.HeaderJobRequest))
	if err != nil {
		if errors.Is(err, wire.ErrJobNoTimeout) {
			reject("bad_request", "no timeout_seconds set with request, timeout_seconds is required", http.StatusBadRequest)
			return
		}
		reject("bad_request", "Could not verify job creds: "+err.Error(), http.StatusBadRequest)
		return
	}
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	if timeout > o.cfg.MaxTimeout {
		reject("bad_request", fmt.Sprintf("timeout_seconds %d exceeds the maximum of %d", req.TimeoutSeconds, int(o.cfg.MaxTimeout/time.Second)), http.StatusBadRequest)
		return
	}
	sender, signed, err := jobSender(req)
	if err != nil {
		reject("bad_credentials", "Could not verify job creds", http.StatusBadRequest)
		return
	}
	if signed {
		bound, err := req.CheckBinding(o.cfg.Ledger.Now())
		switch {
		case err != nil:
			reject("bad_binding", "Invalid job binding: "+err.Error(), http.StatusBadRequest)
			return
		case !bound && o.cfg.RequireBoundJobs:
			reject("unbound", "this orchestrator accepts only bound job requests (a byoc_job binding in parameters)", http.StatusBadRequest)
			return
		}
	}
	var details wire.JobRequestDetails
	if err := json.Unmarshal([]byte(req.Request), &details); err != nil {
		reject("bad_request", "Unable to unmarshal job request details err="+err.Error(), http.StatusBadRequest)
		return
	}
	payment, err := wire.DecodePaymentHeader(r.Header.Get(wire.PaymentHeader))
	if err != nil {
		reject("bad_payment", "Invalid payment: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(payment.TicketSenderParams) > 0 && !bytes.Equal(payment.Sender, sender[:]) {
		reject("bad_payment", fmt.Sprintf("Invalid payment: tickets from 0x%x pay for a job of %s", payment.Sender, sender.Hex()), http.StatusBadRequest)
		return
	}
	if req.ID != "" {
		if err := (ledger.JobKey{Sender: sender.Hex(), JobID: req.ID}).Ref().Validate(); err != nil {
			reject("bad_request", "Invalid job id: "+err.Error(), http.StatusBadRequest)
			return
		}
		if strings.HasPrefix(req.ID, LegacyJobPrefix) {
			reject("bad_request", fmt.Sprintf("Invalid job id: ids starting with %q are reserved for requests without an id", LegacyJobPrefix), http.StatusBadRequest)
			return
		}
	}
	body, berr := serve.ReadBody(w, r, o.cfg.MaxBodyBytes)
	if berr != nil {
		reject(berr.Reason, berr.Msg, berr.Status)
		return
	}
	s, err := o.reg.reserve(req.Capability)
	if err != nil {
		reject("no_capacity", "No capacity available for capability", http.StatusServiceUnavailable)
		return
	}
	defer s.release()
	j := &jobRun{o: o, req: req, sender: sender, price: s.price, slot: s, reqID: newRequestID(), path: path}
	j.log = o.log.With("request_id", j.reqID, "capability", req.Capability, "sender", sender.Hex(), "job_id", req.ID)
	if !signed && !j.free() {
		reject("unsigned", fmt.Sprintf("capability %s costs %s wei per second: sign the request and pay with tickets", req.Capability, j.price.RatString()), http.StatusPaymentRequired)
		return
	}
	if !o.tryOpen(sender.Hex()) {
		reject("too_many_jobs", fmt.Sprintf("sender %s already has %d jobs running", sender.Hex(), o.cfg.MaxOpenJobsPerSender), http.StatusTooManyRequests)
		return
	}
	defer o.done(sender.Hex())
	o.m.openJobs.Inc()
	defer o.m.openJobs.Dec()

	j.w = w
	status, msg := j.admit(r.Context(), payment, timeout)
	defer j.close()
	if status != 0 {
		o.m.jobs.WithLabelValues(req.Capability, "refused").Inc()
		httpError(w, msg, status)
		return
	}
	j.forward(w, r, body, timeout)
}

func newRequestID() string {
	b := make([]byte, 16) // also the charges' idempotency keys: never reused
	rand.Read(b)
	return hex.EncodeToString(b)
}

// admit opens the job's hold with the payment sent with it and a top-up
// from the pool, in one ledger step (ledger.Admit). A legacy request (no
// id) is held the same way, under an internal job ID (LegacyJobPrefix):
// its pool is still what the sender sees (Livepeer-Balance, the token's
// balance), but it runs only on what its own hold took from the pool, so
// concurrent legacy requests cannot spend the pool twice. It returns a
// non-zero status and message when the job must not run; a payment
// credited before that stays the sender's, in its pool.
func (j *jobRun) admit(ctx context.Context, payment *wire.Payment, timeout time.Duration) (int, string) {
	o, l := j.o, j.o.cfg.Ledger
	pool := ledger.PoolKey{Sender: j.sender.Hex(), Capability: j.req.Capability}
	j.account = pool.Ref()
	if j.free() {
		return 0, "" // nothing to hold or charge
	}
	var v *pm.Validation
	var pay *ledger.PaymentRequest
	if len(payment.TicketSenderParams) > 0 {
		var err error
		v, pay, err = o.receiver.Prepare(ctx, payment, j.price, j.account)
		if err != nil {
			j.credited(ledger.Amount{})
		}
		switch {
		case pm.IsFatal(err):
			o.m.tickets.WithLabelValues("rejected").Add(float64(len(payment.TicketSenderParams)))
			return http.StatusBadRequest, "Invalid payment: " + err.Error()
		case err != nil:
			return http.StatusBadRequest, "Invalid payment: " + err.Error()
		}
	}
	minimum := costFor(j.price, o.cfg.MinCompute)
	key := ledger.JobKey{Sender: j.sender.Hex(), JobID: j.req.ID}
	if key.JobID == "" {
		key.JobID = LegacyJobPrefix + j.reqID
	}
	res, confirm, err := l.AdmitDecided(ctx, ledger.AdmitRequest{Payment: pay, OpenJobRequest: ledger.OpenJobRequest{Job: key, Capability: j.req.Capability,
		Reserve: costFor(j.price, max(timeout, o.cfg.MinCompute)), Minimum: minimum, TTL: timeout + o.cfg.HoldTTLMargin}})
	if err == nil && res.Admitted && (v == nil || v.Err() == nil) {
		// Admitted once its commit (an fsync) is done: the worker may start
		// meanwhile (forward); nothing is answered before confirmAdmission.
		j.job, j.account = &key, key.Ref()
		j.confirm = func(ctx context.Context) (int, string) {
			final, err := confirm(ctx)
			return j.admitted(key, pay, v, final, err)
		}
		return 0, ""
	}
	if err == nil {
		res, err = confirm(ctx) // nothing to start early: the final word
	}
	return j.admitted(key, pay, v, res, err)
}

// admitted settles an admission once it is final (durable, or refused):
// the Livepeer-Payment-Credited header, the job's hold (from here on
// closed by the handler) and the answer when the job must not run.
func (j *jobRun) admitted(key ledger.JobKey, pay *ledger.PaymentRequest, v *pm.Validation, res ledger.AdmitResult, err error) (int, string) {
	switch {
	case err == nil && pay != nil:
		j.credited(res.Payment.Credited)
	case pay != nil && ledger.IsJobIDRefused(err):
		j.credited(ledger.Amount{}) // refused: nothing of the op happened
	}
	j.job, j.account = nil, ledger.PoolKey{Sender: j.sender.Hex(), Capability: j.req.Capability}.Ref()
	switch {
	case errors.Is(err, ledger.ErrJobExists):
		return http.StatusConflict, fmt.Sprintf("job %s is already running", j.req.ID)
	case errors.Is(err, ledger.ErrJobClosed), errors.Is(err, ledger.ErrJobExpired), errors.Is(err, ledger.ErrJobMismatch):
		return http.StatusConflict, fmt.Sprintf("job id %s was already used: %v", j.req.ID, err)
	case err != nil:
		j.log.Error("admit", "err", err)
		return http.StatusInternalServerError, "could not open the job's hold"
	}
	if res.Admitted {
		j.job, j.account = &key, key.Ref() // closed by the handler from here on
	}
	if status, msg := j.counted(v, res.Payment); status != 0 {
		return status, msg
	}
	if !res.Admitted {
		return http.StatusPaymentRequired, "Insufficient balance for request"
	}
	return 0, ""
}

// confirmAdmission waits for a job admitted ahead of its commit to be
// durably admitted; a non-zero status means it was not (the commit failed,
// or a replica's conflict changed the outcome) and the job must be answered
// with it, its worker's output dropped.
func (j *jobRun) confirmAdmission(ctx context.Context) (int, string) {
	if j.confirm == nil {
		return 0, ""
	}
	confirm := j.confirm
	j.confirm = nil
	return confirm(ctx)
}

// counted updates the ticket metrics for a recorded payment and reports a
// bad ticket in it (the valid tickets before it stay credited).
func (j *jobRun) counted(v *pm.Validation, res ledger.PaymentResult) (int, string) {
	if v == nil {
		return 0, ""
	}
	m := j.o.m
	credited := res.Tickets - res.Replayed
	m.tickets.WithLabelValues("credited").Add(float64(credited))
	m.tickets.WithLabelValues("rejected").Add(float64(len(v.Tickets) - credited))
	m.tickets.WithLabelValues("won").Add(float64(res.Winners))
	m.creditedWei.Add(approx(res.Credited))
	if err := v.Err(); err != nil {
		return http.StatusBadRequest, "Invalid payment: " + err.Error()
	}
	return 0, ""
}

func approx(a ledger.Amount) float64 {
	f, _ := new(big.Float).SetInt(a.Big()).Float64()
	return f
}

// elapsed is how long the worker has had the job, on the ledger's clock:
// the time billed.
func (j *jobRun) elapsed() time.Duration { return j.o.cfg.Ledger.Now().Sub(j.began) }

// billedUnits is how many seconds a job that ran for elapsed pays for, in
// all: ledger.BilledUnits, the one billing rule (whole seconds rounded up,
// at least one, never more than its timeout_seconds). Plain and SSE jobs,
// at the end, at the timeout and while streaming, all bill through it.
func (j *jobRun) billedUnits(elapsed time.Duration) int64 {
	return ledger.BilledUnits(elapsed, time.Duration(j.req.TimeoutSeconds)*time.Second, time.Second)
}

// chargeUpTo charges the account so that, in total, the job has paid for
// the seconds billedUnits gives for elapsed. A charge the hold cannot
// cover is refused with ledger.ErrInsufficientFunds (the caller stops the
// job): a hold never goes below zero.
func (j *jobRun) chargeUpTo(ctx context.Context, elapsed time.Duration) error {
	if j.free() {
		return nil
	}
	units := j.billedUnits(elapsed) - j.charged
	if units <= 0 {
		return nil
	}
	cost, err := ledger.CostOf(j.price, units)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("compute:%s:%d", j.reqID, j.charged+units)
	if _, err := j.o.cfg.Ledger.Charge(ctx, j.account, cost, ledger.Amount{}, key); err != nil {
		if errors.Is(err, ledger.ErrInsufficientFunds) {
			return err // the caller stops the job
		}
		j.log.Error("charge for compute", "units", units, "cost", cost, "err", err)
		return err
	}
	j.charged += units
	j.chargedWei = j.chargedWei.Add(cost)
	j.o.m.chargedWei.Add(approx(cost))
	return nil
}

// close ends the job's hold, releasing what is left to the pool.
func (j *jobRun) close() {
	if j.job == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := j.o.cfg.Ledger.CloseJob(ctx, *j.job); err != nil {
		// The hold stays open and the sweeper releases it after its TTL.
		j.log.Error("close hold; the sweeper will release it", "err", err)
	}
}

// finish ends the job's money side: it charges the seconds billedUnits
// gives for elapsed not charged yet (when charge is set), but never more
// than the hold holds, and closes the hold,
// releasing the rest to the pool, in one ledger step. It returns the
// Livepeer-Balance value (what the sender has left for this capability:
// its pool) and what the hold released.
func (j *jobRun) finish(ctx context.Context, elapsed time.Duration, charge bool) (balance string, released ledger.Amount) {
	if j.free() {
		return "0", ledger.Amount{}
	}
	defer j.chargedHeader()
	units := int64(0)
	if charge {
		units = max(j.billedUnits(elapsed)-j.charged, 0)
	}
	cost, err := ledger.CostOf(j.price, units)
	if err != nil {
		cost, units = ledger.Amount{}, 0
	}
	key := fmt.Sprintf("compute:%s:%d", j.reqID, j.charged+units)
	l := j.o.cfg.Ledger
	var bal, charged ledger.Amount
	if j.job != nil {
		res, err := l.FinishJobUpTo(ctx, *j.job, cost, key)
		if err != nil {
			j.log.Error("finish job; the sweeper will release its hold", "err", err)
			return "", ledger.Amount{}
		}
		j.job = nil
		bal, released, charged = res.PoolBalance, res.Released, res.Charged
	} else if bal, err = l.Balance(ctx, j.account); err != nil {
		// No hold (the job was refused, or its hold is already closed):
		// nothing may be charged, only the balance is reported.
		return "", ledger.Amount{}
	}
	if charged.Cmp(cost) < 0 {
		j.log.Warn("the hold did not cover the compute used; charged what it held", "units", units, "cost", cost, "charged", charged)
	}
	j.charged += units
	j.chargedWei = j.chargedWei.Add(charged)
	j.o.m.chargedWei.Add(approx(charged))
	return wire.BalanceHeader(bal.Big()), released
}

// credited tells the gateway what the request's payment credited.
func (j *jobRun) credited(a ledger.Amount) {
	j.w.Header().Set(wire.HeaderPaymentCredited, a.String())
}

// chargedHeader records what this request was charged, for the gateway's
// books: what the ledger took, which a hold that ran dry keeps below the
// price of the seconds used.
func (j *jobRun) chargedHeader() {
	if j.w == nil {
		return
	}
	j.w.Header().Set(wire.HeaderJobCharged, j.chargedWei.String())
}

// forward sends the job to the worker and relays the answer.
func (j *jobRun) forward(w http.ResponseWriter, r *http.Request, body []byte, timeout time.Duration) {
	o := j.o
	j.w = w
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
	began := time.Now()
	j.began = o.cfg.Ledger.Now()
	resp, err := o.cfg.WorkerClient.Do(wreq)
	// The worker ran while the admission was being committed; nothing of
	// its answer goes out unless that commit held.
	if status, msg := j.confirmAdmission(context.WithoutCancel(r.Context())); status != 0 {
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
			bal, _ := j.finish(ctx, j.elapsed(), true)
			observe("timeout")
			w.Header().Set(wire.HeaderBalance, bal)
			httpError(w, fmt.Sprintf("job timed out: the worker did not answer within %d s", j.req.TimeoutSeconds), http.StatusGatewayTimeout)
		case r.Context().Err() != nil:
			j.finish(ctx, j.elapsed(), true)
			observe("client_gone")
		default:
			o.reg.removeWorker(j.req.Capability, j.slot.url)
			outcome := "worker_unreachable"
			if reached.Load() {
				outcome = "worker_failed"
			}
			bal, _ := j.finish(ctx, j.elapsed(), reached.Load())
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
		bal, _ := j.finish(ctx, 0, false)
		w.Header().Set(wire.HeaderBalance, bal)
		httpError(w, "job not able to be processed, removing capability err=worker auth token failed", http.StatusBadGateway)
		return
	}
	if strings.Contains(resp.Header.Get("Content-Type"), "text/event-stream") {
		observe(j.relaySSE(w, r, resp, wctx, cancel))
		return
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, o.cfg.MaxResponseBytes+1))
	bal, _ := j.finish(ctx, j.elapsed(), true)
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
