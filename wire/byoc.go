package wire

// BYOC ("bring your own container") protocol types and codecs: the HTTP
// headers, the JSON structures carried in them and in bodies, the two
// signatures a gateway makes, and the balance representations of
// go-livepeer's BYOC gateway and orchestrator (docs/protocol.md §3–§5, §8.3).
//
// Encoding is byte-compatible with go-livepeer master 176aa415c: the structs
// below have the same JSON keys in the same order, so encoding/json produces
// the bytes the reference produces. Decoding follows encoding/json too (keys
// match case-insensitively, the last duplicate wins, int fields reject
// floats), with these differences, all stricter, each returning a documented
// error instead of misbehaving later:
//
//   - headers and token bodies are size-capped;
//   - a JobRequest's timeout_seconds must be between 1 and MaxJobTimeoutSeconds
//     (go-livepeer accepts negative and huge values, defect D14);
//   - a capability registration with an unsupported currency is an error, not
//     a panic (D11).
//
// The signatures themselves (EIP-191 digest, signing, recovery with the
// low-s rule) are package ethsig's; this file only says which bytes are
// signed and how a signature is written in a header.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
)

// BYOC header names (docs/protocol.md §3). The Livepeer-Payment header is
// PaymentHeader.
const (
	// HeaderJobRequest carries a JobRequest: standard padded base64 of its
	// JSON. Client → gateway unsigned; gateway → orchestrator signed.
	HeaderJobRequest = "Livepeer"
	// HeaderJobSender carries a JobSender (base64 JSON {"addr","sig"}) on
	// GET /process/token. Despite the name it is not a bare address.
	HeaderJobSender = "Livepeer-Eth-Address"
	// HeaderCapability names the capability of a token request, raw. It is
	// one name, although go-livepeer's error text says "comma separated".
	HeaderCapability = "Livepeer-Capability"
	// HeaderJobID selects the per-job balance a token reports (go-livepeer
	// branch byoc-per-job-balance only; master gateways never send it).
	HeaderJobID = "Livepeer-Job-Id"
	// HeaderPayment is PaymentHeader, repeated here for completeness.
	HeaderPayment = PaymentHeader
	// HeaderBalance is the orchestrator's balance for the sender after a
	// job, stream start or stream payment: a decimal integer string of wei
	// (see BalanceHeader), relayed by the gateway to the client on jobs.
	HeaderBalance = "Livepeer-Balance"
	// HeaderPaymentBalance replaces HeaderBalance on SSE job answers: the
	// balance before any charge for the job (defect D28).
	HeaderPaymentBalance = "Livepeer-Payment-Balance"
	// HeaderJobCharged is a byoc addition on a job's answer: what this
	// request was charged for compute, decimal wei, so a gateway can post
	// the exact charge to its own books (go-livepeer gateways ignore it).
	HeaderJobCharged = "Livepeer-Job-Charged"

	// HeaderPaymentCredited is what the payment sent with a job request
	// credited, in wei, on a byoc orchestrator's answer to it: 0 when the
	// payment was refused whole (bad params, a replay, a job that could not
	// be opened), so a gateway books only what the orchestrator took.
	HeaderPaymentCredited = "Livepeer-Payment-Credited"
	// HeaderOrchSearchTimeout and HeaderOrchSearchRespTimeout are Go duration
	// strings a client may send to a gateway; go-livepeer ignores both (D1).
	HeaderOrchSearchTimeout     = "Livepeer-Orch-Search-Timeout"
	HeaderOrchSearchRespTimeout = "Livepeer-Orch-Search-Resp-Timeout"
	// HeaderMetadata is copied verbatim from the worker to the client (empty
	// when the worker sent none).
	HeaderMetadata = "X-Metadata"
	// HeaderOrchestratorURL tells the client which orchestrator ran its job
	// (the token's service_addr).
	HeaderOrchestratorURL = "X-Orchestrator-Url"
	// Trickle channel URLs an orchestrator returns on a successful
	// /ai/stream/start (docs/protocol.md §9). Control and events are always set.
	HeaderControlURL   = "X-Control-Url"
	HeaderEventsURL    = "X-Events-Url"
	HeaderPublishURL   = "X-Publish-Url"
	HeaderSubscribeURL = "X-Subscribe-Url"
	HeaderDataURL      = "X-Data-Url"
	// HeaderStreamID names the stream on orchestrator → worker stream calls.
	HeaderStreamID = "X-Stream-Id"
)

// Limits on BYOC input.
const (
	// MaxJobHeaderLen bounds the length, in bytes, of a Livepeer or
	// Livepeer-Eth-Address header value the decoders accept. A signed
	// request with small request/parameters strings is about 600 bytes.
	MaxJobHeaderLen = 64 << 10
	// MaxJobTokenLen bounds the size of a JobToken body DecodeJobToken
	// accepts; go-livepeer's tokens are under 1 KB.
	MaxJobTokenLen = 64 << 10
	// MaxJobTimeoutSeconds is the largest timeout_seconds accepted (24 h).
	MaxJobTimeoutSeconds = 24 * 60 * 60
	// MaxCapabilityCapacity bounds ExternalCapability.Capacity.
	MaxCapabilityCapacity = 100000
	// MaxCapabilityNameLen bounds the length of a capability name.
	MaxCapabilityNameLen = 256
)

// ZeroAddressHex is the sender address an unsigned (offchain) node sends:
// the zero address in the 0x-prefixed form go-livepeer uses.
const ZeroAddressHex = "0x0000000000000000000000000000000000000000"

// Errors returned by the BYOC codecs. Decoders wrap them with the name of the
// header or field at fault; compare with errors.Is.
var (
	// ErrJobHeaderMissing: the Livepeer or Livepeer-Eth-Address header is
	// absent or empty.
	ErrJobHeaderMissing = errors.New("wire: BYOC header missing")
	// ErrJobHeaderTooLarge: the header value is longer than MaxJobHeaderLen.
	ErrJobHeaderTooLarge = errors.New("wire: BYOC header too large")
	// ErrJobHeaderBase64: the header value is not standard, padded base64.
	ErrJobHeaderBase64 = errors.New("wire: BYOC header is not valid base64")
	// ErrJobHeaderJSON: the decoded header is not the expected JSON object.
	// The encoding/json error is wrapped too.
	ErrJobHeaderJSON = errors.New("wire: BYOC header is not valid JSON")

	// ErrJobNoTimeout: timeout_seconds is missing or 0. The text is
	// go-livepeer's, so an orchestrator can answer with err.Error() exactly
	// as the reference does (DecodeJobRequestHeader returns it unwrapped).
	ErrJobNoTimeout = errors.New("no timeout_seconds set with request, timeout_seconds is required")
	// ErrJobNegativeTimeout: timeout_seconds is negative. go-livepeer
	// accepts it and later panics or expires at once (D14); we refuse it.
	ErrJobNegativeTimeout = errors.New("wire: timeout_seconds must be positive")
	// ErrJobTimeoutTooLarge: timeout_seconds exceeds MaxJobTimeoutSeconds.
	ErrJobTimeoutTooLarge = errors.New("wire: timeout_seconds too large")
	// ErrJobRequestNotJSON: the JobRequest's request string is not a JSON
	// text decodable into JobRequestDetails.
	ErrJobRequestNotJSON = errors.New("wire: job request field is not valid JSON")
	// ErrJobParametersNotJSON: the JobRequest's parameters string is not a
	// JSON text decodable into JobParameters.
	ErrJobParametersNotJSON = errors.New("wire: job parameters field is not valid JSON")
	// ErrJobInvalidUTF8: a string to be encoded is not valid UTF-8, so its
	// JSON encoding would not carry the signed bytes.
	ErrJobInvalidUTF8 = errors.New("wire: BYOC string is not valid UTF-8")

	// ErrSigText: a signature string is not "", "0x", or (0x-prefixed or
	// bare) hex of at most 65 bytes.
	ErrSigText = errors.New("wire: malformed signature text")
	// ErrSenderAddress: a sender address is not "0x" followed by 40 hex
	// digits (any case).
	ErrSenderAddress = errors.New("wire: malformed sender address")
	// ErrUnsigned: the signature is empty ("" or "0x"). The verifiers return
	// the parsed address with it, so an offchain node may accept the
	// request.
	ErrUnsigned = errors.New("wire: request is not signed")
	// ErrBadSignature: the signature is not 65 bytes, has a high s or a v
	// other than 27/28, cannot be recovered, or was made by another key. It
	// is ethsig's error, which makes and checks every signature.
	ErrBadSignature = ethsig.ErrInvalidSignature

	// ErrJobTokenTooLarge: a token body is larger than MaxJobTokenLen.
	ErrJobTokenTooLarge = errors.New("wire: job token too large")
	// ErrJobTokenJSON: a token body is not a valid JobToken. The
	// encoding/json error is wrapped too.
	ErrJobTokenJSON = errors.New("wire: job token is not valid JSON")
	// ErrJobTokenPrice: the token's price is missing or unusable
	// (negative price, or pixelsPerUnit < 1 with a non-zero price).
	ErrJobTokenPrice = errors.New("wire: job token price unusable")

	// ErrCapabilityInvalid: a capability registration failed Validate.
	ErrCapabilityInvalid = errors.New("wire: invalid capability registration")
	// ErrCapabilityCurrency: the registration's currency is not "", "wei"
	// or "eth". go-livepeer panics here without a price feed (D11).
	ErrCapabilityCurrency = errors.New("wire: unsupported capability currency")
)

// ---- JobRequest: the Livepeer header ----

// JobRequest is the JSON carried in the Livepeer header. The field order and
// keys are go-livepeer's, so json.Marshal (and EncodeJobRequestHeader)
// produces the reference gateway's exact bytes: all ten keys, always, with
// "" for unset strings. OrchSearchTimeout and OrchSearchRespTimeout have no
// JSON tag in go-livepeer, so their keys are the Go field names.
type JobRequest struct {
	// ID is the client's job ID (any value, may be empty). On stream start
	// the gateway sets it to the stream ID.
	ID string `json:"id"`
	// Request must be a JSON text (JobRequestDetails); see Details.
	Request string `json:"request"`
	// Parameters must be a JSON text (JobParameters); see Params. The
	// go-livepeer gateway's own stop request sends "".
	Parameters string `json:"parameters"`
	// Capability is the capability name.
	Capability string `json:"capability"`
	// CapabilityURL is passed through by gateways and overwritten by the
	// orchestrator; it is not trusted.
	CapabilityURL string `json:"capability_url"`
	// Sender is "0x" + the EIP-55 address of the signer.
	Sender string `json:"sender"`
	// Sig is "0x" + lower-case hex of the 65-byte job signature, or "" when
	// unsigned (see SignJobRequest, ParseSigText).
	Sig string `json:"sig"`
	// TimeoutSeconds is required: 1..MaxJobTimeoutSeconds.
	TimeoutSeconds int `json:"timeout_seconds"`
	// OrchSearchTimeout and OrchSearchRespTimeout are set by the go-livepeer
	// gateway before signing (1 s and 500 ms in practice, 0 in its own stop
	// and payment requests); encoded as integer nanoseconds.
	OrchSearchTimeout     time.Duration `json:"OrchSearchTimeout"`
	OrchSearchRespTimeout time.Duration `json:"OrchSearchRespTimeout"`
}

// SignedMessage returns the bytes the job signature covers: Request
// immediately followed by Parameters. Nothing else is covered (docs/protocol.md
// §5.2, defect D8).
func (r *JobRequest) SignedMessage() []byte {
	b := make([]byte, 0, len(r.Request)+len(r.Parameters))
	b = append(b, r.Request...)
	return append(b, r.Parameters...)
}

// Timeout returns TimeoutSeconds as a duration (0 if it is out of range).
func (r *JobRequest) Timeout() time.Duration {
	if r.TimeoutSeconds < 1 || r.TimeoutSeconds > MaxJobTimeoutSeconds {
		return 0
	}
	return time.Duration(r.TimeoutSeconds) * time.Second
}

// CheckTimeout returns ErrJobNoTimeout (unwrapped), ErrJobNegativeTimeout or
// ErrJobTimeoutTooLarge when TimeoutSeconds is not in 1..MaxJobTimeoutSeconds.
func (r *JobRequest) CheckTimeout() error {
	switch {
	case r.TimeoutSeconds == 0:
		return ErrJobNoTimeout
	case r.TimeoutSeconds < 0:
		return fmt.Errorf("%w: %d", ErrJobNegativeTimeout, r.TimeoutSeconds)
	case r.TimeoutSeconds > MaxJobTimeoutSeconds:
		return fmt.Errorf("%w: %d s, limit %d s", ErrJobTimeoutTooLarge, r.TimeoutSeconds, MaxJobTimeoutSeconds)
	}
	return nil
}

// Details decodes Request into JobRequestDetails. Like go-livepeer, any JSON
// object is accepted and unknown keys are ignored; anything that does not
// decode into the struct (plain text, "", an array, a string) is an error
// wrapping ErrJobRequestNotJSON and the encoding/json error.
func (r *JobRequest) Details() (JobRequestDetails, error) {
	var d JobRequestDetails
	if err := json.Unmarshal([]byte(r.Request), &d); err != nil {
		return JobRequestDetails{}, fmt.Errorf("%w: %w", ErrJobRequestNotJSON, err)
	}
	return d, nil
}

// Params decodes Parameters into JobParameters; errors wrap
// ErrJobParametersNotJSON and the encoding/json error. An empty string is an
// error, as on a go-livepeer gateway (its orchestrator only decodes
// parameters on stream start).
func (r *JobRequest) Params() (JobParameters, error) {
	var p JobParameters
	if err := json.Unmarshal([]byte(r.Parameters), &p); err != nil {
		return JobParameters{}, fmt.Errorf("%w: %w", ErrJobParametersNotJSON, err)
	}
	return p, nil
}

// checkUTF8 reports the first string field that encoding/json would alter.
func (r *JobRequest) checkUTF8() error {
	for _, f := range [...]struct{ name, v string }{
		{"id", r.ID}, {"request", r.Request}, {"parameters", r.Parameters},
		{"capability", r.Capability}, {"capability_url", r.CapabilityURL},
		{"sender", r.Sender}, {"sig", r.Sig},
	} {
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s", ErrJobInvalidUTF8, f.name)
		}
	}
	return nil
}

// EncodeJobRequestHeader returns the Livepeer header value for r: standard
// padded base64 of its JSON. It fails only with ErrJobInvalidUTF8, because
// encoding/json would replace invalid bytes and the signed message would no
// longer match.
func EncodeJobRequestHeader(r *JobRequest) (string, error) {
	if r == nil {
		return "", fmt.Errorf("%w: nil job request", ErrJobHeaderMissing)
	}
	if err := r.checkUTF8(); err != nil {
		return "", err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("wire: encoding job request: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeJobRequestHeader decodes a Livepeer header value. Errors:
// ErrJobHeaderMissing (empty value), ErrJobHeaderTooLarge, ErrJobHeaderBase64,
// ErrJobHeaderJSON (with the encoding/json error), and from CheckTimeout:
// ErrJobNoTimeout (unwrapped, go-livepeer's text), ErrJobNegativeTimeout,
// ErrJobTimeoutTooLarge. It does not look at request, parameters or the
// signature; see Details, Params and VerifyJobSig.
func DecodeJobRequestHeader(s string) (*JobRequest, error) {
	b, err := decodeJobHeader(HeaderJobRequest, s)
	if err != nil {
		return nil, err
	}
	r := new(JobRequest)
	if err := decodeJSONObject(b, r); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrJobHeaderJSON, HeaderJobRequest, err)
	}
	if err := r.CheckTimeout(); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeJobHeader checks the size of a base64 header value and decodes it.
func decodeJobHeader(name, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: %s", ErrJobHeaderMissing, name)
	}
	if len(s) > MaxJobHeaderLen {
		return nil, fmt.Errorf("%w: %s: %d bytes, limit %d", ErrJobHeaderTooLarge, name, len(s), MaxJobHeaderLen)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrJobHeaderBase64, name, err)
	}
	return b, nil
}

// decodeJSONObject decodes b into v, which must be a pointer to a struct.
// JSON null, which encoding/json accepts as a no-op, is refused: a header or
// body that says null carries nothing.
func decodeJSONObject(b []byte, v any) error {
	if t := bytes.TrimSpace(b); bytes.Equal(t, []byte("null")) {
		return errors.New("JSON null instead of an object")
	}
	return json.Unmarshal(b, v)
}

// JobRequestDetails is the content of JobRequest.Request for stream stop,
// update and payment requests: {"stream_id": "<id>"}.
type JobRequestDetails struct {
	StreamID string `json:"stream_id"`
}

// JobParameters is the content of JobRequest.Parameters.
type JobParameters struct {
	// Orchestrators filters the gateway's selection. It is a struct, so the
	// zero value encodes as "orchestrators":{}.
	Orchestrators JobOrchestratorsFilter `json:"orchestrators"`
	// EnableVideoIngress asks for the input channel (WHIP/RTMP ingest).
	EnableVideoIngress bool `json:"enable_video_ingress,omitempty"`
	// EnableVideoEgress asks for the -out channel (WHEP/RTMP output).
	EnableVideoEgress bool `json:"enable_video_egress,omitempty"`
	// EnableDataOutput asks for the -data channel and the SSE data endpoint.
	EnableDataOutput bool `json:"enable_data_output,omitempty"`
}

// JobOrchestratorsFilter lists orchestrator URLs to skip or to restrict the
// selection to. go-livepeer compares them exactly with the discovery URL's
// string form (e.g. "https://10.0.0.5:8935").
type JobOrchestratorsFilter struct {
	Exclude []string `json:"exclude,omitempty"`
	Include []string `json:"include,omitempty"`
}

// ---- JobSender: the Livepeer-Eth-Address header ----

// JobSender is the JSON carried in the Livepeer-Eth-Address header and
// echoed in the token as sender_address. Sig signs Addr exactly as sent.
type JobSender struct {
	Addr string `json:"addr"`
	Sig  string `json:"sig"`
}

// EncodeJobSenderHeader returns the Livepeer-Eth-Address header value for
// js: standard padded base64 of {"addr":…,"sig":…}. It fails only with
// ErrJobInvalidUTF8.
func EncodeJobSenderHeader(js JobSender) (string, error) {
	if !utf8.ValidString(js.Addr) || !utf8.ValidString(js.Sig) {
		return "", fmt.Errorf("%w: job sender", ErrJobInvalidUTF8)
	}
	b, err := json.Marshal(js)
	if err != nil {
		return "", fmt.Errorf("wire: encoding job sender: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeJobSenderHeader decodes a Livepeer-Eth-Address header value. Errors:
// ErrJobHeaderMissing, ErrJobHeaderTooLarge, ErrJobHeaderBase64,
// ErrJobHeaderJSON. The address and signature are not checked; see
// VerifySenderSig.
func DecodeJobSenderHeader(s string) (*JobSender, error) {
	b, err := decodeJobHeader(HeaderJobSender, s)
	if err != nil {
		return nil, err
	}
	js := new(JobSender)
	if err := decodeJSONObject(b, js); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrJobHeaderJSON, HeaderJobSender, err)
	}
	return js, nil
}

// ---- Signatures ----

// ParseSigText turns a signature string from a JobRequest or JobSender into
// bytes, leniently: "" and "0x" give nil (unsigned); "0x"/"0X" followed by
// hex, or bare hex, give the bytes. The hex must have an even number of
// digits and encode at most 65 bytes; anything else is an error wrapping
// ErrSigText. Unlike go-livepeer (defect D6) "0x" is not an error; the
// length of a non-empty signature is checked when it is verified.
func ParseSigText(s string) ([]byte, error) {
	h := s
	if len(h) >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if h == "" {
		return nil, nil
	}
	if len(h) > 2*ethsig.SignatureLength {
		return nil, fmt.Errorf("%w: %d hex digits, at most %d", ErrSigText, len(h), 2*ethsig.SignatureLength)
	}
	if len(h)%2 != 0 {
		return nil, fmt.Errorf("%w: odd number of hex digits", ErrSigText)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigText, err)
	}
	return b, nil
}

// ParseSenderAddress parses "0x" (or "0X") followed by 40 hex digits in any
// case; the EIP-55 checksum is not required. Errors wrap ErrSenderAddress.
func ParseSenderAddress(s string) (common.Address, error) {
	if len(s) != 2+2*common.AddressLength || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return common.Address{}, fmt.Errorf("%w: %q", ErrSenderAddress, truncateForError(s))
	}
	var a common.Address
	if _, err := hex.Decode(a[:], []byte(s[2:])); err != nil {
		return common.Address{}, fmt.Errorf("%w: %q", ErrSenderAddress, truncateForError(s))
	}
	return a, nil
}

// truncateForError keeps error messages short whatever the input.
func truncateForError(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// JobSigDigest returns keccak256(request‖parameters), the 32-byte message a
// job signature personal-signs.
func JobSigDigest(r *JobRequest) common.Hash {
	return crypto.Keccak256Hash([]byte(r.Request), []byte(r.Parameters))
}

// SenderSigDigest returns keccak256(addr), the 32-byte message a JobSender
// signature personal-signs; addr is the string exactly as sent.
func SenderSigDigest(addr string) common.Hash {
	return crypto.Keccak256Hash([]byte(addr))
}

// verify checks that sigText is addr's personal signature over msg.
func verify(addr common.Address, msg common.Hash, sigText string) error {
	sig, err := ParseSigText(sigText)
	if err != nil {
		return err
	}
	if len(sig) == 0 {
		return ErrUnsigned
	}
	return ethsig.Verify(addr, msg[:], sig)
}

// VerifyJobSig checks req.Sig, the job signature: personal-sign over
// keccak256(request‖parameters) by sender, a "0x"+40-hex address parsed
// case-insensitively (normally req.Sender). It returns the sender's address;
// with an error wrapping ErrSenderAddress it is the zero address. Errors:
// ErrSenderAddress, ErrSigText, ErrUnsigned (sig "" or "0x"; the address is
// still returned so an offchain node can accept the request; an empty sender
// with an empty sig is the zero address), and ErrBadSignature (malformed or
// by another key).
func VerifyJobSig(sender string, req *JobRequest) (common.Address, error) {
	if req == nil {
		return common.Address{}, fmt.Errorf("%w: nil job request", ErrUnsigned)
	}
	addr, err := parseSigner(sender, req.Sig)
	if err != nil {
		return addr, err
	}
	return addr, verify(addr, JobSigDigest(req), req.Sig)
}

// parseSigner parses a sender address. An empty sender with an empty
// signature is an unsigned request from the zero address: go-livepeer's
// offchain orchestrator accepts a JobRequest without sender and sig keys.
func parseSigner(sender, sigText string) (common.Address, error) {
	if sender == "" {
		if sig, err := ParseSigText(sigText); err == nil && len(sig) == 0 {
			return common.Address{}, ErrUnsigned
		}
	}
	return ParseSenderAddress(sender)
}

// VerifySenderSig checks a JobSender: js.Sig must be the personal signature
// of keccak256(js.Addr) by js.Addr, where the signed message is the address
// string exactly as sent (the signature over the EIP-55 form does not verify
// against the lower-case form). Errors and the returned address are as for
// VerifyJobSig.
func VerifySenderSig(js JobSender) (common.Address, error) {
	addr, err := parseSigner(js.Addr, js.Sig)
	if err != nil {
		return addr, err
	}
	return addr, verify(addr, SenderSigDigest(js.Addr), js.Sig)
}

// signHash asks signer for a personal signature over msg and checks its
// shape.
func signHash(signer ethsig.Signer, msg common.Hash) (string, error) {
	sig, err := signer.SignPersonal(msg[:])
	if err != nil {
		return "", fmt.Errorf("wire: signing: %w", err)
	}
	if len(sig) != ethsig.SignatureLength {
		return "", fmt.Errorf("wire: signer returned %d bytes, want %d", len(sig), ethsig.SignatureLength)
	}
	return "0x" + hex.EncodeToString(sig), nil
}

// SignJobRequest signs req as a gateway does: Sender becomes the signer's
// EIP-55 address and Sig "0x" + the lower-case hex of its personal
// signature over keccak256(request‖parameters). With a nil signer (an
// offchain gateway) Sender becomes ZeroAddressHex, the address go-livepeer's
// offchain gateway reports, and Sig "" — not "0x", which go-livepeer
// orchestrators reject (docs/protocol.md §5.3). It fails with ErrJobInvalidUTF8 when
// a field could not be encoded faithfully, or when the signer fails; req is
// then unchanged.
func SignJobRequest(signer ethsig.Signer, req *JobRequest) error {
	if req == nil {
		return errors.New("wire: nil job request")
	}
	if err := req.checkUTF8(); err != nil {
		return err
	}
	if signer == nil {
		req.Sender, req.Sig = ZeroAddressHex, ""
		return nil
	}
	sig, err := signHash(signer, JobSigDigest(req))
	if err != nil {
		return err
	}
	req.Sender, req.Sig = ethsig.Hex(signer.Address()), sig
	return nil
}

// NewJobSender returns the JobSender a gateway sends on token requests: the
// signer's EIP-55 address and its personal signature over keccak256 of that
// string. The value is static per key. With a nil signer it returns
// {ZeroAddressHex, ""}.
func NewJobSender(signer ethsig.Signer) (JobSender, error) {
	if signer == nil {
		return JobSender{Addr: ZeroAddressHex}, nil
	}
	addr := signer.Address().Hex()
	sig, err := signHash(signer, SenderSigDigest(addr))
	if err != nil {
		return JobSender{}, err
	}
	return JobSender{Addr: addr, Sig: sig}, nil
}

// ---- JobToken: the body of GET /process/token ----

// JobToken is the orchestrator's answer to GET /process/token. The first
// seven keys are go-livepeer's, in its order and with its omitempty rules,
// so EncodeJobToken reproduces a reference token byte for byte: balance and
// available_capacity are absent when 0, LastNonce (no JSON tag upstream) is
// always present. PoolBalance and JobBalance are byoc additions, placed last
// and omitted when empty; go-livepeer gateways ignore unknown keys.
type JobToken struct {
	// SenderAddress echoes the request's Livepeer-Eth-Address.
	SenderAddress *JobSender `json:"sender_address,omitempty"`
	// TicketParams are absent from an offchain go-livepeer orchestrator; a
	// go-livepeer gateway then crashes (D4), so byoc always sends them.
	TicketParams *TicketParams `json:"ticket_params,omitempty"`
	// Balance is the sender's balance in wei, converted as BalanceForToken
	// does.
	Balance int64 `json:"balance,omitempty"`
	// Price is the quote: PricePerUnit wei per PixelsPerUnit seconds.
	Price *PriceInfo `json:"price,omitempty"`
	// ServiceAddr is the URL the gateway must send the job to.
	ServiceAddr string `json:"service_addr,omitempty"`
	// AvailableCapacity is the number of free slots (absent when 0).
	AvailableCapacity int64 `json:"available_capacity,omitempty"`
	// LastNonce is added by a gateway to its ticket nonces; always 0.
	LastNonce uint32 `json:"LastNonce"`
	// PoolBalance is byoc's exact balance of the sender's pool: decimal
	// wei, possibly negative. See BalanceWei.
	PoolBalance string `json:"pool_balance,omitempty"`
	// JobBalance is byoc's exact balance held for the job named by
	// Livepeer-Job-Id, decimal wei.
	JobBalance string `json:"job_balance,omitempty"`
}

// EncodeJobToken returns the token body as go-livepeer writes it: the JSON
// followed by "\n".
func EncodeJobToken(t *JobToken) ([]byte, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("wire: encoding job token: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeJobToken decodes a token body from a go-livepeer or byoc
// orchestrator: absent balance and available_capacity are 0, ticket fields
// are standard base64, price keys are camelCase, unknown keys are ignored.
// Errors: ErrJobTokenTooLarge, ErrJobTokenJSON (with the encoding/json error,
// or a malformed pool_balance/job_balance).
func DecodeJobToken(body []byte) (*JobToken, error) {
	if len(body) > MaxJobTokenLen {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrJobTokenTooLarge, len(body), MaxJobTokenLen)
	}
	t := new(JobToken)
	if err := decodeJSONObject(body, t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJobTokenJSON, err)
	}
	for _, f := range [...]struct{ name, v string }{{"pool_balance", t.PoolBalance}, {"job_balance", t.JobBalance}} {
		if f.v == "" {
			continue
		}
		if _, err := ParseWei(f.v); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrJobTokenJSON, f.name, err)
		}
	}
	return t, nil
}

// PriceWeiPerUnit returns the quoted price in wei per second, exactly:
// pricePerUnit / pixelsPerUnit. A missing price, a negative price, or
// pixelsPerUnit < 1 with a non-zero price is an error wrapping
// ErrJobTokenPrice (go-livepeer gateways crash on the first and last, D5).
// A zero price with pixelsPerUnit 0 is 0.
func (t *JobToken) PriceWeiPerUnit() (*big.Rat, error) {
	if t == nil || t.Price == nil {
		return nil, fmt.Errorf("%w: no price", ErrJobTokenPrice)
	}
	p := t.Price
	switch {
	case p.PricePerUnit < 0:
		return nil, fmt.Errorf("%w: negative pricePerUnit %d", ErrJobTokenPrice, p.PricePerUnit)
	case p.PricePerUnit == 0:
		return new(big.Rat), nil
	case p.PixelsPerUnit < 1:
		return nil, fmt.Errorf("%w: pixelsPerUnit %d", ErrJobTokenPrice, p.PixelsPerUnit)
	}
	return big.NewRat(p.PricePerUnit, p.PixelsPerUnit), nil
}

// maxWeiDigits bounds ParseWei input: 2^256 has 78 decimal digits.
const maxWeiDigits = 78

// ParseWei parses a decimal integer of wei as carried in pool_balance and
// job_balance: an optional "-" and 1 to 78 ASCII digits, nothing else.
func ParseWei(s string) (*big.Int, error) {
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > maxWeiDigits {
		return nil, fmt.Errorf("wire: malformed wei amount %q", truncateForError(s))
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return nil, fmt.Errorf("wire: malformed wei amount %q", truncateForError(s))
		}
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("wire: malformed wei amount %q", truncateForError(s))
	}
	return n, nil
}

// ---- Balance representations (docs/protocol.md §8.3) ----

const (
	// tokenBalanceMax is the largest balance a go-livepeer token can carry:
	// math.MaxInt64 / 1000, floored. The balance passes through int64
	// milli-wei, which saturates at math.MaxInt64.
	tokenBalanceMax = math.MaxInt64 / 1000 // 9223372036854775
	// tokenBalanceMin is floor(math.MinInt64 / 1000), the value a balance
	// saturated at math.MinInt64 milli-wei comes back as.
	tokenBalanceMin = math.MinInt64/1000 - 1 // -9223372036854776
)

// BalanceForToken converts an integer balance in wei to the token's
// "balance" field the way go-livepeer does, without floating point:
//
//  1. floor to an integer (a no-op for integer input); a value outside int64
//     becomes 0 (so 1e19 wei is reported as 0);
//  2. multiply by 1000 as a big.Float and take Int64, which saturates at
//     ±(2^63−1). For |n| ≤ 9223372036854775 the product is below 2^63 and
//     exact, so the value is unchanged; above, it saturates;
//  3. divide by 1000 and floor.
//
// So n is returned unchanged for -9223372036854776 ≤ n ≤ 9223372036854775;
// larger int64 values give 9223372036854775 (1e16 wei, 0.01 ETH, reads as
// 9223372036854775: defect D15), smaller ones -9223372036854776. The
// negative saturation and the out-of-int64 rule for negative values are
// inferred from the documented floor semantics, not observed. A nil wei is
// 0. The result 0 is omitted from the JSON (omitempty), as upstream.
func BalanceForToken(wei *big.Int) int64 {
	if wei == nil || !wei.IsInt64() {
		return 0
	}
	n := wei.Int64()
	switch {
	case n > tokenBalanceMax:
		return tokenBalanceMax
	case n < tokenBalanceMin:
		return tokenBalanceMin
	}
	return n
}

// BalanceHeader formats an integer balance in wei for the Livepeer-Balance
// and Livepeer-Payment-Balance headers: a decimal integer, possibly
// negative. go-livepeer formats a big.Rat with FloatString(0) (rounding
// halves away from zero), which for an integer is the integer itself. A nil
// wei gives "0".
func BalanceHeader(wei *big.Int) string {
	if wei == nil {
		return "0"
	}
	return wei.String()
}

// ParseBalanceHeader parses a Livepeer-Balance or Livepeer-Payment-Balance
// value. It returns ok = false for an empty value (SSE answers carry an
// empty Livepeer-Balance) and an error for anything but a decimal integer.
func ParseBalanceHeader(s string) (wei *big.Int, ok bool, err error) {
	if s == "" {
		return nil, false, nil
	}
	n, err := ParseWei(s)
	if err != nil {
		return nil, false, err
	}
	return n, true, nil
}

// ---- ExternalCapability: the registration body ----

// ExternalCapability is the JSON body of POST /capability/register, as a
// worker sends it.
type ExternalCapability struct {
	// Name is the capability name; it is the key of the registration.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// URL is the worker's base URL (http or https).
	URL string `json:"url"`
	// Capacity is the number of concurrent jobs the worker takes.
	Capacity int `json:"capacity"`
	// PricePerUnit / PriceScaling is the price per second in Currency.
	PricePerUnit int64 `json:"price_per_unit"`
	// PriceScaling is the price's denominator; 0 means 1.
	PriceScaling int64 `json:"price_scaling"`
	// Currency is "", "wei" or "eth", case-insensitive.
	Currency string `json:"currency"`
	// Token, if set, is sent to the worker as "Authorization: Bearer <token>".
	Token string `json:"token,omitempty"`
}

// weiPerEth is 10^18.
var weiPerEth = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// Validate checks a registration and normalises it. Errors wrap
// ErrCapabilityInvalid (empty or over-long name, a name with characters
// other than printable non-space ASCII, a URL that is not absolute http or
// https with a host or that has a query or fragment, capacity outside
// 1..MaxCapabilityCapacity, a negative price or price scaling, a token that
// cannot be sent in a header) or ErrCapabilityCurrency (a currency other than
// "", "wei", "eth" in any case; go-livepeer panics on these, D11). On
// success PriceScaling 0 becomes 1 and Currency is lower-cased.
func (c *ExternalCapability) Validate() error {
	if c == nil {
		return fmt.Errorf("%w: nil", ErrCapabilityInvalid)
	}
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: empty name", ErrCapabilityInvalid)
	case len(c.Name) > MaxCapabilityNameLen:
		return fmt.Errorf("%w: name longer than %d bytes", ErrCapabilityInvalid, MaxCapabilityNameLen)
	}
	for i := 0; i < len(c.Name); i++ {
		if b := c.Name[i]; b <= ' ' || b >= 0x7f {
			return fmt.Errorf("%w: name %q has a character that is not printable ASCII", ErrCapabilityInvalid, truncateForError(c.Name))
		}
	}
	if err := validateWorkerURL(c.URL); err != nil {
		return err
	}
	if c.Capacity < 1 || c.Capacity > MaxCapabilityCapacity {
		return fmt.Errorf("%w: capacity %d, want 1..%d", ErrCapabilityInvalid, c.Capacity, MaxCapabilityCapacity)
	}
	if c.PricePerUnit < 0 {
		return fmt.Errorf("%w: negative price_per_unit %d", ErrCapabilityInvalid, c.PricePerUnit)
	}
	if c.PriceScaling < 0 {
		return fmt.Errorf("%w: negative price_scaling %d", ErrCapabilityInvalid, c.PriceScaling)
	}
	cur, ok := canonicalCurrency(c.Currency)
	if !ok {
		return fmt.Errorf("%w: %q (only wei and eth are supported)", ErrCapabilityCurrency, truncateForError(c.Currency))
	}
	for i := 0; i < len(c.Token); i++ {
		if b := c.Token[i]; b < ' ' || b == 0x7f {
			return fmt.Errorf("%w: token has a control character", ErrCapabilityInvalid)
		}
	}
	if c.PriceScaling == 0 {
		c.PriceScaling = 1
	}
	c.Currency = cur
	return nil
}

// validateWorkerURL accepts absolute http and https URLs with a host and no
// query or fragment (the orchestrator appends job paths to the URL).
func validateWorkerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: url: %w", ErrCapabilityInvalid, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: url %q: scheme must be http or https", ErrCapabilityInvalid, truncateForError(s))
	}
	if u.Host == "" {
		return fmt.Errorf("%w: url %q has no host", ErrCapabilityInvalid, truncateForError(s))
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%w: url %q must not have a query or fragment", ErrCapabilityInvalid, truncateForError(s))
	}
	return nil
}

// canonicalCurrency returns the lower-case currency, or false when it is
// not supported.
func canonicalCurrency(c string) (string, bool) {
	switch {
	case c == "":
		return "", true
	case strings.EqualFold(c, "wei"):
		return "wei", true
	case strings.EqualFold(c, "eth"):
		return "eth", true
	}
	return "", false
}

// PriceWeiPerUnit returns the registered price in wei per second, exactly:
// PricePerUnit / PriceScaling (0 meaning 1), times 10^18 for eth. It
// returns nil when the currency is unsupported or the price or scaling is
// negative; call Validate first.
func (c *ExternalCapability) PriceWeiPerUnit() *big.Rat {
	if c == nil || c.PricePerUnit < 0 || c.PriceScaling < 0 {
		return nil
	}
	cur, ok := canonicalCurrency(c.Currency)
	if !ok {
		return nil
	}
	scaling := c.PriceScaling
	if scaling == 0 {
		scaling = 1
	}
	num := big.NewInt(c.PricePerUnit)
	if cur == "eth" {
		num.Mul(num, weiPerEth)
	}
	return new(big.Rat).SetFrac(num, big.NewInt(scaling))
}

// ---- StreamURLs: the gateway's answer to /process/stream/start ----

// StreamURLs is the gateway's 200 body for POST /process/stream/start. All
// keys are always present, in this order (docs/protocol.md §9); go-livepeer
// writes it with a JSON encoder, so the body ends in "\n".
type StreamURLs struct {
	StreamID      string `json:"stream_id"`
	WhipURL       string `json:"whip_url"`
	WhepURL       string `json:"whep_url"`
	RTMPURL       string `json:"rtmp_url"`
	RTMPOutputURL string `json:"rtmp_output_url"` // comma-joined
	UpdateURL     string `json:"update_url"`
	StatusURL     string `json:"status_url"`
	DataURL       string `json:"data_url"`
	StopURL       string `json:"stop_url"`
}
