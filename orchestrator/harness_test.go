package orchestrator_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/wire"
	"byoc/worker"
)

// Keys of two test senders (never fund them).
const (
	keyA = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	keyB = "0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
)

const secret = "s3cret"

// testEV is the expected value of one ticket in these tests: 1000 wei, the
// price of one second at the tests' usual price, so amounts stay readable.
var testEV = big.NewInt(1000)

// startNode starts an in-process orchestrator on loopback with an embedded
// ledger in dir; tweak adjusts the configuration.
func startNode(t *testing.T, dir string, tweak func(*orchestrator.NodeConfig)) *orchestrator.Node {
	t.Helper()
	cfg := orchestrator.NodeConfig{
		Listen:        "https://127.0.0.1:0",
		AdminListen:   "127.0.0.1:0",
		DataDir:       dir,
		TicketEV:      testEV,
		SweepInterval: 50 * time.Millisecond,
		Orchestrator: orchestrator.Config{
			Secret:         secret,
			MinCompute:     5 * time.Second,
			ChargeInterval: 100 * time.Millisecond,
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := orchestrator.StartNode(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func startWorker(t *testing.T) *worker.Server {
	t.Helper()
	w, err := worker.Start("", worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// register registers one of the worker's capabilities under name at
// price wei per second.
func register(t *testing.T, orchURL string, w *worker.Server, capability, name string, price int64, capacity int) {
	t.Helper()
	c := w.Capability(capability)
	c.Name, c.PricePerUnit, c.PriceScaling, c.Currency, c.Capacity = name, price, 1, "wei", capacity
	if err := worker.Register(context.Background(), orchURL, secret, c, worker.InsecureSkipVerify()); err != nil {
		t.Fatal(err)
	}
}

var insecure = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}

// client plays a gateway: it asks for tokens, pays with real signed
// tickets and sends signed jobs.
type client struct {
	t      *testing.T
	orch   string
	signer *pm.KeySigner // nil: unsigned
	sender *pm.Sender
}

func newClient(t *testing.T, orchURL, key string) *client {
	c := &client{t: t, orch: orchURL}
	if key != "" {
		s, err := pm.KeySignerFromHex(key)
		if err != nil {
			t.Fatal(err)
		}
		c.signer = s
		c.sender = pm.NewSender(pm.SenderConfig{Signer: s})
	}
	return c
}

func (c *client) wireSigner() wire.Signer {
	if c.signer == nil {
		return nil
	}
	return c.signer
}

func (c *client) addr() string { return c.signer.Address().Hex() }

// token gets a job token; it fails the test unless the status is 200.
func (c *client) token(capability, jobID string) *wire.JobToken {
	c.t.Helper()
	status, body := c.tokenRaw(capability, jobID)
	if status != http.StatusOK {
		c.t.Fatalf("token for %s: %d %s", capability, status, body)
	}
	tok, err := wire.DecodeJobToken(body)
	if err != nil {
		c.t.Fatalf("token: %v\n%s", err, body)
	}
	return tok
}

func (c *client) tokenRaw(capability, jobID string) (int, []byte) {
	c.t.Helper()
	js, err := wire.NewJobSender(c.wireSigner())
	if err != nil {
		c.t.Fatal(err)
	}
	h, _ := wire.EncodeJobSenderHeader(js)
	req, _ := http.NewRequest(http.MethodGet, c.orch+"/process/token", nil)
	req.Header.Set(wire.HeaderJobSender, h)
	req.Header.Set(wire.HeaderCapability, capability)
	if jobID != "" {
		req.Header.Set(wire.HeaderJobID, jobID)
	}
	resp, err := insecure.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// pay returns a Livepeer-Payment header worth n tickets under a fresh
// ticket session from tok.
func (c *client) pay(tok *wire.JobToken, n int) string {
	c.t.Helper()
	id, err := c.sender.StartSession(tok.TicketParams, tok.Price)
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := c.sender.CreateTicketBatch(id, n)
	if err != nil {
		c.t.Fatal(err)
	}
	return wire.EncodePaymentHeader(b.Payment(pm.LayoutBYOC))
}

type jobSpec struct {
	capability, id, path string
	body                 string
	unbound              bool // sign without a byoc_job binding, as go-livepeer gateways do
	timeout              int
	payment              string
	ctx                  context.Context
	edit                 func(*wire.JobRequest)
	header               map[string]string
}

type jobResult struct {
	status int
	header http.Header
	body   string
	err    error
}

// job sends a job and reads the whole answer.
func (c *client) job(s jobSpec) jobResult {
	c.t.Helper()
	if s.timeout == 0 {
		s.timeout = 30
	}
	if s.ctx == nil {
		s.ctx = context.Background()
	}
	req := &wire.JobRequest{ID: s.id, Request: "{}", Parameters: "{}", Capability: s.capability, TimeoutSeconds: s.timeout}
	if c.signer != nil && s.id != "" && !s.unbound {
		if err := wire.Bind(req, time.Now().Add(time.Minute)); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := wire.SignJobRequest(c.wireSigner(), req); err != nil {
		c.t.Fatal(err)
	}
	if s.edit != nil {
		s.edit(req)
	}
	h, err := wire.EncodeJobRequestHeader(req)
	if err != nil {
		c.t.Fatal(err)
	}
	hr, _ := http.NewRequestWithContext(s.ctx, http.MethodPost, c.orch+"/process/request/"+s.path, strings.NewReader(s.body))
	hr.Header.Set(wire.HeaderJobRequest, h)
	if strings.HasPrefix(s.body, "{") {
		hr.Header.Set("Content-Type", "application/json")
	} else {
		hr.Header.Set("Content-Type", "text/plain")
	}
	if s.payment != "" {
		hr.Header.Set(wire.PaymentHeader, s.payment)
	}
	for k, v := range s.header {
		hr.Header.Set(k, v)
	}
	resp, err := insecure.Do(hr)
	if err != nil {
		return jobResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return jobResult{status: resp.StatusCode, header: resp.Header, body: string(body), err: err}
}

// admin GETs an admin API path as JSON into v.
func admin(t *testing.T, n *orchestrator.Node, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.AdminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+n.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// balance reads an account's balance from the node's ledger (0 for an
// unknown pool).
func balance(t *testing.T, n *orchestrator.Node, ref ledger.Ref) int64 {
	t.Helper()
	b, err := n.Ledger.Balance(context.Background(), ref)
	if err != nil {
		t.Fatalf("balance %s: %v", ref, err)
	}
	v, ok := b.Int64()
	if !ok {
		t.Fatalf("balance %s too large", b)
	}
	return v
}

func statement(t *testing.T, n *orchestrator.Node, sender, job string) ledger.Statement {
	t.Helper()
	s, err := n.Ledger.Statement(context.Background(), ledger.JobKey{Sender: sender, JobID: job}.Ref(), 0)
	if err != nil {
		t.Fatalf("statement of %s: %v", job, err)
	}
	return s
}

func pool(sender, capability string) ledger.Ref {
	return ledger.PoolKey{Sender: sender, Capability: capability}.Ref()
}

func amount(a ledger.Amount) int64 {
	v, _ := a.Int64()
	return v
}

// verify checks every ledger invariant after a sweep.
func verify(t *testing.T, n *orchestrator.Node) ledger.Report {
	t.Helper()
	if _, err := n.Ledger.ExpireJobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := ledger.Verify(context.Background(), n.Store, ledger.VerifyOptions{Now: n.Ledger.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("ledger invariant violated: %s", p)
	}
	return r
}

// eventually polls cond until it holds or a deadline passes: for effects
// that happen after a request returns (a sweep, a released hold).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sleepBody(d time.Duration) string { return fmt.Sprintf(`{"duration_ms": %d}`, d.Milliseconds()) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
