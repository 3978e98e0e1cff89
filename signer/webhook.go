package signer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultWebhookTimeout is go-livepeer's timeout for the auth webhook.
const DefaultWebhookTimeout = 5 * time.Second

// maxWebhookReply bounds the webhook's answer.
const maxWebhookReply = 1 << 20

// Webhook is the auth webhook: asked, before a payment is signed, whether
// the caller may pay and who the customer is (its auth_id). It speaks
// go-livepeer's protocol, so the Livepeer clearinghouse's /authorize works
// as one.
type Webhook struct {
	// URL is POSTed {"headers": <the request's headers>, "state": <the state>}.
	URL string
	// Headers are set on every webhook request (e.g. the clearinghouse's
	// Authorization: Bearer <secret>).
	Headers map[string]string
	// Client makes the requests; default one with Timeout.
	Client *http.Client
	// Timeout bounds one request; default DefaultWebhookTimeout.
	Timeout time.Duration
}

type webhookBody struct {
	Headers map[string][]string `json:"headers"`
	State   *State              `json:"state,omitempty"`
}

// webhookReply is the webhook's answer (HTTP 200 always; status says).
type webhookReply struct {
	Status   *int      `json:"status,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Code     string    `json:"code,omitempty"`
	Expiry   int64     `json:"expiry,omitempty"`
	AuthID   string    `json:"auth_id,omitempty"`
	MaxPrice *MaxPrice `json:"maxPrice,omitempty"`
}

// ask calls the webhook; a nil reply with an error is the signer's 500.
func (wh *Webhook) ask(r *http.Request, st *State) (*webhookReply, error) {
	body, err := json.Marshal(webhookBody{Headers: r.Header, State: st})
	if err != nil {
		return nil, err
	}
	timeout := wh.Timeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	client := wh.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, wh.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to build signer auth request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range wh.Headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to call remote signer webhook: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxWebhookReply))
	if err != nil {
		return nil, fmt.Errorf("failed to read signer auth response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("signer auth error status %d", resp.StatusCode)
	}
	var rep webhookReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("signer auth invalid response: %w", err)
	}
	if rep.Status == nil || *rep.Status <= 0 {
		return nil, errors.New("signer auth invalid status")
	}
	return &rep, nil
}

// authorize runs the webhook (unless the state's auth has not expired) and
// binds the customer's ID into the state: the webhook's auth_id, else the
// Signer-Auth-Id header; once set it may not change.
func (s *Signer) authorize(r *http.Request, c *call) error {
	var rep *webhookReply
	if wh := s.cfg.Webhook; wh != nil && (c.state.AuthExpiry == 0 || c.now.Unix() > c.state.AuthExpiry) {
		var err error
		if rep, err = wh.ask(r, c.state); err != nil {
			s.log.Warn("signer: auth webhook failed", "err", err)
			return fail(http.StatusInternalServerError, err.Error())
		}
		if *rep.Status != http.StatusOK {
			reason := rep.Reason
			if reason == "" {
				reason = fmt.Sprintf("signer auth rejected request with status %d", *rep.Status)
			}
			return &apiError{status: *rep.Status, msg: reason, code: rep.Code}
		}
		c.state.AuthExpiry = rep.Expiry
		if rep.MaxPrice != nil {
			max, err := parseMaxPrice(rep.MaxPrice, c.req.Type)
			if err != nil {
				return fail(http.StatusBadGateway, "signer auth invalid maxPrice: "+err.Error())
			}
			if err := checkPrice(c.orchPrice, ceiling{"auth webhook maxPrice", max}); err != nil {
				return err
			}
		}
	}
	id := r.Header.Get(HeaderAuthID)
	if rep != nil && rep.AuthID != "" {
		id = rep.AuthID
	}
	if id != "" && c.state.AuthID != id {
		if c.state.AuthID != "" {
			s.log.Warn("signer: auth ID changed", "old", c.state.AuthID, "new", id)
			return fail(http.StatusInternalServerError, "remote signer auth ID changed")
		}
		c.state.AuthID = id
	}
	return nil
}
