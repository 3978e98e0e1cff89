package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"byoc/internal/serve"
	"byoc/orchestrator/meter"
	"byoc/wire"
)

// streamRoutes mounts the stream API and, when the channels are served
// over HTTP, the trickle channels.
func (o *Orchestrator) streamRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/ai/stream/start", o.handleStreamStart)
	mux.HandleFunc("/ai/stream/update", o.handleStreamUpdate)
	mux.HandleFunc("/ai/stream/stop", o.handleStreamStop)
	mux.HandleFunc("/ai/stream/payment", o.handleStreamPayment)
	if h, ok := o.cfg.Channels.(http.Handler); ok {
		mux.Handle("/ai/trickle/", h)
	}
}

// streamInput is a stream request as parsed, before any money moves.
type streamInput struct {
	signedInput
	id   string // the stream's ID
	body []byte
}

// parseStream reads and checks a stream request: the Livepeer header
// (signature, binding, timeout, details), the payment's sender, the
// stream's ID and the body. On start the ID is the request's id (the
// gateway sets it to the stream ID); on update, stop and payment it is the
// stream_id of the request details, or the id when those name none. As
// go-livepeer, the stream routes take any method.
func (o *Orchestrator) parseStream(w http.ResponseWriter, r *http.Request, start bool) (*streamInput, *refusal) {
	// A go-livepeer gateway's stop has parameters "": no binding.
	si, ref := o.parseSigned(r, "stream", true)
	if ref != nil {
		return nil, ref
	}
	in := &streamInput{signedInput: si}
	req, details := in.req, in.details
	switch {
	case start:
		in.id = req.ID
	case details.StreamID != "" && req.ID != "" && details.StreamID != req.ID:
		return nil, refuse("bad_request", http.StatusBadRequest, "Invalid stream id: the request names stream %q and id %q", details.StreamID, req.ID)
	default:
		// A go-livepeer master gateway's payment has id "" and names the
		// stream in its details only (a legacy payment).
		in.id = cmpOr(details.StreamID, req.ID)
	}
	if err := validStreamID(in.id); err != nil {
		return nil, refuse("bad_stream_id", http.StatusBadRequest, "Invalid stream id: %v", err)
	}
	body, berr := serve.ReadBody(w, r, o.cfg.MaxBodyBytes)
	if berr != nil {
		return nil, &refusal{berr.Reason, berr.Status, berr.Msg}
	}
	in.body = body
	return in, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// handleStreamStart starts a stream: a capacity slot, its hold (the start
// payment and a reservation from the pool; 402 when it cannot cover
// MinCompute), its channels, the worker's /stream/start; then 200 with the
// channels' URLs and Livepeer-Balance.
func (o *Orchestrator) handleStreamStart(w http.ResponseWriter, r *http.Request) {
	in, rf := o.parseStream(w, r, true)
	if rf != nil {
		o.refused(w, "stream", rf)
		return
	}
	var params wire.JobParameters
	if in.req.Parameters != "" {
		if err := json.Unmarshal([]byte(in.req.Parameters), &params); err != nil {
			o.refused(w, "stream", refuse("bad_request", http.StatusBadRequest, "Invalid parameters: %v", err))
			return
		}
	}
	workerBody := map[string]any{}
	if len(bytes.TrimSpace(in.body)) > 0 {
		if err := json.Unmarshal(in.body, &workerBody); err != nil || workerBody == nil {
			o.refused(w, "stream", refuse("bad_body", http.StatusBadRequest, "Invalid stream start body: a JSON object is required"))
			return
		}
	}
	sl, err := o.reg.reserve(in.req.Capability)
	if err != nil {
		o.refused(w, "stream", refuse("no_capacity", http.StatusServiceUnavailable, "No capacity available for capability"))
		return
	}
	if !in.signed && sl.price.Sign() != 0 {
		sl.release()
		o.refused(w, "stream", refuse("unsigned", http.StatusPaymentRequired, "capability %s costs %s wei per second: sign the request and pay with tickets", in.req.Capability, sl.price.RatString()))
		return
	}
	s := &stream{id: in.id, pool: in.pool, slot: sl}
	s.log = o.log.With("stream_id", s.id, "capability", in.req.Capability, "sender", in.pool.Sender.Hex())
	if !o.streams.claim(s) {
		sl.release()
		o.refused(w, "stream", refuse("stream_exists", http.StatusConflict, "stream %s is already running", s.id))
		return
	}
	fail := func() { // before the stream ran: nothing to tell the worker
		o.streams.remove(s)
		sl.release()
	}
	ctx := context.WithoutCancel(r.Context())
	money, adm, err := o.meter.OpenStream(ctx, meter.Request{Pool: in.pool, JobID: s.id, RequestID: newRequestID(),
		Price: sl.price, Timeout: in.timeout, Payment: in.payment, Log: s.log,
		TTL: o.cfg.StreamSettleInterval + o.cfg.StreamGrace + o.cfg.HoldTTLMargin})
	if adm.Paid {
		w.Header().Set(wire.HeaderPaymentCredited, adm.Credited.String())
	}
	if err != nil {
		if adm.Paid {
			// Its tickets are credited to the pool; the stream was
			// charged nothing (the gateway books the same).
			w.Header().Set(wire.HeaderJobCharged, "0")
		}
		fail()
		o.m.streamsStopped.WithLabelValues(StopStartFailed).Inc()
		meterError(w, err)
		return
	}
	s.money = money

	// The channels, and the URLs the worker and the gateway use.
	type channel struct {
		suffix, mime, header, workerKey string
		on                              bool
	}
	urls := map[string]string{}
	for _, c := range []channel{
		{"", "video/MP2T", wire.HeaderPublishURL, "subscribe_url", params.EnableVideoIngress},
		{"-out", "video/MP2T", wire.HeaderSubscribeURL, "publish_url", params.EnableVideoEgress},
		{"-control", "application/json", wire.HeaderControlURL, "control_url", true},
		{"-events", "application/json", wire.HeaderEventsURL, "events_url", true},
		{"-data", "application/jsonl", wire.HeaderDataURL, "data_url", params.EnableDataOutput},
	} {
		if !c.on {
			continue
		}
		name := s.id + c.suffix
		if o.cfg.Channels != nil {
			o.cfg.Channels.Create(name, c.mime)
		}
		s.channels = append(s.channels, name)
		if c.suffix == "-events" {
			s.events = name
		}
		u := o.channelURL(name)
		urls[c.header] = u
		workerBody[c.workerKey] = u // ours win over the gateway's (D21)
	}
	workerBody["gateway_request_id"] = s.id
	wb, _ := json.Marshal(workerBody)

	status, answer, werr := o.callStreamWorker(ctx, s, "/stream/start", "application/json", wb)
	if werr != nil || status > 399 {
		// The worker did not start it: charged what it ran (go-livepeer
		// charges the start call), said in Livepeer-Job-Charged so the
		// gateway's books charge the same; channels closed, slot released.
		if fin, err := s.money.Finish(ctx, o.meter.Now(), StopStartFailed); err != nil {
			s.log.Error("finish a stream that did not start", "err", err)
		} else {
			w.Header().Set(wire.HeaderJobCharged, fin.Total.String())
		}
		if o.cfg.Channels != nil {
			for _, c := range s.channels {
				o.cfg.Channels.Close(c)
			}
		}
		fail()
		o.m.streamsStopped.WithLabelValues(StopStartFailed).Inc()
		switch {
		case werr != nil:
			o.reg.removeWorker(in.req.Capability, sl.url)
			s.log.Warn("worker unreachable on /stream/start; removed", "err", werr)
			httpError(w, "Error sending request to worker", http.StatusBadGateway)
		case status == http.StatusUnauthorized:
			o.reg.removeWorker(in.req.Capability, sl.url)
			httpError(w, "Orchestrator worker failure", http.StatusInternalServerError)
		default:
			w.WriteHeader(status)
			w.Write(answer)
		}
		return
	}
	s.mu.Lock()
	s.state = streamRunning
	s.mu.Unlock()
	o.m.openStreams.Inc()
	h := w.Header()
	for k, v := range urls {
		h.Set(k, v)
	}
	if bal, err := s.money.Balance(ctx, o.meter.Now()); err == nil {
		h.Set(wire.HeaderBalance, wire.BalanceHeader(bal.Big()))
	}
	s.log.Info("stream started", "held", adm.Held)
	w.WriteHeader(http.StatusOK)
}

// lookupStream parses an update, stop or payment and finds its stream:
// 404 when the sender (and customer) has no running stream of that ID (nothing reaches a
// worker, no payment is recorded).
func (o *Orchestrator) lookupStream(w http.ResponseWriter, r *http.Request) (*streamInput, *stream) {
	in, rf := o.parseStream(w, r, false)
	if rf != nil {
		o.refused(w, "stream", rf)
		return nil, nil
	}
	s := o.streams.get(in.id, in.pool.Sender.Hex())
	if s != nil && s.pool.Customer != in.pool.Customer {
		// Another customer of the same signer: not theirs to pay, update
		// or stop.
		s = nil
	}
	if s == nil {
		o.refused(w, "stream", refuse("unknown_stream", http.StatusNotFound, "Stream not found"))
		return nil, nil
	}
	return in, s
}

// pay credits a request's payment, if it has one, to the stream; false
// when the request was answered (an invalid payment).
func (o *Orchestrator) payStream(w http.ResponseWriter, s *stream, p *wire.Payment) (meter.Paid, error, bool) {
	paid, err := s.money.Pay(context.Background(), p, o.meter.Now())
	if p != nil && len(p.TicketSenderParams) > 0 {
		w.Header().Set(wire.HeaderPaymentCredited, paid.Credited.String())
	}
	if errors.Is(err, meter.ErrInvalidPayment) {
		meterError(w, err)
		return paid, err, false
	}
	return paid, err, true
}

// handleStreamUpdate credits the request's payment, if any, and sends the
// body to the worker's /stream/params, relaying its status and body.
func (o *Orchestrator) handleStreamUpdate(w http.ResponseWriter, r *http.Request) {
	in, s := o.lookupStream(w, r)
	if s == nil {
		return
	}
	if _, _, ok := o.payStream(w, s, in.payment); !ok {
		return
	}
	status, answer, err := o.callStreamWorker(r.Context(), s, "/stream/params", "application/json", in.body)
	if err != nil {
		httpError(w, "Error sending request to worker", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	w.Write(answer)
}

// handleStreamStop credits the request's payment, if any, and stops the
// stream (stopStream): 200 with the worker's answer to /stream/stop (200
// and no body when the worker gave none) and Livepeer-Job-Charged, what
// the stream was charged in all.
func (o *Orchestrator) handleStreamStop(w http.ResponseWriter, r *http.Request) {
	in, s := o.lookupStream(w, r)
	if s == nil {
		return
	}
	if _, _, ok := o.payStream(w, s, in.payment); !ok {
		return
	}
	status, answer, charged, stopped := o.stopStream(r.Context(), s, StopByGateway, in.body)
	if !stopped {
		httpError(w, "Stream not found", http.StatusNotFound)
		return
	}
	if !s.money.Free() {
		// A byoc addition, as on jobs: what the stream was charged in all.
		w.Header().Set(wire.HeaderJobCharged, charged.String())
	}
	if status == 0 {
		status, answer = http.StatusOK, nil
	}
	w.WriteHeader(status)
	w.Write(answer)
}

// handleStreamPayment tops the stream's hold up with the payment and
// settles it: 200 with Livepeer-Balance (the hold less what is owed,
// floored, as go-livepeer's); 402 when, credited, the stream still owes
// more than it holds; 400 for an invalid payment.
func (o *Orchestrator) handleStreamPayment(w http.ResponseWriter, r *http.Request) {
	in, s := o.lookupStream(w, r)
	if s == nil {
		return
	}
	paid, err, ok := o.payStream(w, s, in.payment)
	if !ok {
		return
	}
	switch {
	case errors.Is(err, meter.ErrStreamClosed):
		httpError(w, "Stream not found", http.StatusNotFound)
		return
	case err != nil && !errors.Is(err, meter.ErrInsufficientBalance):
		meterError(w, err)
		return
	}
	w.Header().Set(wire.HeaderBalance, wire.BalanceHeader(paid.Balance.Big()))
	if err != nil {
		httpError(w, "Insufficient balance for request", http.StatusPaymentRequired)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// callStreamWorker POSTs body to the stream's worker at path (below its
// registered URL) with X-Stream-Id and its bearer token, and returns the
// status and body (bounded by MaxResponseBytes).
func (o *Orchestrator) callStreamWorker(ctx context.Context, s *stream, path, contentType string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := strings.TrimSuffix(s.slot.url, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set(wire.HeaderStreamID, s.id)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if s.slot.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.slot.token)
	}
	resp, err := o.cfg.WorkerClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, o.cfg.MaxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading the worker's answer: %w", err)
	}
	if int64(len(out)) > o.cfg.MaxResponseBytes {
		return resp.StatusCode, nil, fmt.Errorf("the worker's answer exceeds %d bytes", o.cfg.MaxResponseBytes)
	}
	return resp.StatusCode, out, nil
}
