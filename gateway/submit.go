package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"time"

	"byoc/ledger"
	"byoc/wire"
)

// result sums up one client job for logs and metrics.
type result struct {
	outcome      string
	status       int
	orchestrator string
	attempts     int
	tickets      int
	paid         ledger.Amount
	charged      ledger.Amount
	// post, if set, posts the job's books; it runs after the handler
	// returned.
	post func()
}

// handleJob serves POST /process/request/<path>.
func (g *Gateway) handleJob(w http.ResponseWriter, r *http.Request) {
	g.busy.add()
	defer g.busy.done()
	j, rerr := g.parseJob(w, r)
	if rerr != nil {
		g.m.jobs.WithLabelValues("", "bad_request").Inc()
		http.Error(w, rerr.Msg, rerr.Status)
		return
	}
	g.m.inflight.Inc()
	defer g.m.inflight.Dec()
	log := g.log.With("job_id", j.id, "capability", j.req.Capability)
	w.Header().Set(HeaderJobIDResponse, j.id)
	res := g.run(w, r, j, log)
	done := func() {
		if res.post != nil {
			res.post()
		}
		label := j.req.Capability
		if res.outcome == "no_orchestrator" {
			label = "" // a capability nobody offers: a client-chosen string, not a label
		}
		g.m.jobs.WithLabelValues(label, res.outcome).Inc()
		took := g.cfg.Now().Sub(j.started)
		g.m.jobSeconds.WithLabelValues(label).Observe(took.Seconds())
		lvl := slog.LevelInfo
		if res.outcome != "ok" && res.outcome != "relayed_error" {
			lvl = slog.LevelWarn
		}
		if !log.Enabled(context.Background(), lvl) {
			return // before the amounts are formatted for nothing
		}
		log.Log(context.Background(), lvl, "job done", "outcome", res.outcome, "status", res.status, "orchestrator", res.orchestrator,
			"attempts", res.attempts, "tickets", res.tickets, "paid_wei", res.paid.String(), "charged_wei", res.charged.String(),
			"duration", took)
	}
	if res.post == nil {
		done()
		return
	}
	g.busy.add()
	go func() {
		defer g.busy.done()
		done()
	}()
}

// run finds orchestrators for the job and tries them in order until one
// answers it; it always either answers the client or finds it gone.
func (g *Gateway) run(w http.ResponseWriter, r *http.Request, j *job, log *slog.Logger) result {
	ctx := r.Context()
	jerr := &JobError{Capability: j.req.Capability, JobID: j.id}
	sctx, cancel := context.WithTimeout(ctx, j.search)
	urls, err := g.cfg.Discovery.Orchestrators(sctx)
	cancel()
	if err == nil {
		if urls = filterOrchestrators(urls, j.filter); len(urls) == 0 {
			err = errors.New("the job's parameters.orchestrators include/exclude lists leave none of the known orchestrators")
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return result{outcome: "client_gone"}
		}
		jerr.Reason = err.Error()
		return g.fail(w, jerr, log)
	}
	offers, fails := g.collectOffers(ctx, j, urls)
	jerr.Attempts = fails
	if ctx.Err() != nil {
		return result{outcome: "client_gone"}
	}
	if len(offers) == 0 {
		jerr.Reason = fmt.Sprintf("no usable token from the %d orchestrators asked", len(urls))
		if len(urls) == 1 {
			jerr.Reason = "no usable token from the one orchestrator asked"
		}
	}
	sent, refreshed := 0, false
	for i := 0; i < len(offers); i++ {
		o := offers[i]
		if sent >= g.cfg.MaxAttempts {
			break
		}
		a := g.attempt(ctx, w, j, o, log.With("orchestrator", o.url))
		if a.sent {
			sent++
		}
		if a.done {
			a.res.attempts = sent
			return a.res
		}
		jerr.Attempts = append(jerr.Attempts, a.err)
		g.m.attempts.WithLabelValues(o.url, string(a.err.Stage), outcomeOf(a.err)).Inc()
		g.tokens.forget(o.url, j.req.Capability, o.cached)
		if a.stale && !refreshed {
			// A reused token the orchestrator no longer honours (it restarted
			// with other params, or raised its price): ask it afresh and try
			// it again, once per job.
			refreshed = true
			r := g.freshToken(ctx, j, o.url, g.snapshotOf(o.url, j.req.Capability))
			if r.err != nil {
				jerr.Attempts = append(jerr.Attempts, r.err)
				continue
			}
			log.Info("the orchestrator refused a reused token; trying it again with a fresh one", "orchestrator", o.url, "err", a.err)
			offers = slices.Insert(offers, i+1, r.offer)
			continue
		}
		log.Info("orchestrator failed; trying the next", "orchestrator", o.url, "err", a.err)
	}
	res := g.fail(w, jerr, log)
	res.attempts = sent
	return res
}

// fail answers a job no orchestrator ran: never an empty 200 (D13).
func (g *Gateway) fail(w http.ResponseWriter, jerr *JobError, log *slog.Logger) result {
	status := jerr.Status()
	http.Error(w, jerr.Error(), status)
	outcome := "no_orchestrator"
	if status == http.StatusBadGateway {
		outcome = "failed"
	}
	return result{outcome: outcome, status: status}
}

// attemptOutcome is how one attempt at an orchestrator ended.
type attemptOutcome struct {
	done bool          // the client has its answer, or is gone: stop
	res  result        // when done
	err  *AttemptError // why this orchestrator did not run the job, when not done
	sent bool          // the job request went out
	// stale: the orchestrator refused the reused token's payment before
	// running anything; a fresh token may do.
	stale bool
}

// attemptState is where an attempt is; its steps move it on, in order.
type attemptState uint8

const (
	attemptNew      attemptState = iota
	attemptPaid                  // the hold is reserved and the payment made; nothing has left
	attemptSent                  // the request is on its way (delivery says whether its payment left)
	attemptAnswered              // the orchestrator answered (its status and headers are in)
	attemptBroken                // no answer: a transport error, or given up on at the timeout
	attemptSettled               // the books took the attempt's charge
)

// attempt is one job request to one orchestrator and its books. Its
// steps run top to bottom, each reading what the ones before recorded:
//
//	sign    sign the request (before paying: a signing failure costs
//	        nothing)
//	pay     open the job's hold in the books (drawing prepaid credit) and
//	        pay for the rest                                  → paid
//	send    send the request with the payment; the books
//	        record the payment the moment its headers are written,
//	        alongside the request                             → sent
//	answer  the orchestrator's status and headers             → answered
//	        or none (transport error, timeout)                → broken
//	settle  the charge into the books (capped at the hold)    → settled
//	post    the charge and the close into the ledger: at once, or once
//	        the client has its whole answer
type attempt struct {
	g     *Gateway
	w     http.ResponseWriter
	j     *job
	o     *offer
	id    string // the attempt's job ID
	log   *slog.Logger
	books context.Context // the books are finished even if the client leaves
	hdr   string          // the signed Livepeer header, made before paying

	state attemptState
	hold  *hold   // nil for a free capability: no books
	pay   Payment // what the payer made
	// delivery records whether the request's headers, and so its
	// payment, were written: the tickets are spent once they were.
	delivery *delivery
	began    time.Time     // when the request was sent
	booked   ledger.Amount // the charge settle took into the books
}

// attempt runs the job at one orchestrator: pay, send, and either relay
// the answer (done) or report a failure that allows trying the next
// orchestrator — only when no output has reached the client.
func (g *Gateway) attempt(ctx context.Context, w http.ResponseWriter, j *job, o *offer, log *slog.Logger) attemptOutcome {
	a := &attempt{g: g, w: w, j: j, o: o, id: j.attemptID(), log: log, books: context.WithoutCancel(ctx)}
	// The request is signed before anything is paid: a signer that cannot
	// sign it (a remote one down, refusing) leaves no one charged for
	// tickets that are never sent.
	hdr, err := g.signedHeader(ctx, j, a.id)
	if err != nil {
		var se *signerError
		if errors.As(err, &se) && se.status == signerInsufficientBalance {
			return a.refusedBySigner(se)
		}
		return a.internal(err)
	}
	a.hdr = hdr
	if out, ok := a.payStep(ctx); !ok {
		return out
	}
	rctx, cancel := context.WithTimeout(ctx, j.timeout+g.cfg.JobMargin)
	defer cancel()
	req, out, ok := a.request(rctx)
	if !ok {
		return out
	}
	resp, err := a.send(req)
	if err != nil {
		return a.broken(ctx, rctx, err)
	}
	defer resp.Body.Close()
	return a.answered(resp)
}

// payStep opens the job's hold in the books, drawing the prepaid credit it
// can count on, then has the payer pay for what is missing: state paid.
func (a *attempt) payStep(ctx context.Context) (attemptOutcome, bool) {
	g, j, o := a.g, a.j, a.o
	if o.price.Sign() > 0 {
		required, err := ledger.CostOf(o.price, ledger.UnitsFor(max(j.timeout, g.cfg.MinCompute), time.Second))
		if err != nil {
			return a.fail(StagePayment, 0, ErrPayment, err.Error(), false), false
		}
		// A client's ID may have been used before: its hold is opened before
		// paying, so a reused ID is refused up front. An ID the gateway made
		// up is new: its hold opens while the request is on its way.
		h, err := g.books.open(a.books, o, j.req.Capability, a.id, required, j.timeout+g.cfg.HoldTTLMargin, j.clientID, a.log)
		switch {
		case errors.Is(err, ErrBooks):
			return a.internal(err), false
		case err != nil:
			return a.fail(StagePayment, 0, err, "", false), false
		}
		a.hold = h
		if a.pay, err = g.pay(ctx, j, o, a.id, required.Sub(h.drawn)); err != nil {
			a.cancel()
			var se *signerError
			if errors.As(err, &se) && se.status == signerInsufficientBalance {
				return a.refusedBySigner(se), false
			}
			return a.fail(StagePayment, 0, ErrPayment, err.Error(), false), false
		}
	}
	a.state = attemptPaid
	return attemptOutcome{}, true
}

// request is the signed job request carrying the payment, traced so that
// a.delivery records when its headers are written.
func (a *attempt) request(rctx context.Context) (*http.Request, attemptOutcome, bool) {
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, a.o.service+a.j.path, bytes.NewReader(a.j.body))
	if err != nil {
		a.cancel()
		return nil, a.fail(StageJob, 0, ErrBadToken, err.Error(), false), false
	}
	if ct := a.j.header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if ae := a.j.header.Get("Accept-Encoding"); ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	req.Header.Set(wire.HeaderJobRequest, a.hdr)
	if a.pay.Header != "" {
		req.Header.Set(wire.PaymentHeader, a.pay.Header)
	}
	a.delivery = &delivery{decided: make(chan struct{})}
	return req.WithContext(httptrace.WithClientTrace(rctx, a.delivery.trace())), attemptOutcome{}, true
}

// send sends the request: state sent, then answered or broken. The payment
// is spent once the headers carrying it are written; the books record it
// then, alongside the request (hold.book), so a crash mid-job cannot lose
// it, and not at all if they never were.
func (a *attempt) send(req *http.Request) (*http.Response, error) {
	if a.hold != nil {
		a.hold.book(a.pay.Credits, a.delivery)
	}
	a.state = attemptSent
	a.j.attempted++
	a.began = a.g.cfg.Now()
	resp, err := a.g.cfg.JobClient.Do(req)
	a.delivery.end()
	if err != nil {
		a.state = attemptBroken
		return nil, err
	}
	a.state = attemptAnswered
	return resp, nil
}

// broken ends an attempt the orchestrator did not answer. Nothing reached
// the client. The payment, if it left, is booked; whether the orchestrator
// took it is unknown, so the pool's figures settle before they are
// compared again.
func (a *attempt) broken(ctx, rctx context.Context, err error) attemptOutcome {
	g, o := a.g, a.o
	timedOut := ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded)
	var b bill
	if timedOut && a.delivery.left() {
		// The orchestrator had the job all that time and may charge for
		// all of it: the books take what it can be entitled to,
		// timeout_seconds at its price (at most the hold), never less, so
		// they never count credit it may have used.
		b.charged = g.entitled(o, a.j)
	}
	charged := a.settle(b)
	a.post()
	switch {
	case ctx.Err() != nil:
		return attemptOutcome{done: true, sent: true, res: result{outcome: "client_gone", orchestrator: o.url}}
	case timedOut:
		// The worker may have worked all that time: not run again.
		msg := fmt.Sprintf("gateway timeout: the orchestrator %s did not answer within timeout_seconds (%d) + %s; gave up",
			o.url, a.j.req.TimeoutSeconds, g.cfg.JobMargin)
		http.Error(a.w, msg, http.StatusGatewayTimeout)
		g.stats.failure(o.url, errors.New(msg))
		return attemptOutcome{done: true, sent: true, res: result{outcome: "timeout", status: http.StatusGatewayTimeout,
			orchestrator: o.url, tickets: a.tickets(), paid: a.paid(), charged: charged}}
	}
	g.stats.failure(o.url, err)
	return a.fail(StageJob, 0, ErrTransport, err.Error(), true)
}

// answered deals with the orchestrator's answer: a failure before any
// worker output (retry elsewhere), a refused reused token (retry it
// fresh), or the client's answer, relayed and settled.
func (a *attempt) answered(resp *http.Response) attemptOutcome {
	g, o := a.g, a.o
	status := resp.StatusCode
	if a.hold != nil {
		a.hold.uncredited = uncredited(resp, a.paid())
	}
	_, workerAnswered := resp.Header[wire.HeaderMetadata]
	// A Livepeer-Balance says the orchestrator admitted the job and may
	// have charged for it; else it refused it before that.
	withBalance := resp.Header.Get(wire.HeaderBalance) != ""

	if (status >= 500 && status != http.StatusGatewayTimeout && !workerAnswered) || status == http.StatusTooManyRequests {
		// The orchestrator failed, or is busy with our jobs (429), before
		// any worker output: retry elsewhere.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2*maxErrorDetail))
		charged, claimed := g.chargedFor(o, resp, withBalance, relayResult{}, g.cfg.Now().Sub(a.began))
		a.settle(bill{charged: charged, claimed: claimed, after: g.poolAfter(o, resp, relayResult{complete: true})})
		a.post()
		err := ErrOrchestratorFailed
		if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			err = ErrNoCapacity
		}
		g.stats.failure(o.url, fmt.Errorf("job: %d %s", status, snippet(body)))
		return a.fail(StageJob, status, err, snippet(body), true)
	}

	if o.reused && !workerAnswered && (status == http.StatusBadRequest || status == http.StatusPaymentRequired) {
		// A refusal of a reused token's payment (stale params, a higher
		// price now) is retried with a fresh token; any other 4xx is the
		// client's.
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 2*maxErrorDetail))
		if bytes.HasPrefix(head, []byte("Invalid payment")) || bytes.Contains(head, []byte("Insufficient balance")) {
			// A refused payment (Livepeer-Payment-Credited: 0) left the
			// orchestrator's side as it was.
			paid := a.paid()
			a.settle(bill{after: figure{untouched: paid.Sign() > 0 && a.hold != nil && a.hold.uncredited.Cmp(paid) == 0}})
			a.post()
			return attemptOutcome{sent: true, stale: true, err: &AttemptError{Orchestrator: o.url, Stage: StageJob, Status: status,
				Err: ErrStaleToken, Detail: snippet(head)}}
		}
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	}

	// From here on the answer is the client's: never retried (D2).
	refusedForBalance := false
	if a.hold != nil && (status == http.StatusPaymentRequired || status == http.StatusBadRequest) {
		// Is it the orchestrator's "Insufficient balance"? Then nothing is
		// charged; known before the headers go out, which carry the charge.
		head, _ := io.ReadAll(io.LimitReader(resp.Body, headLen))
		refusedForBalance = bytes.Contains(head, []byte("Insufficient balance"))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	}
	rr := a.relay(resp, a.chargedHeader(resp, refusedForBalance))
	res := result{outcome: "ok", status: status, orchestrator: o.url}
	switch {
	case rr.clientErr != nil:
		res.outcome = "client_gone"
	case status >= 300:
		res.outcome = "relayed_error"
	case rr.upstreamErr != nil:
		a.log.Warn("the orchestrator's answer broke off", "err", rr.upstreamErr, "bytes", rr.bytes)
	}
	if a.hold != nil {
		var b bill
		if refusedForBalance {
			a.log.Warn("the orchestrator refused the job for insufficient balance although the gateway paid for it: is --min-compute below the orchestrator's?",
				"drawn_wei", a.hold.drawn.String(), "paid_wei", a.pay.Paid().String())
		} else {
			// 2xx, or an answer with Livepeer-Balance: it admitted the job.
			b.charged, b.claimed = g.chargedFor(o, resp, status < 300 || withBalance, rr, g.cfg.Now().Sub(a.began))
		}
		b.after = g.poolAfter(o, resp, rr)
		res.tickets, res.paid, res.charged = a.tickets(), a.paid(), a.settle(b)
		// The charge is posted once the client has its whole answer (the
		// handler returns first, so a keep-alive connection is free for
		// the client's next request); WaitIdle and Close wait for it.
		res.post = a.post
	}
	return attemptOutcome{done: true, sent: true, res: res}
}

// chargedHeader is the Livepeer-Job-Charged the client gets: the charge
// the books will take for the orchestrator's own figure — at most what the
// job held (ledger.PendingHold.Charge), nothing for a refusal for
// insufficient balance — not the orchestrator's raw claim; "" when the
// orchestrator sent none, or one the books do not take (then its
// estimate, known only after the answer, is booked instead).
func (a *attempt) chargedHeader(resp *http.Response, refusedForBalance bool) string {
	switch {
	case resp.Header.Get(wire.HeaderJobCharged) == "":
		return ""
	case a.hold == nil || refusedForBalance:
		return "0" // a free job, or a refusal: nothing booked
	}
	claimed, err := ledger.ParseAmount(resp.Header.Get(wire.HeaderJobCharged))
	if err != nil || claimed.Sign() < 0 {
		return ""
	}
	return a.hold.charge(a.paid(), claimed).String()
}

// relay copies the orchestrator's answer to the client as it comes, with
// charged as its Livepeer-Job-Charged (none when "").
func (a *attempt) relay(resp *http.Response, charged string) relayResult {
	status := resp.StatusCode
	sse := status == http.StatusOK && strings.Contains(resp.Header.Get("Content-Type"), "text/event-stream")
	out := a.w.Header()
	copyHeader(out, resp.Header, sse)
	out.Set(wire.HeaderOrchestratorURL, a.o.service)
	if charged != "" {
		out.Set(wire.HeaderJobCharged, charged)
	} else {
		out.Del(wire.HeaderJobCharged)
	}
	if sse {
		out.Set("Cache-Control", "no-cache")
		out.Set("Connection", "keep-alive")
		if _, ok := out[wire.HeaderBalance]; !ok {
			out[wire.HeaderBalance] = []string{""} // go-livepeer's shape (D28); the balance comes in the stream
		}
	}
	a.w.WriteHeader(status)
	a.g.stats.jobDone(a.o.url, a.g.cfg.Now().Sub(a.began))
	if sse {
		return relaySSE(a.w, resp.Body)
	}
	return relayPlain(a.w, resp.Body)
}

// bill is what settle books for an attempt.
type bill struct {
	charged ledger.Amount // what the orchestrator charged, or the gateway's estimate
	claimed bool          // charged is the orchestrator's own figure
	after   figure        // its figure for our pool once it closed the job
}

// settle takes the attempt's charge into the books (memory only): at most
// what the hold holds. It returns what was booked. State settled, once.
func (a *attempt) settle(b bill) ledger.Amount {
	if a.state == attemptSettled || a.hold == nil {
		a.state = attemptSettled
		return a.booked
	}
	a.state = attemptSettled
	a.booked = a.hold.settle(a.paid(), b.charged, b.after)
	a.g.overcharged(a.o, b.claimed, b.charged, a.booked, a.log)
	return a.booked
}

// post writes what settle booked into the ledger: the charge and the
// close of the hold.
func (a *attempt) post() {
	if a.hold == nil {
		return
	}
	a.hold.post(a.books)
	a.g.m.chargedWei.Add(approx(a.booked))
}

// cancel ends an attempt that sent nothing: its hold is closed with
// nothing booked on it.
func (a *attempt) cancel() {
	if a.hold != nil {
		a.hold.cancel(a.books)
	}
}

// paid is what the attempt paid: its payment, if the request carrying it
// was sent and its headers written (asked once the request is over).
func (a *attempt) paid() ledger.Amount {
	if !a.spent() {
		return ledger.Amount{}
	}
	return a.pay.Paid()
}

// tickets is how many tickets the attempt paid.
func (a *attempt) tickets() int {
	if !a.spent() {
		return 0
	}
	return len(a.pay.Credits)
}

// spent says whether the payment left: the request was sent (it is over)
// and its headers were written.
func (a *attempt) spent() bool {
	return a.state >= attemptAnswered && a.delivery.left()
}

func (a *attempt) fail(stage Stage, status int, err error, detail string, sent bool) attemptOutcome {
	return attemptOutcome{sent: sent, err: &AttemptError{Orchestrator: a.o.url, Stage: stage, Status: status, Err: err, Detail: detail}}
}

// refusedBySigner answers the client the remote signer's refusal of its
// customer (483: the budget cannot pay). It is final: every orchestrator
// would be paid from the same budget.
func (a *attempt) refusedBySigner(se *signerError) attemptOutcome {
	a.log.Info("job refused: the remote signer refused the customer", "status", se.status, "reason", se.message)
	http.Error(a.w, "remote signer: "+se.message, se.status)
	return attemptOutcome{done: true, res: result{outcome: "signer_refused", status: se.status, orchestrator: a.o.url}}
}

// internal answers the client 500: the gateway itself failed.
func (a *attempt) internal(err error) attemptOutcome {
	a.log.Error("job refused: internal error", "err", err)
	http.Error(a.w, "gateway error: "+err.Error(), http.StatusInternalServerError)
	return attemptOutcome{done: true, res: result{outcome: "internal", status: http.StatusInternalServerError, orchestrator: a.o.url}}
}

// delivery is what the gateway knows of a request's way out: whether its
// headers — and the payment in them — were written before the request was
// over. The HTTP client's trace records the write; end records the end.
// Whichever comes first decides, once.
type delivery struct {
	once    sync.Once
	decided chan struct{} // closed once decided
	out     bool          // the headers were written (set before decided closes)
}

func (d *delivery) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{WroteHeaders: func() { d.once.Do(func() { d.out = true; close(d.decided) }) }}
}

// end records that the request is over (its response or error is in).
func (d *delivery) end() { d.once.Do(func() { close(d.decided) }) }

// left waits until it is decided and says whether the headers were
// written.
func (d *delivery) left() bool {
	<-d.decided
	return d.out
}

// bindingTTL is how long a bound request stays acceptable: it must reach
// the orchestrator within this (clocks may differ a little).
const bindingTTL = 5 * time.Minute

// signedHeader returns the Livepeer header for attempt id: the client's
// request with the effective search timeouts and id, bound to this
// attempt (a byoc_job binding in parameters naming its ID, capability,
// timeout and expiry, which the signature covers: a captured header cannot
// be replayed as another job, D8; go-livepeer orchestrators ignore the
// key), and signed — or unsigned offchain: sender the zero address, sig "".
func (g *Gateway) signedHeader(ctx context.Context, j *job, id string) (string, error) {
	send := *j.req
	send.ID = id
	send.OrchSearchTimeout, send.OrchSearchRespTimeout = j.search, j.resp
	if g.remote != nil {
		// The remote signer binds it, naming the customer, and signs.
		if err := g.remote.SignJob(ctx, &send); err != nil {
			return "", fmt.Errorf("signing the job: %w", err)
		}
		return wire.EncodeJobRequestHeader(&send)
	}
	if g.signer != nil {
		if err := wire.Bind(&send, g.cfg.Now().Add(bindingTTL)); err != nil {
			return "", fmt.Errorf("binding the job: %w", err)
		}
	}
	if err := wire.SignJobRequest(g.signer, &send); err != nil {
		return "", fmt.Errorf("signing the job: %w", err)
	}
	return wire.EncodeJobRequestHeader(&send)
}

// pay has the payer pay o what is missing from the job's hold (need) for
// attempt id: from the payment session the token's jobs share
// (tokens.go), or, when the token is not kept or its session cannot take
// the payment, from a session of the attempt's own — with fresh params,
// asked for now, when the token was reused. need ≤ 0 pays nothing.
func (g *Gateway) pay(ctx context.Context, j *job, o *offer, id string, need ledger.Amount) (Payment, error) {
	if need.Sign() <= 0 {
		return Payment{}, nil
	}
	for fresh := false; ; fresh = true {
		req := PayRequest{Orchestrator: o.url, Token: o.token, Price: o.price, Amount: need, JobID: id, Capability: j.req.Capability}
		if ct := o.cached; ct != nil && ct.session != nil {
			req.Shared = ct.session
			p, err := g.payer.Pay(ctx, req)
			if !errors.Is(err, ErrSessionSpent) {
				return p, err
			}
			req.Shared = nil
		}
		if !o.reused || fresh {
			return g.payer.Pay(ctx, req)
		}
		// A reused token whose session is spent: ask for a fresh one (it
		// replaces the old in the cache) and pay from it.
		r := g.freshToken(ctx, j, o.url, snapshot{})
		if r.err != nil {
			return Payment{}, fmt.Errorf("fresh ticket params: %w", r.err)
		}
		o = r.offer
	}
}

// chargedFor is what the orchestrator charged the attempt for compute:
// its Livepeer-Job-Charged header (byoc, exact); for a byoc stream, the
// hold's balance at the start (Livepeer-Payment-Balance) minus the balance
// line before [DONE]; else, for an orchestrator that admitted the job
// (go-livepeer), the price times the whole seconds the gateway waited — an
// upper bound of what it charges, so the books never hold more than the
// orchestrator does. claimed says the figure is the orchestrator's own
// (the first two), not the gateway's estimate. The books cap it at what
// the job held (hold.settle).
func (g *Gateway) chargedFor(o *offer, resp *http.Response, admitted bool, rr relayResult, elapsed time.Duration) (charged ledger.Amount, claimed bool) {
	if v := resp.Header.Get(wire.HeaderJobCharged); v != "" {
		if a, err := ledger.ParseAmount(v); err == nil && a.Sign() >= 0 {
			return a, true
		}
	}
	if !admitted {
		return ledger.Amount{}, false
	}
	start, startOK := balanceHeader(resp.Header.Get(wire.HeaderPaymentBalance))
	if rr.sse && o.exact && startOK && rr.endOK && !rr.insufficient {
		return ledger.MaxOf(start.Sub(rr.end), ledger.Amount{}), true
	}
	est, err := ledger.CostOf(o.price, ledger.UnitsFor(elapsed, time.Second))
	if err != nil {
		return ledger.Amount{}, false
	}
	if rr.sse && rr.insufficient && startOK && start.Sign() >= 0 {
		est = ledger.MinAmount(est, start) // a stream never takes more than its hold
	}
	return est, false
}

// entitled is the most an orchestrator may charge a job it was sent:
// timeout_seconds of compute at its price (orchestrators stop the worker
// and the billing there). The books cap it at the hold too.
func (g *Gateway) entitled(o *offer, j *job) ledger.Amount {
	c, err := ledger.CostOf(o.price, ledger.UnitsFor(j.timeout, time.Second))
	if err != nil {
		return ledger.Amount{}
	}
	return c
}

// overcharged deals with an orchestrator whose charge the books could not
// take whole (booked < charged): when the figure was its own claim, that
// is a charge beyond what the job held or was paid — a broken or lying
// orchestrator. The excess is logged and counted, and the orchestrator
// ranks as failed (selection.go), so other orchestrators at its price go
// first for a while. A capped estimate of the gateway's own is only
// logged.
func (g *Gateway) overcharged(o *offer, claimed bool, charged, booked ledger.Amount, log *slog.Logger) {
	if charged.Cmp(booked) <= 0 {
		return
	}
	excess := charged.Sub(booked)
	attrs := []any{"address", o.recipient.Hex(), "claimed_wei", charged.String(), "capped_wei", booked.String(), // log names the orchestrator
		"excess_wei", excess.String()}
	if !claimed {
		log.Debug("gateway books: the estimated charge exceeds the job's hold; booked the hold", attrs...)
		return
	}
	g.m.overcharges.WithLabelValues(o.url).Inc()
	g.m.overchargeWei.WithLabelValues(o.url).Add(approx(excess))
	log.Warn("gateway books: the orchestrator claims a charge beyond what the job held and was paid; booked only that", attrs...)
	g.stats.failure(o.url, fmt.Errorf("claimed a charge of %s wei for a job that held %s", charged, booked))
}

// uncredited is what of the payment sent (paid) the orchestrator says it
// did not credit (Livepeer-Payment-Credited, byoc orchestrators): the whole
// payment when it refused it (stale or bad params, a job it could not
// open). Without the header (go-livepeer), everything sent counts.
func uncredited(resp *http.Response, paid ledger.Amount) ledger.Amount {
	v := resp.Header.Get(wire.HeaderPaymentCredited)
	if v == "" {
		return ledger.Amount{}
	}
	credited, err := ledger.ParseAmount(v)
	if err != nil || credited.Sign() < 0 || credited.Cmp(paid) >= 0 {
		return ledger.Amount{}
	}
	return paid.Sub(credited)
}

// poolAfter is the orchestrator's figure for our pool once it closed the
// job: Livepeer-Balance of a plain answer read to its end (byoc: the pool
// after the hold's release; go-livepeer: the capability's balance).
func (g *Gateway) poolAfter(o *offer, resp *http.Response, rr relayResult) figure {
	if rr.sse || !rr.complete {
		return figure{}
	}
	v, ok := balanceHeader(resp.Header.Get(wire.HeaderBalance))
	if !ok {
		return figure{}
	}
	return figure{ok: true, exact: o.exact, v: v}
}

func balanceHeader(s string) (ledger.Amount, bool) {
	wei, ok, err := wire.ParseBalanceHeader(s)
	if err != nil || !ok {
		return ledger.Amount{}, false
	}
	return ledger.AmountFromBig(wei), true
}
