package signer

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
	"byoc/ledger"
	"byoc/pm"
	"byoc/wire"
)

// Payment types (the request's "type").
const (
	TypePixels = ""      // bill inPixels
	TypeLive   = "live"  // bill whole seconds since the last call
	TypeLV2V   = "lv2v"  // bill 720p30 pixels since the last call
	TypeFixed  = "fixed" // bill one unit per call
)

// Billing constants of go-livepeer's signer.
const (
	lv2vPixelsPerSecond = 1280 * 720 * 30
	lv2vPreload         = 60 * time.Second
	livePreload         = 10 * time.Second
	// authTokenValid is an orchestrator auth token's lifetime; a token in
	// its last tenth asks for a refresh (480).
	authTokenValid = 30 * time.Minute
)

// MaxPrice is a price ceiling in a request or a webhook's answer:
// go-livepeer's LiveRunnerPriceInfo.
type MaxPrice struct {
	Price    json.Number `json:"price"`
	Currency string      `json:"currency,omitempty"`
	Unit     string      `json:"unit,omitempty"`
}

// RemotePaymentRequest is the body of /generate-live-payment, go-livepeer's
// type of the same name (its name shows in JSON decoding errors). Keys are
// matched case-insensitively.
type RemotePaymentRequest struct {
	State        RemotePaymentStateSig `json:"state,omitempty"`
	Orchestrator []byte                `json:"orchestrator"`
	ManifestID   string
	App          string    `json:"app,omitempty"`
	InPixels     int64     `json:"inPixels"`
	Type         string    `json:"type"`
	MaxPrice     *MaxPrice `json:"maxPrice,omitempty"`
	Capabilities []byte    `json:"capabilities"`
}

// RemotePaymentResponse is the answer of a signed payment.
type RemotePaymentResponse struct {
	Payment  string   `json:"payment"`
	SegCreds string   `json:"segCreds,omitempty"`
	State    StateSig `json:"state"`
}

func (s *Signer) generateLivePayment(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	resp, err := s.pay(r)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = fail(http.StatusInternalServerError, err.Error())
		}
		if ae.status >= 500 {
			s.log.Warn("signer: payment refused", "status", ae.status, "err", ae.msg)
		}
		respondError(w, ae)
		return
	}
	respondJSON(w, http.StatusOK, resp)
}

// call is one /generate-live-payment call being worked out.
type call struct {
	req       RemotePaymentRequest
	info      *wire.OrchestratorInfo
	orchAddr  common.Address
	state     *State
	hasState  bool
	manifest  string
	caps      *wire.Capabilities
	now, last time.Time
	secs      time.Duration // billed time (lv2v, live)
	units     int64
	pixels    int64
	fee       *big.Rat
	orchPrice *big.Rat
	requestID string
	idem      string // the first call's Idempotency-Key, if sent
}

func (s *Signer) pay(r *http.Request) (*RemotePaymentResponse, error) {
	c := &call{requestID: s.cfg.NewID()}
	if err := json.NewDecoder(r.Body).Decode(&c.req); err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	if len(c.req.Orchestrator) == 0 {
		return nil, fail(http.StatusBadRequest, "missing orchestrator")
	}
	c.info = new(wire.OrchestratorInfo)
	if err := c.info.Unmarshal(c.req.Orchestrator); err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	pi := c.info.PriceInfo
	if pi == nil || pi.PricePerUnit == 0 || pi.PixelsPerUnit == 0 {
		return nil, fail(http.StatusBadRequest, "missing or zero priceInfo")
	}
	if pi.PricePerUnit < 0 || pi.PixelsPerUnit < 0 {
		return nil, fail(http.StatusBadRequest, "negative priceInfo")
	}
	if c.info.TicketParams == nil {
		return nil, fail(http.StatusBadRequest, "missing ticketParams in OrchestratorInfo")
	}
	c.orchAddr = common.BytesToAddress(c.info.Address)
	c.idem = r.Header.Get(HeaderIdempotencyKey)
	if len(c.idem) > 255 {
		return nil, fail(http.StatusBadRequest, "Idempotency-Key longer than 255 bytes")
	}
	if err := s.loadState(c); err != nil {
		return nil, err
	}
	c.manifest = c.req.ManifestID
	if c.manifest == "" {
		if c.hasState {
			return nil, fail(http.StatusBadRequest, "missing manifestID")
		}
		c.manifest = s.cfg.NewID()
	}
	if len(c.req.Capabilities) > 0 {
		c.caps = new(wire.Capabilities)
		if err := c.caps.Unmarshal(c.req.Capabilities); err != nil {
			return nil, fail(http.StatusBadRequest, err.Error())
		}
	}
	params, err := pm.ParseTicketParams(c.info.TicketParams)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "invalid ticketParams in OrchestratorInfo: "+err.Error())
	}
	balance := new(big.Rat)
	if c.state.Balance != "" {
		if _, ok := balance.SetString(c.state.Balance); !ok {
			balance.SetInt64(0) // as go-livepeer: an unreadable balance counts as none
		}
	}
	sid := params.RecipientRandHash
	nonce := c.state.SenderNonce
	if c.state.PMSessionID != sid.Hex() {
		nonce = 0
	}
	c.now = s.cfg.Clock.Now()
	// Marked before it starts, so the idle sweep cannot end it under us.
	s.touch(sid, c.now)
	if _, err := s.sender.StartSession(c.info.TicketParams, pi); err != nil {
		if errors.Is(err, pm.ErrTooManySessions) {
			return nil, fail(http.StatusServiceUnavailable, err.Error())
		}
		return nil, fail(http.StatusBadRequest, "invalid ticketParams in OrchestratorInfo: "+err.Error())
	}
	if err := s.sender.SkipTo(sid, nonce); err != nil {
		return nil, err
	}
	if err := s.checkRefresh(c, sid); err != nil {
		return nil, err
	}
	if err := s.billingUnits(c); err != nil {
		return nil, err
	}
	if err := s.checkPrices(c); err != nil {
		return nil, err
	}
	c.fee = new(big.Rat).Mul(big.NewRat(c.state.InitialPricePerUnit, c.state.InitialPixelsPerUnit), new(big.Rat).SetInt64(c.units))
	ev, err := s.sender.EV(sid)
	if err != nil {
		return nil, err
	}
	n, newCredit, err := pm.TicketsNeeded(c.fee, ev, balance)
	if err != nil {
		return nil, fail(http.StatusBadRequest, err.Error())
	}
	// The balance after this call: what it held, plus the tickets, less the fee.
	after := new(big.Rat).Add(balance, newCredit)
	after.Sub(after, c.fee)
	c.state.Balance = after.RatString()
	c.state.LastUpdate = c.now
	c.state.PMSessionID = sid.Hex()
	if n == 0 {
		// Answered with the state, so the client goes on from it (the
		// reference answers without one and the session starves).
		st, err := seal(s.cfg.Key, c.state)
		if err != nil {
			return nil, err
		}
		return nil, &apiError{status: StatusNoTickets, msg: "no tickets", state: &st}
	}
	if n > MaxTicketsPerCall {
		return nil, fail(http.StatusBadRequest, fmt.Sprintf("numTickets %d exceeds maximum of %d", n, MaxTicketsPerCall))
	}
	if err := s.sender.CheckBatch(sid, n); err != nil {
		return nil, s.batchError(c, err)
	}
	last, _ := s.sender.Nonce(sid)
	c.state.SenderNonce = last + uint32(n) // as it will be; the batch sets it below
	if err := s.authorize(r, c); err != nil {
		return nil, err
	}
	if !c.hasState && c.idem != "" && s.cfg.Nonces != nil {
		// Two customers may send the same Idempotency-Key: their states
		// are not one.
		c.state.StateID = firstStateID(c.state.AuthID, c.idem, c.orchAddr)
	}
	cost := ledger.CreditFor(ev)
	cost = ledger.AmountFromBig(new(big.Int).Mul(cost.Big(), big.NewInt(int64(n))))
	ev0 := s.usage(c, n, after, cost)
	idem := c.idem != "" && s.cfg.Nonces != nil
	switch {
	case s.cfg.Nonces != nil && c.hasState:
		// A continuing call is idempotent: sent again with the same state
		// bytes, its spend and its nonces replay, so it is charged once and
		// gets the same tickets. (Without the shared counter a retry would get
		// fresh nonces, so it must be charged again: keys stay random.)
		ev0.ID = callKey(c.req.State.State, sid)
	case idem:
		// A first call has no state to key on: the client's
		// Idempotency-Key does, per customer and ticket session.
		ev0.ID = firstCallKey(c.state.AuthID, c.idem, sid)
	}
	spend := Spend{Customer: c.state.AuthID, App: c.state.App, Amount: cost, Key: ev0.ID, Event: ev0}
	if s.cfg.Budget != nil {
		err := s.cfg.Budget.Spend(r.Context(), &spend)
		if idem && errors.Is(err, ledger.ErrIdempotencyConflict) {
			return nil, &apiError{status: http.StatusConflict, msg: "Idempotency-Key was used for another payment", code: "idempotency_key_reused"}
		}
		if errors.Is(err, ledger.ErrIdempotencyConflict) {
			// The same state for another amount (a time-billed retry that
			// came later, or a client asking twice): a payment of its own,
			// with fresh nonces, charged as such.
			spend.Key = newKey()
			spend.Event.ID = spend.Key
			err = s.cfg.Budget.Spend(r.Context(), &spend)
		}
		if err != nil {
			if !errors.Is(err, ErrOverBudget) {
				s.log.Error("signer: budget unavailable", "customer", spend.Customer, "err", err)
			}
			return nil, budgetError(err)
		}
	}
	batch, err := s.sign(r.Context(), sid, nonce, n, spend.Key)
	if err != nil {
		if s.cfg.Budget != nil {
			if rerr := s.cfg.Budget.Refund(context.WithoutCancel(r.Context()), &spend); rerr != nil {
				s.log.Error("signer: refunding a spend after a failed batch", "customer", spend.Customer, "key", spend.Key, "err", rerr)
			}
		}
		return nil, s.batchError(c, err)
	}
	c.state.SenderNonce = batch.Tickets[len(batch.Tickets)-1].Nonce
	payment := wire.EncodePaymentHeader(batch.Payment(pm.LayoutSegment))
	segCreds, err := s.segCreds(c)
	if err != nil {
		return nil, err
	}
	st, err := seal(s.cfg.Key, c.state)
	if err != nil {
		return nil, err
	}
	return &RemotePaymentResponse{Payment: payment, SegCreds: segCreds, State: st}, nil
}

// sign signs the batch: with the next nonces of this signer's session, or
// with nonces reserved from the shared counter, above the state's.
func (s *Signer) sign(ctx context.Context, sid pm.SessionID, floor uint32, n int, key string) (*pm.TicketBatch, error) {
	if s.cfg.Nonces == nil {
		return s.sender.CreateTicketBatch(sid, n)
	}
	first, err := s.cfg.Nonces.Reserve(ctx, sid.Hex(), floor, n, key)
	if err != nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, msg: "nonces unavailable: " + err.Error(), code: CodeBillingUnavailable}
	}
	return s.sender.CreateTicketBatchAt(sid, first, n)
}

// loadState verifies and reads the request's state, or starts one.
func (s *Signer) loadState(c *call) error {
	st := c.req.State
	c.hasState = len(st.State) != 0 || len(st.Sig) != 0
	if !c.hasState {
		id := s.cfg.NewID()
		if c.idem != "" && s.cfg.Nonces != nil {
			// Sent again, the call starts the same state (named again
			// with the customer once authorized: firstStateID).
			id = firstStateID("", c.idem, c.orchAddr)
		}
		c.state = &State{
			StateID:              id,
			OrchestratorAddress:  c.orchAddr,
			App:                  c.req.App,
			InitialPricePerUnit:  c.info.PriceInfo.PricePerUnit,
			InitialPixelsPerUnit: c.info.PriceInfo.PixelsPerUnit,
			Type:                 c.req.Type,
		}
		return nil
	}
	if err := ethsig.Verify(s.cfg.Key.Address(), st.State, st.Sig); err != nil {
		return fail(http.StatusBadRequest, "invalid sig")
	}
	if err := json.Unmarshal(st.State, &c.state); err != nil || c.state == nil {
		c.state = nil
		return fail(http.StatusBadRequest, "invalid state")
	}
	if c.state.OrchestratorAddress != c.orchAddr {
		return fail(http.StatusBadRequest, "orchestratorAddress mismatch")
	}
	if c.state.App != c.req.App {
		return fail(http.StatusBadRequest, "app mismatch")
	}
	if c.state.Type != "" && c.state.Type != c.req.Type {
		return fail(http.StatusBadRequest, "job type mismatch")
	}
	c.state.Type = c.req.Type
	c.state.SequenceNumber++
	return nil
}

// checkRefresh answers 480 when the orchestrator's auth token is in its
// last tenth or its ticket params expire within a block.
func (s *Signer) checkRefresh(c *call, sid pm.SessionID) error {
	tok := c.info.AuthToken
	if tok == nil {
		return fail(http.StatusBadRequest, "remote signer could not check whether to refresh session: missing auth token")
	}
	refreshAt := time.Unix(tok.Expiration-int64(authTokenValid.Seconds()/10), 0)
	if c.now.After(refreshAt) {
		return s.refresh(c)
	}
	if err := s.sender.CheckBatch(sid, 1); errors.Is(err, pm.ErrTicketParamsExpired) || errors.Is(err, pm.ErrSessionExhausted) {
		return s.refresh(c)
	}
	return nil
}

func (s *Signer) refresh(c *call) error {
	e := fail(StatusRefreshSession, "refresh session for remote signer")
	e.header = http.Header{HeaderOrchestratorURL: {c.info.Transcoder}}
	return e
}

// batchError maps a refused batch: stale or spent params ask for fresh
// ones (480), the rest are the orchestrator's bad params (400).
func (s *Signer) batchError(c *call, err error) error {
	switch {
	case errors.Is(err, pm.ErrTicketParamsExpired), errors.Is(err, pm.ErrSessionExhausted):
		return s.refresh(c)
	case errors.Is(err, pm.ErrFaceValueTooLow), errors.Is(err, pm.ErrTicketEVTooHigh), errors.Is(err, pm.ErrTotalEVTooHigh):
		return fail(http.StatusBadRequest, err.Error())
	}
	return err
}

// billingUnits works out the units this call bills: go-livepeer's rule
// for each type, in exact integer arithmetic.
func (s *Signer) billingUnits(c *call) error {
	c.last = c.state.LastUpdate
	if c.last.IsZero() {
		c.last = c.now
	}
	c.secs = c.now.Sub(c.last)
	switch c.req.Type {
	case TypeLV2V:
		if c.secs <= 0 {
			c.secs = lv2vPreload
		}
		px := new(big.Int).Mul(big.NewInt(lv2vPixelsPerSecond), big.NewInt(int64(c.secs)))
		px.Quo(px, big.NewInt(int64(time.Second)))
		if !px.IsInt64() {
			return fail(http.StatusBadRequest, "billable time out of range")
		}
		c.pixels = px.Int64()
		c.units = c.pixels
	case TypeLive:
		if c.secs <= 0 {
			c.secs = livePreload
		}
		c.units = int64((c.secs + time.Second - 1) / time.Second)
	case TypeFixed:
		c.units = 1
	case TypePixels:
		c.units = c.req.InPixels
	default:
		return fail(http.StatusBadRequest, "invalid job type")
	}
	if c.units <= 0 {
		return fail(http.StatusBadRequest, "missing billable unit or job type")
	}
	return nil
}

// checkPrices compares the orchestrator's price with the configured
// ceiling, the request's and, on a continuing session, its initial price.
func (s *Signer) checkPrices(c *call) error {
	pi := c.info.PriceInfo
	c.orchPrice = big.NewRat(pi.PricePerUnit, pi.PixelsPerUnit)
	reqMax, err := parseMaxPrice(c.req.MaxPrice, c.req.Type)
	if err != nil {
		return fail(http.StatusBadRequest, err.Error())
	}
	var initial *big.Rat
	if c.hasState {
		if c.state.InitialPricePerUnit <= 0 || c.state.InitialPixelsPerUnit <= 0 {
			return fail(http.StatusBadRequest, "invalid initial price in state")
		}
		initial = big.NewRat(c.state.InitialPricePerUnit, c.state.InitialPixelsPerUnit)
	}
	return checkPrice(c.orchPrice,
		ceiling{"configured maximum price", s.cfg.MaxPrice},
		ceiling{"request maxPrice", reqMax},
		ceiling{"initial session price", initial})
}

type ceiling struct {
	source string
	price  *big.Rat
}

func checkPrice(orch *big.Rat, ceilings ...ceiling) error {
	var low ceiling
	for _, c := range ceilings {
		if c.price != nil && (low.price == nil || c.price.Cmp(low.price) < 0) {
			low = c
		}
	}
	if low.price != nil && orch.Cmp(low.price) > 0 {
		return fail(StatusPriceExceeded, fmt.Sprintf("orchestrator price %v exceeds %s ceiling %v", orch.FloatString(3), low.source, low.price.FloatString(3)))
	}
	return nil
}

// parseMaxPrice reads a maxPrice for a payment type: a positive decimal in
// wei, in the type's unit.
func parseMaxPrice(mp *MaxPrice, typ string) (*big.Rat, error) {
	if mp == nil {
		return nil, nil
	}
	price, ok := new(big.Rat).SetString(strings.TrimSpace(mp.Price.String()))
	if !ok || price.Sign() <= 0 {
		return nil, errors.New("maxPrice.price must be a positive decimal")
	}
	if strings.ToLower(strings.TrimSpace(mp.Currency)) != "wei" {
		return nil, errors.New("maxPrice.currency must be wei")
	}
	var unit string
	switch typ {
	case TypeLive:
		unit = "seconds"
	case TypeLV2V:
		unit = "720p-pixel-seconds"
	case TypeFixed:
		unit = "fixed"
	default:
		return nil, errors.New("maxPrice requires payment type live, lv2v, or fixed")
	}
	if u := strings.ToLower(strings.TrimSpace(mp.Unit)); u != unit {
		return nil, fmt.Errorf("maxPrice.unit must be %s for payment type %s", unit, typ)
	}
	return price, nil
}

// segCreds are go-livepeer's segment credentials for an empty segment: the
// manifest ID, sequence 0, the hash of no data, the orchestrator's auth
// token and the request's capabilities, signed over their flattened form.
func (s *Signer) segCreds(c *call) (string, error) {
	hash := crypto.Keccak256(nil)
	flat := make([]byte, 0, len(c.manifest)+64)
	flat = append(flat, c.manifest...)
	flat = append(flat, make([]byte, 32)...) // sequence number 0, left-padded
	flat = append(flat, hash...)
	sig, err := s.cfg.Key.SignPersonal(keccak(flat))
	if err != nil {
		return "", err
	}
	sd := &wire.SegData{
		ManifestId:   []byte(c.manifest),
		Hash:         hash,
		Profiles:     []byte("invalid"),
		Sig:          sig,
		Capabilities: c.caps,
		AuthToken:    c.info.AuthToken,
	}
	return base64.StdEncoding.EncodeToString(sd.Marshal()), nil
}

func keccak(b []byte) []byte { return crypto.Keccak256(b) }

// callKey names a continuing call by what makes it one: the exact state
// bytes it continues (signed by this signer, so no two clients share them
// unless one resends the other's answer) and the ticket session. Sent
// again, the call has the same key, the same floor nonce and the same
// amount, so its spend and its nonce reservation both replay.
func callKey(state []byte, sid pm.SessionID) string {
	h := crypto.Keccak256(state, sid[:])
	return "c" + hex.EncodeToString(h[:15])
}

// firstStateID is the state ID of a first call sent with an
// Idempotency-Key: the same for the same customer, key and orchestrator.
func firstStateID(customer, key string, orch common.Address) string {
	h := crypto.Keccak256([]byte("state"), []byte(customer), []byte{0}, []byte(key), orch[:])
	return hex.EncodeToString(h[:4])
}

// firstCallKey names a first call by the client's Idempotency-Key, within
// the customer's calls and the ticket session: sent again, its spend and
// its nonce reservation replay.
func firstCallKey(customer, key string, sid pm.SessionID) string {
	h := crypto.Keccak256([]byte(customer), []byte{0}, []byte(key), sid[:])
	return "f" + hex.EncodeToString(h[:15])
}
