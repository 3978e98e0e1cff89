// Package transcript gives tests access to the recorded exchanges of a real
// go-livepeer BYOC gateway, orchestrator and workers (master 176aa415c), and
// helpers to replay them against byoc's own nodes.
//
// The two recordings are embedded: Offchain (the cmd/livepeer binary with
// -network offchain, 55 scenarios) and Paid (the same code in-process with
// payments on, 19 scenarios). docs/protocol.md (its introduction)
// says what in them is stable. In short, each scenario lists its exchanges in the order the
// requests arrived, labelled by hop; header names are in Go canonical form,
// Date was dropped and Host added; a nil Status with a TransportError means
// no HTTP response came back.
//
// Values that change from run to run (ports and the URLs that contain them,
// stream-ID suffixes, ticket seeds and signatures, Livepeer-Payment,
// User-Agent, timings) must not be compared literally. The helpers here:
//
//   - Exchange.Request rebuilds a recorded request for another base URL,
//     without Host, Content-Length, User-Agent and Accept-Encoding;
//   - CompareResponse and CompareRequest report the differences between a
//     recorded exchange and what a test observed (status, header names,
//     header values, bodies: text byte for byte after Normalize, JSON by key
//     set, key order, types and values), as a Diffs list the caller filters;
//   - StubWorker plays the worker: it answers with the recorded
//     orchestrator->worker responses and records what it received.
//
// The package is test support: it imports "testing" and is meant to be
// imported only from _test.go files.
package transcript

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
)

//go:embed testdata/byoc-offchain-transcripts.json
var offchainJSON []byte

//go:embed testdata/byoc-paid-transcripts.json
var paidJSON []byte

// Hops, the values of Exchange.Hop.
const (
	HopClientGateway       = "client->gateway"
	HopGatewayOrchestrator = "gateway->orchestrator"
	HopOrchestratorWorker  = "orchestrator->worker"
	// HopWorkerOrchestrator is registration and unregistration (curl or Go
	// playing the worker).
	HopWorkerOrchestrator = "worker->orchestrator"
)

// File is one transcript file.
type File struct {
	MadeWith  MadeWith   `json:"made_with"`
	Notes     []string   `json:"notes"`
	Scenarios []Scenario `json:"scenarios"`
}

// MadeWith says how the recording was made.
type MadeWith struct {
	Implementation string `json:"implementation"`
	Version        string `json:"version"`
	Commit         string `json:"commit,omitempty"`
	Mode           string `json:"mode"`
	Date           string `json:"date"`
	Recording      string `json:"recording"`
	// FixedInputs is set in the paid file only.
	FixedInputs *FixedInputs `json:"fixed_inputs,omitempty"`
}

// FixedInputs are the paid recording's fixed keys, chain state and sender
// settings. Amounts are decimal strings ("1e18" for the three sender
// amounts, as recorded).
type FixedInputs struct {
	SenderPrivateKey     string `json:"sender_private_key"`
	SenderAddress        string `json:"sender_address"`
	RecipientPrivateKey  string `json:"recipient_private_key"`
	RecipientAddress     string `json:"recipient_address"`
	RecipientHMACSecret  string `json:"recipient_hmac_secret"`
	LastInitializedRound int64  `json:"last_initialized_round"`
	RoundBlockHash       string `json:"round_block_hash"`
	LastSeenL1Block      int64  `json:"last_seen_l1_block"`
	TicketEV             string `json:"ticket_ev"`
	RedeemGas            int64  `json:"redeem_gas"`
	TxCostMultiplier     int64  `json:"tx_cost_multiplier"`
	GasPrice             string `json:"gas_price"`
	SenderMaxFloat       string `json:"sender_max_float"`
	SenderDeposit        string `json:"sender_deposit"`
	SenderReserve        string `json:"sender_reserve"`
	GatewayMaxTicketEV   string `json:"gateway_max_ticket_ev"`
	GatewayMaxTotalEV    string `json:"gateway_max_total_ev"`
	DepositMultiplier    int64  `json:"deposit_multiplier"`
	AutoAdjustPrice      bool   `json:"auto_adjust_price"`
	NotFixed             string `json:"not_fixed"`
}

// Scenario is one recorded scenario. Description and ExpectedOutcome are the
// recorder's prose; where they disagree with the exchanges, the exchanges
// win.
type Scenario struct {
	Name            string `json:"name"`
	Description     string `json:"description"`
	ExpectedOutcome string `json:"expected_outcome"`
	// HarnessState is set in the paid file only (18 of 19 scenarios).
	HarnessState *HarnessState `json:"harness_state,omitempty"`
	Exchanges    []Exchange    `json:"exchanges"`
}

// HarnessState holds the paid nodes' internal balances for one capability
// right before and about 300 ms after the scenario. They are not on the
// wire.
type HarnessState struct {
	Capability string    `json:"capability"`
	Before     NodeState `json:"before"`
	After      NodeState `json:"after"`
	// StreamID is the stream the scenario created, when it did.
	StreamID string `json:"stream_id,omitempty"`
	// StartResponse is the gateway's stream-start body, when kept here.
	StartResponse string `json:"start_response,omitempty"`
	// Note explains how the harness drove the scenario.
	Note string `json:"note,omitempty"`
	// SendPaymentForStreamError is the error of the gateway's stream
	// payment, called directly by the harness ("" for none).
	SendPaymentForStreamError *string `json:"sendPaymentForStream_error,omitempty"`
}

// NodeState is a snapshot of the paid harness's balances: exact big.Rat
// strings ("num/den" or an integer), nil when the balance did not exist.
type NodeState struct {
	GatewayBalanceForOrchestrator *string `json:"gateway_balance_for_orchestrator"`
	OrchestratorBalanceForSender  *string `json:"orchestrator_balance_for_sender"`
	OrchestratorFixedPrice        *string `json:"orchestrator_fixed_price"`
	WinningTicketsQueued          int     `json:"winning_tickets_queued"`
}

// Rat parses one of NodeState's balance strings; nil (absent or unparsable)
// gives nil.
func Rat(s *string) *big.Rat {
	if s == nil {
		return nil
	}
	r, ok := new(big.Rat).SetString(*s)
	if !ok {
		return nil
	}
	return r
}

// Exchange is one recorded HTTP exchange.
type Exchange struct {
	Seq    int    `json:"seq"`
	Hop    string `json:"hop"`
	Proto  string `json:"proto"`
	Method string `json:"method"`
	// Path is the request path with its query.
	Path           string      `json:"path"`
	RequestHeaders http.Header `json:"request_headers"`
	// RequestBody is the body as text, or base64 when RequestBodyBase64 is
	// set (only the gRPC startup ping); see RequestBodyBytes.
	RequestBody       string `json:"request_body"`
	RequestBodyBase64 bool   `json:"request_body_base64,omitempty"`
	// Status is nil when no HTTP response came back (TransportError says
	// why).
	Status          *int        `json:"status"`
	ResponseProto   string      `json:"response_proto,omitempty"`
	ResponseHeaders http.Header `json:"response_headers"`
	// ResponseBody is the whole body, or its first part when
	// ResponseBodyTruncated is set.
	ResponseBody string `json:"response_body"`
	// ResponseBodyError is the error that ended reading the body (e.g. the
	// client cancelled an SSE stream).
	ResponseBodyError     string         `json:"response_body_error,omitempty"`
	ResponseBodyTruncated *Truncation    `json:"response_body_truncated,omitempty"`
	ResponseChunks        []Chunk        `json:"response_chunks,omitempty"`
	ResponseChunksSummary *ChunksSummary `json:"response_chunks_summary,omitempty"`
	ResponseTrailers      http.Header    `json:"response_trailers,omitempty"`
	DurationMs            float64        `json:"duration_ms"`
	TransportError        string         `json:"transport_error,omitempty"`
	// Decoded is the recorder's decoding of base64 headers, tokens and
	// payments; not on the wire.
	Decoded json.RawMessage `json:"decoded,omitempty"`
}

// Truncation describes a response body the recorder cut short.
type Truncation struct {
	OriginalLengthBytes int    `json:"original_length_bytes"`
	KeptBytes           int    `json:"kept_bytes"`
	DroppedTail         string `json:"dropped_tail"`
	Why                 string `json:"why"`
}

// Chunk is one read of a streamed response body, Ms milliseconds after the
// response began.
type Chunk struct {
	Ms   int    `json:"ms"`
	Data string `json:"data"`
}

// ChunksSummary counts the chunks of a response whose chunk list was cut.
type ChunksSummary struct {
	Count       int `json:"count"`
	LastChunkMs int `json:"last_chunk_ms"`
}

// Offchain returns a fresh copy of the offchain recording (go-livepeer
// binary, -network offchain; 55 scenarios). Each call parses the embedded
// file again, so callers may modify the result.
func Offchain() *File { return mustParse("offchain", offchainJSON) }

// Paid returns a fresh copy of the paid recording (in-process go-livepeer
// with payments on; 19 scenarios).
func Paid() *File { return mustParse("paid", paidJSON) }

// mustParse decodes an embedded file. The files are part of the package, so
// a failure is a build defect; the package's own tests parse both.
func mustParse(name string, b []byte) *File {
	f, err := parse(b, false)
	if err != nil {
		panic(fmt.Sprintf("transcript: embedded %s file: %v", name, err))
	}
	return f
}

// parse decodes a transcript file; strict refuses unknown keys.
func parse(b []byte, strict bool) (*File, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	if strict {
		d.DisallowUnknownFields()
	}
	f := new(File)
	if err := d.Decode(f); err != nil {
		return nil, err
	}
	return f, nil
}

// Scenario returns the scenario with the given name.
func (f *File) Scenario(name string) (Scenario, bool) {
	for _, s := range f.Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Exchanges returns every exchange of the file on the given hop (all hops
// if hop is ""), in order.
func (f *File) Exchanges(hop string) []Exchange {
	var out []Exchange
	for _, s := range f.Scenarios {
		out = append(out, s.Hop(hop)...)
	}
	return out
}

// Hop returns the scenario's exchanges on hop h, in order (all of them if h
// is "").
func (s Scenario) Hop(h string) []Exchange {
	var out []Exchange
	for _, e := range s.Exchanges {
		if h == "" || e.Hop == h {
			out = append(out, e)
		}
	}
	return out
}

// StatusCode returns the recorded status, or 0 when no response came back.
func (e Exchange) StatusCode() int {
	if e.Status == nil {
		return 0
	}
	return *e.Status
}

// Host returns the recorded Host header: which listener (and so, in the
// recordings, which worker or proxy) the request went to.
func (e Exchange) Host() string { return e.RequestHeaders.Get("Host") }

// RequestBodyBytes returns the request body, decoding base64 when the
// recorder stored it so.
func (e Exchange) RequestBodyBytes() ([]byte, error) {
	if !e.RequestBodyBase64 {
		return []byte(e.RequestBody), nil
	}
	b, err := base64.StdEncoding.DecodeString(e.RequestBody)
	if err != nil {
		return nil, fmt.Errorf("transcript: seq %d: request body: %w", e.Seq, err)
	}
	return b, nil
}

// droppedRequestHeaders are the recorded request headers Request leaves
// out: Host comes from the URL, and Go's client sets the others itself.
var droppedRequestHeaders = map[string]bool{
	"Host":            true,
	"Content-Length":  true,
	"User-Agent":      true,
	"Accept-Encoding": true,
}

// Request rebuilds the recorded request for baseURL (scheme and host, e.g.
// an httptest server's URL): the same method, path with query, headers
// except Host, Content-Length, User-Agent and Accept-Encoding, and body.
func (e Exchange) Request(baseURL string) (*http.Request, error) {
	return e.RequestContext(context.Background(), baseURL)
}

// RequestContext is Request with a context.
func (e Exchange) RequestContext(ctx context.Context, baseURL string) (*http.Request, error) {
	body, err := e.RequestBodyBytes()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(e.Path, "/") {
		return nil, fmt.Errorf("transcript: seq %d: path %q does not start with /", e.Seq, e.Path)
	}
	req, err := http.NewRequestWithContext(ctx, e.Method, strings.TrimSuffix(baseURL, "/")+e.Path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("transcript: seq %d: %w", e.Seq, err)
	}
	for k, vs := range e.RequestHeaders {
		if droppedRequestHeaders[http.CanonicalHeaderKey(k)] {
			continue
		}
		req.Header[k] = append([]string(nil), vs...)
	}
	return req, nil
}
