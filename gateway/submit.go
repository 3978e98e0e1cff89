package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"time"

	"byoc/ledger"
	"byoc/pm"
	"byoc/pmledger"
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

// attempt runs the job at one orchestrator: pay (books first), send, and
// either relay the answer (done) or report a failure that allows trying
// the next orchestrator — only when no output has reached the client.
func (g *Gateway) attempt(ctx context.Context, w http.ResponseWriter, j *job, o *offer, log *slog.Logger) attemptOutcome {
	fail := func(stage Stage, status int, err error, detail string, sent bool) attemptOutcome {
		return attemptOutcome{sent: sent, err: &AttemptError{Orchestrator: o.url, Stage: stage, Status: status, Err: err, Detail: detail}}
	}
	internal := func(err error) attemptOutcome {
		log.Error("job refused: internal error", "err", err)
		http.Error(w, "gateway error: "+err.Error(), http.StatusInternalServerError)
		return attemptOutcome{done: true, res: result{outcome: "internal", status: http.StatusInternalServerError, orchestrator: o.url}}
	}
	id := j.attemptID()
	bookCtx := context.WithoutCancel(ctx) // the books are finished even if the client leaves

	// Pay: open the hold in the books (drawing prepaid credit), then make
	// tickets for what is missing.
	var h *hold
	var pay payment
	if o.price.Sign() > 0 {
		required, err := ledger.CostOf(o.price, ledger.UnitsFor(max(j.timeout, g.cfg.MinCompute), time.Second))
		if err != nil {
			return fail(StagePayment, 0, ErrPayment, err.Error(), false)
		}
		// A client's ID may have been used before: its hold is opened before
		// paying, so a reused ID is refused up front. An ID the gateway made
		// up is new: its hold opens while the request is on its way.
		h, err = g.books.open(bookCtx, o, j.req.Capability, id, required, j.timeout+g.cfg.HoldTTLMargin, j.clientID, log)
		switch {
		case errors.Is(err, ErrBooks):
			return internal(err)
		case err != nil:
			return fail(StagePayment, 0, err, "", false)
		}
		if pay, err = g.pay(ctx, j, o, required.Sub(h.drawn)); err != nil {
			pay.end(g.sender)
			h.cancel(bookCtx)
			return fail(StagePayment, 0, ErrPayment, err.Error(), false)
		}
		defer pay.end(g.sender)
	}
	hdr, err := g.signedHeader(j, id)
	if err != nil {
		if h != nil {
			h.cancel(bookCtx)
		}
		return internal(err)
	}

	rctx, cancel := context.WithTimeout(ctx, j.timeout+g.cfg.JobMargin)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, o.service+j.path, bytes.NewReader(j.body))
	if err != nil {
		if h != nil {
			h.cancel(bookCtx)
		}
		return fail(StageJob, 0, ErrBadToken, err.Error(), false)
	}
	if ct := j.header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if ae := j.header.Get("Accept-Encoding"); ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	req.Header.Set(wire.HeaderJobRequest, hdr)
	if pay.header != "" {
		req.Header.Set(wire.PaymentHeader, pay.header)
	}
	// The payment is spent once the headers carrying it are written: the
	// books record it then, alongside the request (hold.book).
	sent, ended := make(chan struct{}), make(chan struct{})
	var sentOnce sync.Once
	req = req.WithContext(httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
		WroteHeaders: func() { sentOnce.Do(func() { close(sent) }) },
	}))
	if h != nil {
		h.book(pay.credits, sent, ended)
	}
	j.attempted++
	began := g.cfg.Now()
	resp, err := g.cfg.Client.Do(req)
	close(ended)
	tickets, paid := 0, ledger.Amount{}
	if isClosed(sent) {
		tickets, paid = len(pay.credits), pay.credit()
	}
	if err != nil {
		// Nothing reached the client. The payment, if it left, is booked;
		// whether the orchestrator took it is unknown, so the pool's figures
		// settle before they are compared again.
		timedOut := ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded)
		var charged ledger.Amount
		if h != nil {
			if timedOut && isClosed(sent) {
				// The orchestrator had the job all that time and may charge
				// for all of it: the books take what it can be entitled to,
				// timeout_seconds at its price (at most the hold), never
				// less, so they never count credit it may have used.
				charged = g.entitled(o, j)
			}
			charged = h.finish(bookCtx, paid, charged, figure{})
			g.m.chargedWei.Add(approx(charged))
		}
		switch {
		case ctx.Err() != nil:
			return attemptOutcome{done: true, sent: true, res: result{outcome: "client_gone", orchestrator: o.url}}
		case timedOut:
			// The worker may have worked all that time: not run again.
			msg := fmt.Sprintf("gateway timeout: the orchestrator %s did not answer within timeout_seconds (%d) + %s; gave up",
				o.url, j.req.TimeoutSeconds, g.cfg.JobMargin)
			http.Error(w, msg, http.StatusGatewayTimeout)
			g.stats.failure(o.url, errors.New(msg))
			return attemptOutcome{done: true, sent: true, res: result{outcome: "timeout", status: http.StatusGatewayTimeout,
				orchestrator: o.url, tickets: tickets, paid: paid, charged: charged}}
		}
		g.stats.failure(o.url, err)
		return fail(StageJob, 0, ErrTransport, err.Error(), true)
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	if h != nil {
		h.uncredited = uncredited(resp, paid)
	}
	_, workerAnswered := resp.Header[wire.HeaderMetadata]
	balanceHdr := resp.Header.Get(wire.HeaderBalance)

	if (status >= 500 && status != http.StatusGatewayTimeout && !workerAnswered) || status == http.StatusTooManyRequests {
		// The orchestrator failed, or is busy with our jobs (429), before
		// any worker output: retry elsewhere.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2*maxErrorDetail))
		if h != nil {
			// A Livepeer-Balance says the orchestrator admitted the job and
			// may have charged for it; else it refused it before that.
			charged, claimed := g.chargedFor(o, resp, balanceHdr != "", relayResult{}, g.cfg.Now().Sub(began))
			booked := h.finish(bookCtx, paid, charged, g.poolAfter(o, resp, relayResult{complete: true}))
			g.overcharged(o, claimed, charged, booked, log)
			g.m.chargedWei.Add(approx(booked))
		}
		err := ErrOrchestratorFailed
		if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			err = ErrNoCapacity
		}
		g.stats.failure(o.url, fmt.Errorf("job: %d %s", status, snippet(body)))
		return fail(StageJob, status, err, snippet(body), true)
	}

	if o.reused && !workerAnswered && (status == http.StatusBadRequest || status == http.StatusPaymentRequired) {
		// A refusal of a reused token's payment (stale params, a higher
		// price now) is retried with a fresh token; any other 4xx is the
		// client's.
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 2*maxErrorDetail))
		if bytes.HasPrefix(head, []byte("Invalid payment")) || bytes.Contains(head, []byte("Insufficient balance")) {
			if h != nil {
				// A refused payment (Livepeer-Payment-Credited: 0) left the
				// orchestrator's side as it was.
				h.finish(bookCtx, paid, ledger.Amount{}, figure{untouched: paid.Sign() > 0 && h.uncredited.Cmp(paid) == 0})
			}
			return attemptOutcome{sent: true, stale: true, err: &AttemptError{Orchestrator: o.url, Stage: StageJob, Status: status,
				Err: ErrStaleToken, Detail: snippet(head)}}
		}
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	}

	// From here on the answer is the client's: never retried (D2).
	sse := status == http.StatusOK && strings.Contains(resp.Header.Get("Content-Type"), "text/event-stream")
	out := w.Header()
	copyHeader(out, resp.Header, sse)
	out.Set(wire.HeaderOrchestratorURL, o.service)
	if sse {
		out.Set("Cache-Control", "no-cache")
		out.Set("Connection", "keep-alive")
		if _, ok := out[wire.HeaderBalance]; !ok {
			out[wire.HeaderBalance] = []string{""} // go-livepeer's shape (D28); the balance comes in the stream
		}
	}
	w.WriteHeader(status)
	g.stats.jobDone(o.url, g.cfg.Now().Sub(began))
	var rr relayResult
	if sse {
		rr = relaySSE(w, resp.Body)
	} else {
		rr = relayPlain(w, resp.Body)
	}
	res := result{outcome: "ok", status: status, orchestrator: o.url}
	switch {
	case rr.clientErr != nil:
		res.outcome = "client_gone"
	case status >= 300:
		res.outcome = "relayed_error"
	case rr.upstreamErr != nil:
		log.Warn("the orchestrator's answer broke off", "err", rr.upstreamErr, "bytes", rr.bytes)
	}
	if h != nil {
		insufficient := (status == http.StatusPaymentRequired || status == http.StatusBadRequest) &&
			bytes.Contains(rr.head, []byte("Insufficient balance"))
		charged, claimed := ledger.Amount{}, false
		if insufficient {
			log.Warn("the orchestrator refused the job for insufficient balance although the gateway paid for it: is --min-compute below the orchestrator's?",
				"drawn_wei", h.drawn.String(), "paid_wei", pay.credit().String())
		} else {
			// 2xx, or an answer with Livepeer-Balance: it admitted the job.
			charged, claimed = g.chargedFor(o, resp, status < 300 || balanceHdr != "", rr, g.cfg.Now().Sub(began))
		}
		booked := h.settle(paid, charged, g.poolAfter(o, resp, rr))
		g.overcharged(o, claimed, charged, booked, log)
		charged = booked
		res.tickets, res.paid, res.charged = tickets, paid, charged
		// The charge is posted once the client has its whole answer (the
		// handler returns first, so a keep-alive connection is free for
		// the client's next request); WaitIdle and Close wait for it.
		res.post = func() {
			h.post(bookCtx)
			g.m.chargedWei.Add(approx(charged))
		}
	}
	return attemptOutcome{done: true, sent: true, res: res}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
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
func (g *Gateway) signedHeader(j *job, id string) (string, error) {
	send := *j.req
	send.ID = id
	send.OrchSearchTimeout, send.OrchSearchRespTimeout = j.search, j.resp
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

// payment is what one attempt pays: tickets from a session of their own
// or one shared with other jobs reusing the same token.
type payment struct {
	session pm.SessionID
	started bool   // a session of the attempt's own: ended with it
	release func() // a shared session: let go of it
	header  string
	credits []ledger.PaymentCredit // one per ticket, as the orchestrator credits it
}

func (p payment) end(s *pm.Sender) {
	if p.started {
		s.EndSession(p.session)
	}
	if p.release != nil {
		p.release()
	}
}

func (p payment) credit() ledger.Amount { return sumCredits(p.credits) }

// pay makes the tickets that bring the orchestrator's hold for the job up
// by need: n = pm.TicketsNeeded(need, credit per ticket), where a ticket
// earns what the orchestrator credits for it — its EV rounded down to a
// whole wei (ledger.CreditFor), never the exact EV — so n tickets always
// cover need. need ≤ 0 pays nothing. The tickets come from the session
// the token's jobs share (tokens.go), or, when the token is not kept or
// its session cannot take n more nonces, from a session of the attempt's
// own, started from the token's params — fresh ones, asked for now, when
// the token was reused.
func (g *Gateway) pay(ctx context.Context, j *job, o *offer, need ledger.Amount) (payment, error) {
	var p payment
	if need.Sign() <= 0 {
		return p, nil
	}
	tok := o.token
	for fresh := false; ; fresh = true {
		n, perTicket, err := ticketsFor(tok.TicketParams, need)
		if err != nil {
			return p, err
		}
		if ct := o.cached; ct != nil && tok == ct.res.offer.token {
			sid, release, ok, err := g.tokens.take(ct, n)
			if err != nil {
				return p, err
			}
			if ok {
				p.session, p.release = sid, release
				return p, g.makeTickets(&p, n, perTicket)
			}
		}
		if !o.reused || fresh {
			if p.session, err = g.sender.StartSession(tok.TicketParams, tok.Price); err != nil {
				return p, err
			}
			p.started = true
			return p, g.makeTickets(&p, n, perTicket)
		}
		// A reused token whose session is spent: ask for a fresh one (it
		// replaces the old in the cache) and pay from it.
		r := g.freshToken(ctx, j, o.url, snapshot{})
		if r.err != nil {
			return p, fmt.Errorf("fresh ticket params: %w", r.err)
		}
		tok, o = r.offer.token, r.offer
	}
}

// ticketsFor is how many tickets of params pay need, and what the
// orchestrator credits for each.
func ticketsFor(tp *wire.TicketParams, need ledger.Amount) (int, ledger.Amount, error) {
	ev := pm.TicketEV(new(big.Int).SetBytes(tp.FaceValue), new(big.Int).SetBytes(tp.WinProb))
	perTicket := ledger.CreditFor(ev)
	if perTicket.IsZero() {
		return 0, perTicket, fmt.Errorf("a ticket's expected value (%s wei) is below 1 wei", ev.FloatString(3))
	}
	n, _, err := pm.TicketsNeeded(need.Rat(), perTicket.Rat(), nil)
	if err != nil {
		return 0, perTicket, err
	}
	if n > wire.MaxTicketsPerPayment {
		return 0, perTicket, fmt.Errorf("the job needs %d tickets of %s wei (more than %d in one payment): use a shorter timeout_seconds or an orchestrator with a larger ticket EV",
			n, perTicket, wire.MaxTicketsPerPayment)
	}
	return n, perTicket, nil
}

// makeTickets signs n tickets in p's session and encodes the payment.
func (g *Gateway) makeTickets(p *payment, n int, perTicket ledger.Amount) error {
	batch, err := g.sender.CreateTicketBatch(p.session, n)
	if err != nil {
		return err
	}
	p.header = wire.EncodePaymentHeader(batch.Payment(pm.LayoutBYOC))
	p.credits = make([]ledger.PaymentCredit, len(batch.Tickets))
	for i, t := range batch.Tickets {
		p.credits[i] = ledger.PaymentCredit{Key: pmledger.TicketKey(t.Hash), Amount: perTicket}
	}
	return nil
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
