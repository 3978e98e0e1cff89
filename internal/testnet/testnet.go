// Package testnet starts byoc nodes, test workers and paying clients on
// loopback for end-to-end tests (in-process or as byoc processes). It is
// test support: it imports "testing".
package testnet

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

	"byoc/ethsig"
	"byoc/internal/workerstub"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/pmledger"
	"byoc/wire"
)

// Keys of two test senders (never fund them).
const (
	KeyA = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	KeyB = "0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
)

const Secret = "s3cret"

// TestEV is the expected value of one ticket in these tests: 1000 wei, the
// price of one second at the tests' usual price, so amounts stay readable.
var TestEV = big.NewInt(1000)

// StartNode starts an in-process orchestrator on loopback with an embedded
// ledger in dir; tweak adjusts the configuration.
func StartNode(t testing.TB, dir string, tweak func(*orchestrator.NodeConfig)) *orchestrator.Node {
	t.Helper()
	cfg := orchestrator.NodeConfig{
		Listen:        "https://127.0.0.1:0",
		AdminListen:   "127.0.0.1:0",
		DataDir:       dir,
		TicketEV:      TestEV,
		SweepInterval: 50 * time.Millisecond,
		Orchestrator: orchestrator.Config{
			Secret:         Secret,
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

// StartWorker starts a test worker (internal/workerstub) serving the
// sample worker's capabilities; e2e tests that want the sample worker
// itself start it and register it with Register all the same.
func StartWorker(t testing.TB) *workerstub.Server {
	t.Helper()
	return workerstub.Start(t, workerstub.Config{})
}

// Worker is a worker Register can register: the stub or the sample worker.
type Worker interface {
	Capability(name string) wire.ExternalCapability
}

// Register registers one of the worker's capabilities under name at
// price wei per second.
func Register(t testing.TB, orchURL string, w Worker, capability, name string, price int64, capacity int) {
	t.Helper()
	c := w.Capability(capability)
	c.Name, c.PricePerUnit, c.PriceScaling, c.Currency, c.Capacity = name, price, 1, "wei", capacity
	if err := workerstub.Register(context.Background(), orchURL, Secret, c); err != nil {
		t.Fatal(err)
	}
}

var Insecure = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}

// Client plays a gateway: it asks for tokens, pays with real signed
// tickets and sends signed jobs.
type Client struct {
	T      testing.TB
	Orch   string
	Signer *ethsig.KeySigner // nil: unsigned
	Sender *pm.Sender
}

func NewClient(t testing.TB, orchURL, key string) *Client {
	c := &Client{T: t, Orch: orchURL}
	if key != "" {
		s, err := ethsig.KeySignerFromHex(key)
		if err != nil {
			t.Fatal(err)
		}
		c.Signer = s
		c.Sender = pm.NewSender(pm.SenderConfig{Signer: s})
	}
	return c
}

func (c *Client) WireSigner() ethsig.Signer {
	if c.Signer == nil {
		return nil
	}
	return c.Signer
}

func (c *Client) Addr() string { return c.Signer.Address().Hex() }

// Token gets a job token; it fails the test unless the status is 200.
func (c *Client) Token(capability, jobID string) *wire.JobToken {
	c.T.Helper()
	status, body := c.TokenRaw(capability, jobID)
	if status != http.StatusOK {
		c.T.Fatalf("token for %s: %d %s", capability, status, body)
	}
	tok, err := wire.DecodeJobToken(body)
	if err != nil {
		c.T.Fatalf("token: %v\n%s", err, body)
	}
	return tok
}

func (c *Client) TokenRaw(capability, jobID string) (int, []byte) {
	c.T.Helper()
	js, err := wire.NewJobSender(c.WireSigner())
	if err != nil {
		c.T.Fatal(err)
	}
	h, _ := wire.EncodeJobSenderHeader(js)
	req, _ := http.NewRequest(http.MethodGet, c.Orch+"/process/token", nil)
	req.Header.Set(wire.HeaderJobSender, h)
	req.Header.Set(wire.HeaderCapability, capability)
	if jobID != "" {
		req.Header.Set(wire.HeaderJobID, jobID)
	}
	resp, err := Insecure.Do(req)
	if err != nil {
		return 0, []byte(err.Error()) // no answer (a node down, in fault tests)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// The answer broke off (a node killed while writing it, in fault
		// tests): no answer either.
		return 0, []byte(err.Error())
	}
	return resp.StatusCode, body
}

// pay returns a Livepeer-Payment header worth n tickets under a fresh
// ticket session from tok.
func (c *Client) Pay(tok *wire.JobToken, n int) string {
	c.T.Helper()
	h, _ := c.PayTickets(tok, n)
	return h
}

// PayTickets is Pay, also returning the ledger keys of the tickets
// (pmledger.TicketKey), to look them up on the orchestrator's books.
func (c *Client) PayTickets(tok *wire.JobToken, n int) (string, []string) {
	c.T.Helper()
	id, err := c.Sender.StartSession(tok.TicketParams, tok.Price)
	if err != nil {
		c.T.Fatal(err)
	}
	b, err := c.Sender.CreateTicketBatch(id, n)
	if err != nil {
		c.T.Fatal(err)
	}
	keys := make([]string, len(b.Tickets))
	for i, tk := range b.Tickets {
		keys[i] = pmledger.TicketKey(tk.Hash)
	}
	return wire.EncodePaymentHeader(b.Payment(pm.LayoutBYOC)), keys
}

// JobSpec describes a job to send.
type JobSpec struct {
	Capability, ID, Path string
	Body                 string
	Unbound              bool // sign without a byoc_job binding, as go-livepeer gateways do
	Timeout              int  // seconds; 0: 30
	Payment              string
	Ctx                  context.Context
	Edit                 func(*wire.JobRequest) // changes the request after signing
	Header               map[string]string      // extra or replacing headers
}

// JobResult is a job's answer.
type JobResult struct {
	Status int
	Header http.Header
	Body   string
	Err    error
}

// job sends a job and reads the whole answer.
func (c *Client) Job(s JobSpec) JobResult {
	c.T.Helper()
	if s.Timeout == 0 {
		s.Timeout = 30
	}
	if s.Ctx == nil {
		s.Ctx = context.Background()
	}
	req := &wire.JobRequest{ID: s.ID, Request: "{}", Parameters: "{}", Capability: s.Capability, TimeoutSeconds: s.Timeout}
	if c.Signer != nil && s.ID != "" && !s.Unbound {
		if err := wire.Bind(req, time.Now().Add(time.Minute)); err != nil {
			c.T.Fatal(err)
		}
	}
	if err := wire.SignJobRequest(c.WireSigner(), req); err != nil {
		c.T.Fatal(err)
	}
	if s.Edit != nil {
		s.Edit(req)
	}
	h, err := wire.EncodeJobRequestHeader(req)
	if err != nil {
		c.T.Fatal(err)
	}
	hr, _ := http.NewRequestWithContext(s.Ctx, http.MethodPost, c.Orch+"/process/request/"+s.Path, strings.NewReader(s.Body))
	hr.Header.Set(wire.HeaderJobRequest, h)
	if strings.HasPrefix(s.Body, "{") {
		hr.Header.Set("Content-Type", "application/json")
	} else {
		hr.Header.Set("Content-Type", "text/plain")
	}
	if s.Payment != "" {
		hr.Header.Set(wire.PaymentHeader, s.Payment)
	}
	for k, v := range s.Header {
		hr.Header.Set(k, v)
	}
	resp, err := Insecure.Do(hr)
	if err != nil {
		return JobResult{Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return JobResult{Status: resp.StatusCode, Header: resp.Header, Body: string(body), Err: err}
}

// admin GETs an admin API path as JSON into v.
func Admin(t testing.TB, n *orchestrator.Node, path string, v any) int {
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
func Balance(t testing.TB, n *orchestrator.Node, ref ledger.Ref) int64 {
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

func Statement(t testing.TB, n *orchestrator.Node, sender, job string) ledger.Statement {
	t.Helper()
	s, err := n.Ledger.Statement(context.Background(), ledger.JobKey{Sender: sender, JobID: job}.Ref(), 0)
	if err != nil {
		t.Fatalf("statement of %s: %v", job, err)
	}
	return s
}

func Pool(sender, capability string) ledger.Ref {
	return ledger.PoolKey{Sender: sender, Capability: capability}.Ref()
}

func Amount(a ledger.Amount) int64 {
	v, _ := a.Int64()
	return v
}

// verify checks every ledger invariant after a sweep.
func Verify(t testing.TB, n *orchestrator.Node) ledger.Report {
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
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func SleepBody(d time.Duration) string { return fmt.Sprintf(`{"duration_ms": %d}`, d.Milliseconds()) }

func B64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
