package signer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"byoc/ledger"
	"byoc/pm"
	"byoc/pmledger"
	"byoc/wire"
)

// byoc's own routes, for BYOC jobs (go-livepeer's signer has none): a
// gateway that holds no key has its job requests signed, with the customer
// bound in, and its jobs' ticket batches made here. Both ask the webhook
// (without a state); the payment route refuses a customer whose budget
// cannot pay, with 483, before signing anything. Signing a job request
// moves no money (its tickets do), so it is not refused for an empty
// budget: the customer may still have credit at the orchestrator.

// BYOCJobBindingTTL is how long a job request the signer signs stays
// acceptable to an orchestrator.
const BYOCJobBindingTTL = 5 * time.Minute

// maxBYOCTickets bounds one BYOC payment's tickets (the orchestrator takes
// at most wire.MaxTicketsPerPayment; a session at most 600 nonces).
const maxBYOCTickets = 500

// customer asks the webhook (no state, so nothing is cached) and returns
// the customer: the webhook's auth_id, else the Signer-Auth-Id header.
func (s *Signer) customer(r *http.Request) (string, error) {
	id := r.Header.Get(HeaderAuthID)
	wh := s.cfg.Webhook
	if wh == nil {
		return id, nil
	}
	rep, err := wh.ask(r, nil)
	if err != nil {
		s.log.Warn("signer: auth webhook failed", "err", err)
		return "", fail(http.StatusInternalServerError, err.Error())
	}
	if *rep.Status != http.StatusOK {
		reason := rep.Reason
		if reason == "" {
			reason = fmt.Sprintf("signer auth rejected request with status %d", *rep.Status)
		}
		return "", &apiError{status: *rep.Status, msg: reason, code: rep.Code}
	}
	if rep.AuthID != "" {
		id = rep.AuthID
	}
	return id, nil
}

func (s *Signer) byocCustomer(w http.ResponseWriter, r *http.Request) {
	cust, err := s.customer(r)
	if err != nil {
		respondAPIError(w, err)
		return
	}
	respondJSON(w, http.StatusOK, wire.BYOCCustomerResponse{Customer: cust})
}

func (s *Signer) signBYOCJob(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	resp, err := s.byocJob(r)
	if err != nil {
		respondAPIError(w, err)
		return
	}
	respondJSON(w, http.StatusOK, resp)
}

func (s *Signer) byocJob(r *http.Request) (*wire.SignBYOCJobResponse, error) {
	var req wire.JobRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	if req.ID == "" || req.Capability == "" || req.TimeoutSeconds <= 0 {
		return nil, fail(http.StatusBadRequest, "a job request needs id, capability and timeout_seconds")
	}
	cust, err := s.customer(r)
	if err != nil {
		return nil, err
	}
	if err := wire.BindFor(&req, s.cfg.Clock.Now().Add(BYOCJobBindingTTL), cust); err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	if err := wire.SignJobRequest(s.cfg.Key, &req); err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	return &wire.SignBYOCJobResponse{Request: req, Customer: cust}, nil
}

func (s *Signer) generateBYOCPayment(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	resp, err := s.byocPay(r)
	if err != nil {
		respondAPIError(w, err)
		return
	}
	respondJSON(w, http.StatusOK, resp)
}

func (s *Signer) byocPay(r *http.Request) (*wire.BYOCPaymentResponse, error) {
	var req wire.BYOCPaymentRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	amount, err := ledger.ParseAmount(req.Amount)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "amount: "+err.Error())
	}
	tp, price := new(wire.TicketParams), new(wire.PriceInfo)
	if err := tp.Unmarshal(req.TicketParams); err != nil || len(req.TicketParams) == 0 {
		return nil, fail(http.StatusBadRequest, fmt.Sprintf("ticket_params: %v", errOr(err, "missing")))
	}
	if err := price.Unmarshal(req.Price); err != nil || price.PricePerUnit <= 0 || price.PixelsPerUnit <= 0 {
		return nil, fail(http.StatusBadRequest, fmt.Sprintf("price: %v", errOr(err, "missing or not positive")))
	}
	if amount.Sign() <= 0 {
		return nil, fail(http.StatusBadRequest, "amount must be positive")
	}
	if req.JobID == "" || req.Capability == "" {
		return nil, fail(http.StatusBadRequest, "job_id and capability are required")
	}
	orchPrice := big.NewRat(price.PricePerUnit, price.PixelsPerUnit)
	if err := checkPrice(orchPrice, ceiling{"configured maximum price", s.cfg.MaxPrice}); err != nil {
		return nil, err
	}
	cust, err := s.customer(r)
	if err != nil {
		return nil, err
	}
	params, err := pm.ParseTicketParams(tp)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "invalid ticket_params: "+err.Error())
	}
	now := s.cfg.Clock.Now()
	sid := params.RecipientRandHash
	s.touch(sid, now)
	if _, err := s.sender.StartSession(tp, price); err != nil {
		if errors.Is(err, pm.ErrTooManySessions) {
			return nil, fail(http.StatusServiceUnavailable, err.Error())
		}
		return nil, fail(http.StatusBadRequest, "invalid ticket_params: "+err.Error())
	}
	perTicket := ledger.CreditFor(params.EV())
	if perTicket.IsZero() {
		return nil, fail(http.StatusBadRequest, "a ticket's expected value is below 1 wei")
	}
	n, _, err := pm.TicketsNeeded(amount.Rat(), perTicket.Rat(), nil)
	if err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	if n > maxBYOCTickets {
		return nil, fail(http.StatusBadRequest, fmt.Sprintf("numTickets %d exceeds maximum of %d", n, maxBYOCTickets))
	}
	if err := s.sender.CheckBatch(sid, n); err != nil {
		return nil, s.byocBatchError(err)
	}
	cost := ledger.AmountFromBig(new(big.Int).Mul(perTicket.Big(), big.NewInt(int64(n))))
	ev := UsageEvent{
		ID: newKey(), SessionID: req.JobID, SessionStatus: "new", Pipeline: "byoc:" + req.Capability,
		RequestID: s.cfg.NewID(), OrchAddress: params.Recipient.Hex(), OrchURL: req.Orchestrator, ManifestID: req.JobID,
		PMSessionID: sid.Hex(), CurrentTime: now.UTC(), CurrentTimeUnix: now.UTC().UnixMilli(),
		PreviousTime: now.UTC(), PreviousTimeUnix: now.UTC().UnixMilli(), BillableSecs: "0.000000000",
		SessionBalance: "0", ComputedFee: amount.String(), Cost: orchPrice.FloatString(10), NumTickets: n,
		AuthID: cust, Spent: cost.String(),
	}
	spend := Spend{Customer: cust, Amount: cost, Key: ev.ID, Event: ev}
	if s.cfg.Budget != nil {
		if err := s.cfg.Budget.Spend(r.Context(), &spend); err != nil {
			if !errors.Is(err, ErrOverBudget) {
				s.log.Error("signer: budget unavailable", "customer", cust, "err", err)
			}
			return nil, budgetError(err)
		}
	}
	var batch *pm.TicketBatch
	if s.cfg.Nonces != nil {
		var first uint32
		if first, err = s.cfg.Nonces.Reserve(r.Context(), sid.Hex(), 0, n, spend.Key); err == nil {
			batch, err = s.sender.CreateTicketBatchAt(sid, first, n)
		}
	} else {
		batch, err = s.sender.CreateTicketBatch(sid, n)
	}
	if err != nil {
		if s.cfg.Budget != nil {
			if rerr := s.cfg.Budget.Refund(context.WithoutCancel(r.Context()), &spend); rerr != nil {
				s.log.Error("signer: refunding a spend after a failed batch", "customer", cust, "key", spend.Key, "err", rerr)
			}
		}
		return nil, s.byocBatchError(err)
	}
	out := &wire.BYOCPaymentResponse{Payment: wire.EncodePaymentHeader(batch.Payment(pm.LayoutBYOC)), Customer: cust,
		Credits: make([]wire.BYOCCredit, len(batch.Tickets))}
	for i, t := range batch.Tickets {
		out.Credits[i] = wire.BYOCCredit{Key: pmledger.TicketKey(t.Hash), Amount: perTicket.String()}
	}
	return out, nil
}

// byocBatchError: spent or stale params need a fresh token (409, the
// gateway asks the orchestrator for one), bad ones are 400.
func (s *Signer) byocBatchError(err error) error {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, pm.ErrTicketParamsExpired), errors.Is(err, pm.ErrSessionExhausted):
		return &apiError{status: http.StatusConflict, msg: err.Error(), code: "fresh_params_needed"}
	case errors.Is(err, pm.ErrFaceValueTooLow), errors.Is(err, pm.ErrTicketEVTooHigh), errors.Is(err, pm.ErrTotalEVTooHigh):
		return fail(http.StatusBadRequest, err.Error())
	}
	return &apiError{status: http.StatusServiceUnavailable, msg: err.Error(), code: CodeBillingUnavailable}
}

func respondAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = fail(http.StatusInternalServerError, err.Error())
	}
	respondError(w, ae)
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}
