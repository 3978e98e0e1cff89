package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ethsig"
	"byoc/ledger"
	"byoc/wire"
)

// RemoteSigner pays and signs for a gateway that holds no key: a byoc
// signer (docs/signer.md) signs its job requests, with the customer bound
// in, and makes its jobs' tickets, charging the customer's budget. It is
// the gateway's second Payer. The customer is whoever the signer's auth
// webhook (or Signer-Auth-Id) says the configured headers belong to.
type RemoteSigner struct {
	url      string
	headers  map[string]string
	client   *http.Client
	addr     common.Address
	sender   wire.JobSender
	customer string
}

// NewRemoteSigner asks the signer at url for its address and JobSender
// signature (POST /sign-orchestrator-info) and checks that the one signs
// for the other. headers go with every request (e.g. the customer's API
// key); client nil: one with a 30 s timeout.
func NewRemoteSigner(ctx context.Context, url string, headers map[string]string, client *http.Client) (*RemoteSigner, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	r := &RemoteSigner{url: strings.TrimSuffix(url, "/"), headers: headers, client: client}
	var info wire.SignOrchestratorInfoResponse
	if err := r.post(ctx, wire.RouteSignOrchestratorInfo, nil, &info); err != nil {
		return nil, fmt.Errorf("remote signer %s: %w", url, err)
	}
	if !common.IsHexAddress(info.Address) {
		return nil, fmt.Errorf("remote signer %s: address %q", url, info.Address)
	}
	r.addr = common.HexToAddress(info.Address)
	sig, err := hex.DecodeString(strings.TrimPrefix(info.Signature, "0x"))
	if err != nil || ethsig.Verify(r.addr, wire.SenderSigDigest(info.Address).Bytes(), sig) != nil {
		return nil, fmt.Errorf("remote signer %s: its signature does not verify for %s", url, info.Address)
	}
	r.sender = wire.JobSender{Addr: info.Address, Sig: info.Signature}
	var who wire.BYOCCustomerResponse
	if err := r.post(ctx, wire.RouteBYOCCustomer, nil, &who); err != nil {
		return nil, fmt.Errorf("remote signer %s: who the customer is: %w", url, err)
	}
	r.customer = who.Customer
	return r, nil
}

// Customer is who the signer says the gateway pays for ("" for none): the
// customer its jobs are bound to, whose pool at an orchestrator they draw
// from.
func (r *RemoteSigner) Customer() string { return r.customer }

// Address is the signer's address: the sender of the jobs and tickets.
func (r *RemoteSigner) Address() common.Address { return r.addr }

// SignJob has the signer bind req (with the customer) and sign it.
func (r *RemoteSigner) SignJob(ctx context.Context, req *wire.JobRequest) error {
	var out wire.SignBYOCJobResponse
	if err := r.post(ctx, wire.RouteSignBYOCJob, req, &out); err != nil {
		return err
	}
	if addr, err := wire.VerifyJobSig(out.Request.Sender, &out.Request); err != nil || addr != r.addr {
		return fmt.Errorf("remote signer: the signed job request does not verify (%v)", err)
	}
	if out.Customer != r.customer {
		// The books and token balances are the customer's it started with.
		return fmt.Errorf("remote signer: the job was signed for customer %q, not %q", out.Customer, r.customer)
	}
	*req = out.Request
	return nil
}

// Pay has the signer make the tickets req asks for. The signer keeps each
// ticket session's nonces, so shared and own sessions are paid alike; a
// session the signer finds spent (409) is ErrSessionSpent.
func (r *RemoteSigner) Pay(ctx context.Context, req PayRequest) (Payment, error) {
	if req.Amount.Sign() <= 0 {
		return Payment{}, nil
	}
	tok := req.Token
	if tok == nil || tok.TicketParams == nil || tok.Price == nil {
		return Payment{}, errors.New("a token without ticket params or price")
	}
	body := wire.BYOCPaymentRequest{TicketParams: tok.TicketParams.Marshal(), Price: tok.Price.Marshal(),
		Amount: req.Amount.String(), Capability: req.Capability, JobID: req.JobID, Orchestrator: req.Orchestrator}
	var out wire.BYOCPaymentResponse
	if err := r.post(ctx, wire.RouteGenerateBYOCPayment, body, &out); err != nil {
		var se *signerError
		if errors.As(err, &se) && se.status == http.StatusConflict {
			return Payment{}, fmt.Errorf("%w: %v", ErrSessionSpent, err)
		}
		return Payment{}, err
	}
	p := Payment{Header: out.Payment, Credits: make([]ledger.PaymentCredit, len(out.Credits))}
	for i, c := range out.Credits {
		a, err := ledger.ParseAmount(c.Amount)
		if err != nil {
			return Payment{}, fmt.Errorf("remote signer: credit %q: %w", c.Amount, err)
		}
		p.Credits[i] = ledger.PaymentCredit{Key: c.Key, Amount: a}
	}
	if p.Paid().Cmp(req.Amount) < 0 {
		return Payment{}, fmt.Errorf("remote signer: paid %s wei, less than the %s asked", p.Paid(), req.Amount)
	}
	return p, nil
}

// Share returns a session handle; the signer keeps the nonces.
func (r *RemoteSigner) Share(*wire.JobToken) PaySession { return remoteSession{} }

type remoteSession struct{}

func (remoteSession) Retire() {}

// signerInsufficientBalance is the signer's (and the clearinghouse's)
// status for a customer whose budget cannot pay.
const signerInsufficientBalance = 483

// signerError is a refusal from the signer: its status and envelope.
type signerError struct {
	status        int
	message, code string
}

func (e *signerError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("remote signer: %d %s (%s)", e.status, e.message, e.code)
	}
	return fmt.Sprintf("remote signer: %d %s", e.status, e.message)
}

func (r *RemoteSigner) post(ctx context.Context, route string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+route, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("remote signer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("remote signer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var env struct {
			Error struct{ Message, Code string } `json:"error"`
		}
		json.Unmarshal(b, &env)
		return &signerError{status: resp.StatusCode, message: env.Error.Message, code: env.Error.Code}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("remote signer: answer: %w", err)
	}
	return nil
}
