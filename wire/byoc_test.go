package wire_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ethsig"
	"byoc/internal/transcript"
	"byoc/wire"
)

// Vectors from docs/protocol.md §5.2 (key from §7.8).
const (
	testKey       = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	testAddr      = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
	senderSig     = "0x662f6ce6e23e70c7db9bdcc7b0d91bdf58d8743ba347ab0b9aa060154644c55122dd6afcc20a6cba9cab1d565a6b1dc36be9a9314e0317b943f8b0f1a726e2971b"
	senderHeader  = "eyJhZGRyIjoiMHgyYzc1MzZFMzYwNUQ5QzE2YTdhM0Q3YjE4OThlNTI5Mzk2YTY1YzIzIiwic2lnIjoiMHg2NjJmNmNlNmUyM2U3MGM3ZGI5YmRjYzdiMGQ5MWJkZjU4ZDg3NDNiYTM0N2FiMGI5YWEwNjAxNTQ2NDRjNTUxMjJkZDZhZmNjMjBhNmNiYTljYWIxZDU2NWE2YjFkYzM2YmU5YTkzMTRlMDMxN2I5NDNmOGIwZjFhNzI2ZTI5NzFiIn0="
	helloDigest   = "0x04374ec2ec8f1e743c5c53ab2c24951b936e821a0d4af7829aee21de34ffc1b0"
	helloPersonal = "0xa87f1b8784579342bb14de784de33c984cfee463570b64b0102faa051edb7030"
	helloSig      = "0xf8d41e9ad1a8a9d0bd6c284e477c803149645441add6ebcaaf8df4216c8637d7658f5027a3e0c46474baed76721e0404170d966103c51e1f10357e9d26e45db41c"
	echoSig       = "0x8b0bc4008ff69ab17e2b5836db56faa23b799c10c6a298b745423fb6e559c9450bb82842913fbafcf0e06f12d74aa265c515c923579ea46e6fdbf3af861de82c1b"
	stopSig       = "0x3f96ec40e969a7646495f3c9dd0b554ae08bc7df20056280e492dfaaa63d285e671abf1a9220909de06473267275e92fb80e032c67e4e437cf44e957499be4ed1c"
	paymentSig    = "0x0276a92662aea78564cb9f066689ee896c341e8d59f6f575d523afe2991b465c203ebb65db8e463f81aecbb81eb0db33b1cf4bcc4456b7d57c4d19e70efa2e4d1b"
	// Recorded only in the transcript (paid_stream_start_timeout30_underpaid).
	underpaidStopSig = "0xf73b1558892a27d9fae6109ecc5949cb9ae423b40a61ecaf9f54618701444e516a62c8481b8a35c6e997021bc932056f4892d6c29928b1dc0494c96ae9af39b71b"
	recipientAddr    = "0x63FaC9201494f0bd17B9892B9fae4d52fe3BD377"
)

func testSigner(t testing.TB) *ethsig.KeySigner {
	t.Helper()
	s, err := ethsig.KeySignerFromHex(testKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.Address().Hex() != testAddr {
		t.Fatalf("address %s", s.Address().Hex())
	}
	return s
}

func TestJobSignatureVectors(t *testing.T) {
	s := testSigner(t)
	req := &wire.JobRequest{
		ID: "job-1", Request: `{"prompt":"hello"}`, Parameters: "{}", Capability: "echo",
		TimeoutSeconds: 30, OrchSearchTimeout: time.Second, OrchSearchRespTimeout: 500 * time.Millisecond,
	}
	if got := wire.JobSigDigest(req).Hex(); got != helloDigest {
		t.Errorf("digest %s", got)
	}
	d := wire.JobSigDigest(req)
	if got := ethsig.PersonalDigest(d[:]).Hex(); got != helloPersonal {
		t.Errorf("personal digest %s", got)
	}
	if err := wire.SignJobRequest(s, req); err != nil {
		t.Fatal(err)
	}
	if req.Sig != helloSig || req.Sender != testAddr {
		t.Fatalf("signed: sender %s sig %s", req.Sender, req.Sig)
	}
	h, err := wire.EncodeJobRequestHeader(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(h)
	want := `{"id":"job-1","request":"{\"prompt\":\"hello\"}","parameters":"{}","capability":"echo","capability_url":"",` +
		`"sender":"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23","sig":"` + helloSig + `","timeout_seconds":30,` +
		`"OrchSearchTimeout":1000000000,"OrchSearchRespTimeout":500000000}`
	if string(raw) != want {
		t.Errorf("header JSON\n got %s\nwant %s", raw, want)
	}
	if addr, err := wire.VerifyJobSig(req.Sender, req); err != nil || addr.Hex() != testAddr {
		t.Errorf("verify: %v %v", addr, err)
	}
	// Lower-case sender parses to the same address.
	if _, err := wire.VerifyJobSig(strings.ToLower(req.Sender), req); err != nil {
		t.Errorf("lower-case sender: %v", err)
	}

	for _, tc := range []struct{ request, params, sig string }{
		{`{"run":"echo"}`, "{}", echoSig},
		{`{"stream_id":"harness-a66d5865"}`, "", stopSig},
		{`{"stream_id":"harness-a66d5865"}`, "{}", paymentSig},
		{`{"stream_id":"underpaid-0651beae"}`, "", underpaidStopSig},
	} {
		// None of id, capability, timeouts is covered.
		r := &wire.JobRequest{ID: "x", Request: tc.request, Parameters: tc.params, Capability: "c", TimeoutSeconds: 70}
		if err := wire.SignJobRequest(s, r); err != nil || r.Sig != tc.sig {
			t.Errorf("%s+%s: sig %s, want %s (%v)", tc.request, tc.params, r.Sig, tc.sig, err)
		}
		if !bytes.Equal(r.SignedMessage(), []byte(tc.request+tc.params)) {
			t.Errorf("signed message %q", r.SignedMessage())
		}
	}
}

func TestJobSenderVectors(t *testing.T) {
	js, err := wire.NewJobSender(testSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	if js.Addr != testAddr || js.Sig != senderSig {
		t.Fatalf("job sender %+v", js)
	}
	h, err := wire.EncodeJobSenderHeader(js)
	if err != nil || h != senderHeader {
		t.Fatalf("header %s (%v)", h, err)
	}
	got, err := wire.DecodeJobSenderHeader(senderHeader)
	if err != nil || *got != js {
		t.Fatalf("decode: %+v %v", got, err)
	}
	if addr, err := wire.VerifySenderSig(js); err != nil || addr.Hex() != testAddr {
		t.Errorf("verify: %v %v", addr, err)
	}
	// The signature covers the string as sent: the lower-case form fails.
	lower := wire.JobSender{Addr: strings.ToLower(js.Addr), Sig: js.Sig}
	if _, err := wire.VerifySenderSig(lower); !errors.Is(err, wire.ErrBadSignature) {
		t.Errorf("lower-case addr: %v", err)
	}
	// The signature is pm's OrchestratorRequest signature over the address.
	sig, _ := wire.ParseSigText(senderSig)
	if err := ethsig.Verify(common.HexToAddress(testAddr), wire.SenderSigDigest(testAddr).Bytes(), sig); err != nil {
		t.Errorf("pm disagrees: %v", err)
	}
}

func TestUnsigned(t *testing.T) {
	req := &wire.JobRequest{Request: "{}", Parameters: "{}", TimeoutSeconds: 1, Sig: "0xdead"}
	if err := wire.SignJobRequest(nil, req); err != nil || req.Sender != wire.ZeroAddressHex || req.Sig != "" {
		t.Errorf("nil signer: %+v %v", req, err)
	}
	js, err := wire.NewJobSender(nil)
	if err != nil || js != (wire.JobSender{Addr: wire.ZeroAddressHex}) {
		t.Errorf("nil sender: %+v %v", js, err)
	}
	h, _ := wire.EncodeJobSenderHeader(js)
	raw, _ := base64.StdEncoding.DecodeString(h)
	if string(raw) != `{"addr":"0x0000000000000000000000000000000000000000","sig":""}` {
		t.Errorf("offchain sender JSON %s", raw)
	}
	for _, sig := range []string{"", "0x", "0X"} {
		req.Sig = sig
		for _, sender := range []string{req.Sender, ""} {
			addr, err := wire.VerifyJobSig(sender, req)
			if !errors.Is(err, wire.ErrUnsigned) || addr != (common.Address{}) {
				t.Errorf("sender %q sig %q: %v %v", sender, sig, addr, err)
			}
		}
		if _, err := wire.VerifySenderSig(wire.JobSender{Sig: sig}); !errors.Is(err, wire.ErrUnsigned) {
			t.Errorf("empty sender sig %q: %v", sig, err)
		}
		addr, err := wire.VerifySenderSig(wire.JobSender{Addr: testAddr, Sig: sig})
		if !errors.Is(err, wire.ErrUnsigned) || addr.Hex() != testAddr {
			t.Errorf("sender sig %q: %v %v", sig, addr, err)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	s := testSigner(t)
	req := &wire.JobRequest{Request: `{"run":"echo"}`, Parameters: "{}", TimeoutSeconds: 30}
	if err := wire.SignJobRequest(s, req); err != nil {
		t.Fatal(err)
	}
	sig, _ := wire.ParseSigText(req.Sig)
	mod := func(f func(b []byte)) string {
		b := bytes.Clone(sig)
		f(b)
		return hex.EncodeToString(b)
	}
	// Bare hex is accepted.
	if _, err := wire.VerifyJobSig(testAddr, &wire.JobRequest{Request: req.Request, Parameters: req.Parameters, Sig: hex.EncodeToString(sig)}); err != nil {
		t.Errorf("bare hex: %v", err)
	}
	for _, tc := range []struct {
		name, sender, sig string
		want              error
	}{
		{"bad sender", "0x1234", req.Sig, wire.ErrSenderAddress},
		{"empty sender, signed", "", req.Sig, wire.ErrSenderAddress},
		{"bad sender, unsigned", "0x1234", "", wire.ErrSenderAddress},
		{"sender without 0x", testAddr[2:], req.Sig, wire.ErrSenderAddress},
		{"sender not hex", "0x" + strings.Repeat("g", 40), req.Sig, wire.ErrSenderAddress},
		{"other sender", recipientAddr, req.Sig, wire.ErrBadSignature},
		{"short", testAddr, "0x" + hex.EncodeToString(sig[:64]), wire.ErrBadSignature},
		{"odd hex", testAddr, req.Sig[:len(req.Sig)-1], wire.ErrSigText},
		{"too long", testAddr, req.Sig + "00", wire.ErrSigText},
		{"not hex", testAddr, "0x" + strings.Repeat("zz", 65), wire.ErrSigText},
		{"v 29", testAddr, mod(func(b []byte) { b[64] = 29 }), wire.ErrBadSignature},
		{"v 0", testAddr, mod(func(b []byte) { b[64] = 0 }), wire.ErrBadSignature},
		{"high s", testAddr, mod(func(b []byte) { copy(b[32:64], bytes.Repeat([]byte{0xff}, 32)) }), wire.ErrBadSignature},
		{"r zero", testAddr, mod(func(b []byte) { clear(b[:32]) }), wire.ErrBadSignature},
	} {
		r := *req
		r.Sig = tc.sig
		if _, err := wire.VerifyJobSig(tc.sender, &r); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Another message.
	r := *req
	r.Parameters = `{"x":1}`
	if _, err := wire.VerifyJobSig(testAddr, &r); !errors.Is(err, wire.ErrBadSignature) {
		t.Errorf("other message: %v", err)
	}
	if _, err := wire.VerifyJobSig(testAddr, nil); err == nil {
		t.Error("nil request verified")
	}
}

// TestRecoverAgreesWithPM signs random messages with random keys and checks
// that wire's recovery and pm's agree, also on corrupted signatures.
func TestRecoverAgreesWithPM(t *testing.T) {
	for i := 0; i < 20; i++ {
		var k [32]byte
		_, _ = rand.Read(k[:])
		s, err := ethsig.KeySignerFromHex(hex.EncodeToString(k[:]))
		if err != nil {
			continue
		}
		js, err := wire.NewJobSender(s)
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := wire.ParseSigText(js.Sig)
		if i%2 == 1 {
			sig[i%65] ^= 1
		}
		d := wire.SenderSigDigest(js.Addr)
		pmAddr, pmErr := ethsig.Recover(d[:], sig)
		wAddr, wErr := wire.VerifySenderSig(wire.JobSender{Addr: js.Addr, Sig: hex.EncodeToString(sig)})
		pmOK := pmErr == nil && pmAddr == s.Address()
		if pmOK != (wErr == nil) {
			t.Errorf("pm ok %v (%v), wire %v", pmOK, pmErr, wErr)
		}
		if wAddr != s.Address() {
			t.Errorf("address %v", wAddr)
		}
	}
}

// failSigner is a Signer that fails or returns a malformed signature.
type failSigner struct{ sig []byte }

func (failSigner) Address() common.Address { return common.HexToAddress(testAddr) }
func (f failSigner) SignPersonal([]byte) ([]byte, error) {
	if f.sig == nil {
		return nil, errors.New("boom")
	}
	return f.sig, nil
}

func TestSignerFailures(t *testing.T) {
	for _, s := range []ethsig.Signer{failSigner{}, failSigner{sig: make([]byte, 64)}} {
		req := &wire.JobRequest{Request: "{}", Parameters: "{}", TimeoutSeconds: 1}
		if err := wire.SignJobRequest(s, req); err == nil || req.Sender != "" || req.Sig != "" {
			t.Errorf("SignJobRequest: %v %+v", err, req)
		}
		if _, err := wire.NewJobSender(s); err == nil {
			t.Error("NewJobSender succeeded")
		}
	}
	req := &wire.JobRequest{Request: "\xff", Parameters: "{}", TimeoutSeconds: 1}
	if err := wire.SignJobRequest(testSigner(t), req); !errors.Is(err, wire.ErrJobInvalidUTF8) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if _, err := wire.EncodeJobRequestHeader(req); !errors.Is(err, wire.ErrJobInvalidUTF8) {
		t.Errorf("encode invalid UTF-8: %v", err)
	}
	if _, err := wire.EncodeJobSenderHeader(wire.JobSender{Addr: "\xff"}); !errors.Is(err, wire.ErrJobInvalidUTF8) {
		t.Errorf("encode sender invalid UTF-8: %v", err)
	}
	if _, err := wire.EncodeJobRequestHeader(nil); err == nil {
		t.Error("nil request encoded")
	}
	if err := wire.SignJobRequest(nil, nil); err == nil {
		t.Error("nil request signed")
	}
}

func TestParseSigText(t *testing.T) {
	full := strings.Repeat("ab", 65)
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{"", 0, false},
		{"0x", 0, false},
		{"0X", 0, false},
		{"0x" + full, 65, false},
		{"0X" + strings.ToUpper(full), 65, false},
		{full, 65, false},
		{"0x0102", 2, false},
		{"0102", 2, false},
		{"0x" + full + "00", 0, true},
		{full + "00", 0, true},
		{"0x1", 0, true},
		{"123", 0, true},
		{"0xzz", 0, true},
		{"x0", 0, true},
		{" 0x01", 0, true},
	} {
		b, err := wire.ParseSigText(tc.in)
		if tc.fail {
			if err == nil || !errors.Is(err, wire.ErrSigText) || b != nil {
				t.Errorf("%q: %x %v, want ErrSigText", tc.in, b, err)
			}
			continue
		}
		if err != nil || len(b) != tc.n || (tc.n == 0 && b != nil) {
			t.Errorf("%q: %x %v", tc.in, b, err)
		}
	}
}

func encodeRaw(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestDecodeJobRequestHeaderErrors(t *testing.T) {
	ok := `{"request":"{}","parameters":"{}","capability":"c","timeout_seconds":30}`
	if r, err := wire.DecodeJobRequestHeader(encodeRaw(ok)); err != nil || r.TimeoutSeconds != 30 || r.Timeout() != 30*time.Second {
		t.Fatalf("%+v %v", r, err)
	}
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"missing", "", wire.ErrJobHeaderMissing},
		{"too large", strings.Repeat("A", wire.MaxJobHeaderLen+4), wire.ErrJobHeaderTooLarge},
		{"garbage", "!!!notbase64", wire.ErrJobHeaderBase64},
		{"unpadded", strings.TrimRight(encodeRaw(ok+" "), "="), wire.ErrJobHeaderBase64},
		{"url-safe", strings.NewReplacer("+", "-", "/", "_").Replace(encodeRaw(`{"request":"??>>??","timeout_seconds":1}`)), wire.ErrJobHeaderBase64},
		{"not json", encodeRaw("hello world"), wire.ErrJobHeaderJSON},
		{"null", encodeRaw("null"), wire.ErrJobHeaderJSON},
		{"array", encodeRaw("[]"), wire.ErrJobHeaderJSON},
		{"float timeout", encodeRaw(`{"timeout_seconds":1.5}`), wire.ErrJobHeaderJSON},
		{"string timeout", encodeRaw(`{"timeout_seconds":"30"}`), wire.ErrJobHeaderJSON},
		{"overflow timeout", encodeRaw(`{"timeout_seconds":1e400}`), wire.ErrJobHeaderJSON},
		{"no timeout", encodeRaw(`{"request":"{}"}`), wire.ErrJobNoTimeout},
		{"zero timeout", encodeRaw(`{"timeout_seconds":0}`), wire.ErrJobNoTimeout},
		{"negative timeout", encodeRaw(`{"timeout_seconds":-1}`), wire.ErrJobNegativeTimeout},
		{"huge timeout", encodeRaw(`{"timeout_seconds":86401}`), wire.ErrJobTimeoutTooLarge},
		{"int64 timeout", encodeRaw(`{"timeout_seconds":9223372036854775807}`), wire.ErrJobTimeoutTooLarge},
	} {
		r, err := wire.DecodeJobRequestHeader(tc.in)
		if !errors.Is(err, tc.want) || r != nil {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// go-livepeer's exact text for a missing timeout.
	_, err := wire.DecodeJobRequestHeader(encodeRaw(`{}`))
	if err == nil || err.Error() != "no timeout_seconds set with request, timeout_seconds is required" {
		t.Errorf("missing timeout text: %v", err)
	}
	// The largest timeout is accepted.
	if r, err := wire.DecodeJobRequestHeader(encodeRaw(`{"timeout_seconds":86400}`)); err != nil || r.Timeout() != 24*time.Hour {
		t.Errorf("24 h: %v", err)
	}
	// Keys match case-insensitively, as in go-livepeer.
	if r, err := wire.DecodeJobRequestHeader(encodeRaw(`{"Timeout_Seconds":5,"CAPABILITY":"x"}`)); err != nil || r.Capability != "x" {
		t.Errorf("case-insensitive keys: %+v %v", r, err)
	}
	if (&wire.JobRequest{TimeoutSeconds: -5}).Timeout() != 0 {
		t.Error("negative Timeout not 0")
	}
}

func TestDetailsAndParams(t *testing.T) {
	r := &wire.JobRequest{Request: `{"stream_id":"teststream-s1","other":1}`, Parameters: `{"enable_data_output":true,"orchestrators":{"include":["https://10.0.0.5:8935"]}}`}
	d, err := r.Details()
	if err != nil || d.StreamID != "teststream-s1" {
		t.Errorf("details %+v %v", d, err)
	}
	p, err := r.Params()
	if err != nil || !p.EnableDataOutput || p.EnableVideoIngress || len(p.Orchestrators.Include) != 1 {
		t.Errorf("params %+v %v", p, err)
	}
	for _, bad := range []string{"run echo", "", "[1]", `"s"`, "{"} {
		r := &wire.JobRequest{Request: bad, Parameters: bad}
		if _, err := r.Details(); !errors.Is(err, wire.ErrJobRequestNotJSON) {
			t.Errorf("request %q: %v", bad, err)
		}
		if _, err := r.Params(); !errors.Is(err, wire.ErrJobParametersNotJSON) {
			t.Errorf("parameters %q: %v", bad, err)
		}
	}
	// The error carries encoding/json's text, as go-livepeer reports it.
	_, err = (&wire.JobRequest{Request: "run echo"}).Details()
	if err == nil || !strings.Contains(err.Error(), "invalid character 'r' looking for beginning of value") {
		t.Errorf("details error text: %v", err)
	}
	b, _ := json.Marshal(wire.JobParameters{})
	if string(b) != `{"orchestrators":{}}` {
		t.Errorf("zero parameters %s", b)
	}
	b, _ = json.Marshal(wire.JobParameters{Orchestrators: wire.JobOrchestratorsFilter{Exclude: []string{"a"}, Include: []string{"b"}}, EnableVideoIngress: true, EnableVideoEgress: true, EnableDataOutput: true})
	if string(b) != `{"orchestrators":{"exclude":["a"],"include":["b"]},"enable_video_ingress":true,"enable_video_egress":true,"enable_data_output":true}` {
		t.Errorf("parameters %s", b)
	}
}

// headerFor returns the decoded JSON text of a base64 header, "" if it is
// not base64.
func decodedHeader(v string) string {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// TestTranscriptJobRequests decodes every recorded Livepeer header,
// re-encodes the ones a go-livepeer gateway made (all ten keys) to the same
// bytes, and verifies every recorded signature.
func TestTranscriptJobRequests(t *testing.T) {
	wantErr := map[string]error{
		"job_garbage_base64":         wire.ErrJobHeaderBase64,
		"direct_job_garbage_base64":  wire.ErrJobHeaderBase64,
		"job_base64_not_json":        wire.ErrJobHeaderJSON,
		"job_missing_timeout":        wire.ErrJobNoTimeout,
		"direct_job_missing_timeout": wire.ErrJobNoTimeout,
	}
	wantSig := map[string]error{
		"paid_direct_job_wrong_signer": wire.ErrBadSignature,
		"paid_direct_job_sig_0x":       wire.ErrUnsigned,
	}
	gatewayMade, verified := 0, 0
	for _, f := range []*transcript.File{transcript.Offchain(), transcript.Paid()} {
		for _, s := range f.Scenarios {
			for _, e := range s.Exchanges {
				h, ok := e.RequestHeaders[wire.HeaderJobRequest]
				if !ok {
					continue
				}
				r, err := wire.DecodeJobRequestHeader(h[0])
				if want := wantErr[s.Name]; want != nil || err != nil {
					if !errors.Is(err, want) {
						t.Errorf("%s seq %d: %v, want %v", s.Name, e.Seq, err, want)
					}
					continue
				}
				if s.Name == "job_request_field_not_json" {
					if _, err := r.Details(); !errors.Is(err, wire.ErrJobRequestNotJSON) {
						t.Errorf("%s: %v", s.Name, err)
					}
				} else if _, err := r.Details(); err != nil {
					t.Errorf("%s seq %d: details: %v", s.Name, e.Seq, err)
				}
				if strings.HasPrefix(decodedHeader(h[0]), `{"id":`) && e.Hop == transcript.HopGatewayOrchestrator && strings.Contains(decodedHeader(h[0]), `"OrchSearchTimeout"`) {
					gatewayMade++
					enc, err := wire.EncodeJobRequestHeader(r)
					if err != nil || enc != h[0] {
						t.Errorf("%s seq %d: re-encoded\n%s\nwant\n%s", s.Name, e.Seq, decodedHeader(enc), decodedHeader(h[0]))
					}
				}
				if e.Hop != transcript.HopGatewayOrchestrator {
					continue
				}
				addr, err := wire.VerifyJobSig(r.Sender, r)
				switch {
				case wantSig[s.Name] != nil:
					if !errors.Is(err, wantSig[s.Name]) {
						t.Errorf("%s: %v, want %v", s.Name, err, wantSig[s.Name])
					}
				case r.Sig == "" || r.Sig == "0x": // also with the sender absent
					if !errors.Is(err, wire.ErrUnsigned) || addr != (common.Address{}) {
						t.Errorf("%s: %v", s.Name, err)
					}
				default:
					if err != nil || addr.Hex() != testAddr {
						t.Errorf("%s seq %d: %v %v", s.Name, e.Seq, addr, err)
					}
					verified++
				}
			}
		}
	}
	// Jobs 1, 2, gwei 1 and 2, SSE, two stream starts, stop x3, payment,
	// mixed; plus the signed direct job without payment.
	if gatewayMade != 12 || verified != 13 {
		t.Errorf("%d gateway-made headers, %d verified signatures", gatewayMade, verified)
	}
}

// TestTranscriptJobSenders decodes, re-encodes and verifies every recorded
// Livepeer-Eth-Address header.
func TestTranscriptJobSenders(t *testing.T) {
	n := 0
	for _, f := range []*transcript.File{transcript.Offchain(), transcript.Paid()} {
		for _, s := range f.Scenarios {
			for _, e := range s.Exchanges {
				h, ok := e.RequestHeaders[wire.HeaderJobSender]
				if !ok {
					continue
				}
				n++
				js, err := wire.DecodeJobSenderHeader(h[0])
				if err != nil {
					t.Fatalf("%s: %v", s.Name, err)
				}
				if enc, _ := wire.EncodeJobSenderHeader(*js); enc != h[0] {
					t.Errorf("%s: re-encoded %s", s.Name, decodedHeader(enc))
				}
				addr, err := wire.VerifySenderSig(*js)
				if js.Addr == wire.ZeroAddressHex {
					if !errors.Is(err, wire.ErrUnsigned) || js.Sig != "" && js.Sig != "0x" {
						t.Errorf("%s: offchain sender %+v: %v", s.Name, js, err)
					}
				} else if err != nil || addr.Hex() != testAddr || h[0] != senderHeader {
					t.Errorf("%s: %v %v", s.Name, addr, err)
				}
			}
		}
	}
	if n != 26 {
		t.Errorf("%d sender headers", n)
	}
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", wire.ErrJobHeaderMissing},
		{"%%%", wire.ErrJobHeaderBase64},
		{encodeRaw(`{"addr":1}`), wire.ErrJobHeaderJSON},
		{encodeRaw(`null`), wire.ErrJobHeaderJSON},
		{strings.Repeat("A", wire.MaxJobHeaderLen+4), wire.ErrJobHeaderTooLarge},
	} {
		if _, err := wire.DecodeJobSenderHeader(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%.20q: %v, want %v", tc.in, err, tc.want)
		}
	}
}

// TestTranscriptTokens decodes every recorded token body and re-encodes it
// to the same bytes.
func TestTranscriptTokens(t *testing.T) {
	n := 0
	balances := map[int64]bool{}
	for _, f := range []*transcript.File{transcript.Offchain(), transcript.Paid()} {
		for _, s := range f.Scenarios {
			for _, e := range s.Exchanges {
				if e.Path != "/process/token" || e.StatusCode() != 200 {
					continue
				}
				n++
				tok, err := wire.DecodeJobToken([]byte(e.ResponseBody))
				if err != nil {
					t.Fatalf("%s: %v", s.Name, err)
				}
				enc, err := wire.EncodeJobToken(tok)
				if err != nil || string(enc) != e.ResponseBody {
					t.Errorf("%s: re-encoded\n%s\nwant\n%s", s.Name, enc, e.ResponseBody)
				}
				if tok.LastNonce != 0 || tok.Price == nil || tok.Price.PixelsPerUnit != 1 || tok.SenderAddress == nil || !strings.HasPrefix(tok.ServiceAddr, "https://127.0.0.1:") {
					t.Errorf("%s: %+v", s.Name, tok)
				}
				price, err := tok.PriceWeiPerUnit()
				if err != nil || price.Cmp(big.NewRat(tok.Price.PricePerUnit, 1)) != 0 {
					t.Errorf("%s: price %v %v", s.Name, price, err)
				}
				balances[tok.Balance] = true
				if tp := tok.TicketParams; tp != nil {
					if common.BytesToAddress(tp.Recipient).Hex() != recipientAddr || new(big.Int).SetBytes(tp.FaceValue).String() != "120000000000000000" ||
						new(big.Int).SetBytes(tp.ExpirationBlock).Int64() != 20000040 || tp.ExpirationParams == nil || tp.ExpirationParams.CreationRound != 3500 {
						t.Errorf("%s: ticket params %+v", s.Name, tp)
					}
				} else if f.MadeWith.FixedInputs != nil && s.Name != "mixed_signing_gateway_offchain_orchestrator_job" {
					t.Errorf("%s: no ticket params", s.Name)
				}
			}
		}
	}
	if n != 17 {
		t.Errorf("%d tokens", n)
	}
	for _, b := range []int64{0, 7999999000, 32000000000, 191000000000} {
		if !balances[b] {
			t.Errorf("no token with balance %d", b)
		}
	}
}

func TestJobTokenExtensions(t *testing.T) {
	tok := &wire.JobToken{
		SenderAddress: &wire.JobSender{Addr: wire.ZeroAddressHex},
		Price:         &wire.PriceInfo{PricePerUnit: 7, PixelsPerUnit: 2},
		ServiceAddr:   "https://o:8935",
		PoolBalance:   "-12",
		JobBalance:    "340282366920938463463374607431768211456",
	}
	b, err := wire.EncodeJobToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sender_address":{"addr":"0x0000000000000000000000000000000000000000","sig":""},"price":{"pricePerUnit":7,"pixelsPerUnit":2},"service_addr":"https://o:8935","LastNonce":0,"pool_balance":"-12","job_balance":"340282366920938463463374607431768211456"}` + "\n"
	if string(b) != want {
		t.Errorf("token\n%s\nwant\n%s", b, want)
	}
	got, err := wire.DecodeJobToken(b)
	if err != nil || !reflect.DeepEqual(got, tok) {
		t.Errorf("round trip %+v %v", got, err)
	}
	if p, err := got.PriceWeiPerUnit(); err != nil || p.RatString() != "7/2" {
		t.Errorf("price %v %v", p, err)
	}
	for _, bad := range []string{
		`{"pool_balance":"1.5"}`, `{"job_balance":"+1"}`, `{"pool_balance":"-"}`, `{"job_balance":" 1"}`,
		`{"pool_balance":"` + strings.Repeat("9", 79) + `"}`, `{"balance":1.5}`, `{"LastNonce":-1}`, `null`, `[`,
	} {
		if _, err := wire.DecodeJobToken([]byte(bad)); !errors.Is(err, wire.ErrJobTokenJSON) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := wire.DecodeJobToken(make([]byte, wire.MaxJobTokenLen+1)); !errors.Is(err, wire.ErrJobTokenTooLarge) {
		t.Errorf("large token: %v", err)
	}
	for _, tc := range []struct {
		price *wire.PriceInfo
		want  string // "" for an error
	}{
		{nil, ""},
		{&wire.PriceInfo{}, "0"},
		{&wire.PriceInfo{PixelsPerUnit: 1}, "0"},
		{&wire.PriceInfo{PricePerUnit: 5}, ""},
		{&wire.PriceInfo{PricePerUnit: -5, PixelsPerUnit: 1}, ""},
		{&wire.PriceInfo{PricePerUnit: 1000, PixelsPerUnit: 1}, "1000"},
	} {
		p, err := (&wire.JobToken{Price: tc.price}).PriceWeiPerUnit()
		if tc.want == "" {
			if !errors.Is(err, wire.ErrJobTokenPrice) {
				t.Errorf("%+v: %v %v", tc.price, p, err)
			}
		} else if err != nil || p.RatString() != tc.want {
			t.Errorf("%+v: %v %v", tc.price, p, err)
		}
	}
	if _, err := (*wire.JobToken)(nil).PriceWeiPerUnit(); err == nil {
		t.Error("nil token priced")
	}
}

// referenceTokenBalance is the documented go-livepeer pipeline run with
// big.Float, for cross-checking BalanceForToken (which uses integers only).
func referenceTokenBalance(wei *big.Int) int64 {
	if !wei.IsInt64() {
		return 0
	}
	f := new(big.Float).SetInt64(wei.Int64())
	f.Mul(f, big.NewFloat(1000))
	fixed, _ := f.Int64()                                      // saturates at ±(2^63-1) / MinInt64
	q := new(big.Int).Div(big.NewInt(fixed), big.NewInt(1000)) // Euclidean = floor for a positive divisor
	return q.Int64()
}

func TestBalanceForToken(t *testing.T) {
	pow := func(b, e int64) *big.Int { return new(big.Int).Exp(big.NewInt(b), big.NewInt(e), nil) }
	for _, tc := range []struct {
		in   *big.Int
		want int64
	}{
		{nil, 0},
		{big.NewInt(0), 0},
		{big.NewInt(1234), 1234},
		{big.NewInt(-1), -1},
		{big.NewInt(-1235), -1235},
		{big.NewInt(7999999000), 7999999000},
		{big.NewInt(191000000000), 191000000000},
		{big.NewInt(9223372036854775), 9223372036854775},
		{big.NewInt(9223372036854776), 9223372036854775},
		{pow(10, 16), 9223372036854775}, // docs/protocol.md §8.3
		{big.NewInt(math.MaxInt64), 9223372036854775},
		{pow(2, 63), 0},
		{pow(10, 19), 0}, // docs/protocol.md §8.3
		{big.NewInt(-9223372036854775), -9223372036854775},
		{big.NewInt(-9223372036854776), -9223372036854776},
		{big.NewInt(-9223372036854777), -9223372036854776},
		{big.NewInt(math.MinInt64), -9223372036854776},
		{new(big.Int).Sub(big.NewInt(math.MinInt64), big.NewInt(1)), 0},
	} {
		if got := wire.BalanceForToken(tc.in); got != tc.want {
			t.Errorf("BalanceForToken(%v) = %d, want %d", tc.in, got, tc.want)
		}
		if tc.in != nil {
			if ref := referenceTokenBalance(tc.in); ref != tc.want {
				t.Errorf("reference(%v) = %d, want %d", tc.in, ref, tc.want)
			}
		}
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		n := new(big.Int).Rsh(big.NewInt(int64(rng.Uint64())), uint(rng.IntN(64)))
		if rng.IntN(8) == 0 {
			n.Add(n, big.NewInt(int64(rng.IntN(3)-1)))
			n.Add(n, big.NewInt(9223372036854775*int64(1-2*rng.IntN(2))))
		}
		if got, ref := wire.BalanceForToken(n), referenceTokenBalance(n); got != ref {
			t.Fatalf("BalanceForToken(%v) = %d, reference %d", n, got, ref)
		}
	}
}

func TestBalanceHeader(t *testing.T) {
	for _, tc := range []struct {
		in   *big.Int
		want string
	}{
		{nil, "0"}, {big.NewInt(0), "0"}, {big.NewInt(-5), "-5"}, {big.NewInt(191000000000), "191000000000"},
		{new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil), "1" + strings.Repeat("0", 30)},
	} {
		if got := wire.BalanceHeader(tc.in); got != tc.want {
			t.Errorf("BalanceHeader(%v) = %s", tc.in, got)
		}
		if tc.in != nil {
			// FloatString(0) of an integer is the integer, as go-livepeer formats it.
			if fs := new(big.Rat).SetInt(tc.in).FloatString(0); fs != tc.want {
				t.Errorf("FloatString(0) %s", fs)
			}
			n, ok, err := wire.ParseBalanceHeader(tc.want)
			if err != nil || !ok || n.Cmp(tc.in) != 0 {
				t.Errorf("parse %s: %v %v %v", tc.want, n, ok, err)
			}
		}
	}
	if _, ok, err := wire.ParseBalanceHeader(""); ok || err != nil {
		t.Error("empty balance header")
	}
	if _, _, err := wire.ParseBalanceHeader("12.5"); err == nil {
		t.Error("fraction accepted")
	}
}

// TestTranscriptRegistrations decodes and validates every recorded
// registration body.
func TestTranscriptRegistrations(t *testing.T) {
	want := map[string]string{ // scenario/name → price in wei per second, or an error
		"reverse-text": "0", "sse-text": "0", "reverse-text-paid": "1000", "evil": "0",
		"dead-worker": "0", "error-worker": "0", "reverse-paid": "1000", "reverse-paid-gwei": "1000000000",
		"sse-paid": "1000", "reverse-paid-nopay": "1000", "sse-paid-gwei": "1000000000",
		"usd-cap": "currency",
	}
	n := 0
	for _, f := range []*transcript.File{transcript.Offchain(), transcript.Paid()} {
		for _, e := range f.Exchanges(transcript.HopWorkerOrchestrator) {
			if e.Path != "/capability/register" || e.Method != "POST" {
				continue
			}
			n++
			var c wire.ExternalCapability
			if err := json.Unmarshal([]byte(e.RequestBody), &c); err != nil {
				if e.RequestBody != `{"name":` {
					t.Errorf("seq %d: %v", e.Seq, err)
				}
				continue
			}
			err := c.Validate()
			if want[c.Name] == "currency" {
				if !errors.Is(err, wire.ErrCapabilityCurrency) || c.PriceWeiPerUnit() != nil {
					t.Errorf("%s: %v", c.Name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
				continue
			}
			if c.PriceScaling != 1 || c.PriceWeiPerUnit().RatString() != want[c.Name] {
				t.Errorf("%s: scaling %d price %v", c.Name, c.PriceScaling, c.PriceWeiPerUnit())
			}
		}
	}
	if n != 15 {
		t.Errorf("%d registrations", n)
	}
}

func TestExternalCapabilityValidate(t *testing.T) {
	base := wire.ExternalCapability{Name: "cap", URL: "http://127.0.0.1:8000/base", Capacity: 1, PricePerUnit: 3, PriceScaling: 2, Currency: "ETH", Token: "t"}
	c := base
	if err := c.Validate(); err != nil || c.Currency != "eth" || c.PriceScaling != 2 {
		t.Fatalf("%v %+v", err, c)
	}
	if got := c.PriceWeiPerUnit().RatString(); got != "1500000000000000000" {
		t.Errorf("eth price %s", got)
	}
	for _, tc := range []struct {
		name string
		mod  func(c *wire.ExternalCapability)
		want error
	}{
		{"empty name", func(c *wire.ExternalCapability) { c.Name = "" }, wire.ErrCapabilityInvalid},
		{"space in name", func(c *wire.ExternalCapability) { c.Name = "a b" }, wire.ErrCapabilityInvalid},
		{"newline in name", func(c *wire.ExternalCapability) { c.Name = "a\n" }, wire.ErrCapabilityInvalid},
		{"unicode name", func(c *wire.ExternalCapability) { c.Name = "é" }, wire.ErrCapabilityInvalid},
		{"long name", func(c *wire.ExternalCapability) { c.Name = strings.Repeat("a", wire.MaxCapabilityNameLen+1) }, wire.ErrCapabilityInvalid},
		{"ftp url", func(c *wire.ExternalCapability) { c.URL = "ftp://h/" }, wire.ErrCapabilityInvalid},
		{"relative url", func(c *wire.ExternalCapability) { c.URL = "/path" }, wire.ErrCapabilityInvalid},
		{"empty url", func(c *wire.ExternalCapability) { c.URL = "" }, wire.ErrCapabilityInvalid},
		{"no host", func(c *wire.ExternalCapability) { c.URL = "http:///x" }, wire.ErrCapabilityInvalid},
		{"query", func(c *wire.ExternalCapability) { c.URL = "http://h/?a=1" }, wire.ErrCapabilityInvalid},
		{"fragment", func(c *wire.ExternalCapability) { c.URL = "http://h/#f" }, wire.ErrCapabilityInvalid},
		{"bad url", func(c *wire.ExternalCapability) { c.URL = "http://[::1" }, wire.ErrCapabilityInvalid},
		{"capacity 0", func(c *wire.ExternalCapability) { c.Capacity = 0 }, wire.ErrCapabilityInvalid},
		{"capacity negative", func(c *wire.ExternalCapability) { c.Capacity = -1 }, wire.ErrCapabilityInvalid},
		{"capacity absurd", func(c *wire.ExternalCapability) { c.Capacity = wire.MaxCapabilityCapacity + 1 }, wire.ErrCapabilityInvalid},
		{"negative price", func(c *wire.ExternalCapability) { c.PricePerUnit = -1 }, wire.ErrCapabilityInvalid},
		{"negative scaling", func(c *wire.ExternalCapability) { c.PriceScaling = -1 }, wire.ErrCapabilityInvalid},
		{"usd", func(c *wire.ExternalCapability) { c.Currency = "USD" }, wire.ErrCapabilityCurrency},
		{"gwei", func(c *wire.ExternalCapability) { c.Currency = "gwei" }, wire.ErrCapabilityCurrency},
		{"token newline", func(c *wire.ExternalCapability) { c.Token = "a\r\nX-Evil: 1" }, wire.ErrCapabilityInvalid},
	} {
		c := base
		tc.mod(&c)
		if err := c.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := (*wire.ExternalCapability)(nil).Validate(); err == nil {
		t.Error("nil validated")
	}
	for _, tc := range []struct {
		c    wire.ExternalCapability
		want string
	}{
		{wire.ExternalCapability{PricePerUnit: 1, PriceScaling: 3}, "1/3"},
		{wire.ExternalCapability{PricePerUnit: 10, PriceScaling: 0, Currency: "Wei"}, "10"},
		{wire.ExternalCapability{PricePerUnit: 5, PriceScaling: 1000}, "1/200"},
		{wire.ExternalCapability{PricePerUnit: math.MaxInt64, Currency: "eth"}, new(big.Int).Mul(big.NewInt(math.MaxInt64), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)).String()},
	} {
		if got := tc.c.PriceWeiPerUnit(); got == nil || got.RatString() != tc.want {
			t.Errorf("%+v: %v, want %s", tc.c, got, tc.want)
		}
	}
	if (&wire.ExternalCapability{PricePerUnit: -1}).PriceWeiPerUnit() != nil || (*wire.ExternalCapability)(nil).PriceWeiPerUnit() != nil {
		t.Error("invalid price priced")
	}
	// Description and token are left out when empty.
	b, _ := json.Marshal(wire.ExternalCapability{Name: "n", URL: "http://h", Capacity: 1, PriceScaling: 1, Currency: "wei"})
	if string(b) != `{"name":"n","url":"http://h","capacity":1,"price_per_unit":0,"price_scaling":1,"currency":"wei"}` {
		t.Errorf("registration JSON %s", b)
	}
}

// TestTranscriptStreamURLs re-encodes the recorded stream-start answers.
func TestTranscriptStreamURLs(t *testing.T) {
	n := 0
	p := transcript.Paid()
	for _, e := range p.Exchanges(transcript.HopClientGateway) {
		if e.Path != "/process/stream/start" || e.StatusCode() != 200 {
			continue
		}
		n++
		var u wire.StreamURLs
		if err := json.Unmarshal([]byte(e.ResponseBody), &u); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(u); err != nil || buf.String() != e.ResponseBody {
			t.Errorf("re-encoded %s", buf.String())
		}
		if !strings.HasSuffix(u.StopURL, "/process/stream/"+u.StreamID+"/stop") || u.DataURL != "" {
			t.Errorf("%+v", u)
		}
	}
	if n != 2 {
		t.Errorf("%d stream starts", n)
	}
}

// transcriptHeaders returns every recorded value of a header, for fuzz
// seeds.
func transcriptHeaders(name string) []string {
	var out []string
	for _, f := range []*transcript.File{transcript.Offchain(), transcript.Paid()} {
		for _, e := range f.Exchanges("") {
			out = append(out, e.RequestHeaders[name]...)
		}
	}
	return out
}

// FuzzDecodeJobRequestHeader checks that decoding never panics, that errors
// are the documented ones, and that a decoded request survives
// encode/decode unchanged.
func FuzzDecodeJobRequestHeader(f *testing.F) {
	for _, h := range transcriptHeaders(wire.HeaderJobRequest) {
		f.Add(h)
	}
	f.Add("")
	f.Add(encodeRaw(`{"timeout_seconds":-1}`))
	f.Add(encodeRaw(`{"timeout_seconds":1,"request":"\ud800"}`))
	f.Fuzz(func(t *testing.T, s string) {
		r, err := wire.DecodeJobRequestHeader(s)
		if err != nil {
			if r != nil {
				t.Fatal("request returned with an error")
			}
			for _, e := range []error{wire.ErrJobHeaderMissing, wire.ErrJobHeaderTooLarge, wire.ErrJobHeaderBase64, wire.ErrJobHeaderJSON,
				wire.ErrJobNoTimeout, wire.ErrJobNegativeTimeout, wire.ErrJobTimeoutTooLarge} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("undocumented error: %v", err)
		}
		if r.Timeout() <= 0 {
			t.Fatalf("accepted timeout %d", r.TimeoutSeconds)
		}
		_, _ = r.Details()
		_, _ = r.Params()
		_, _ = wire.VerifyJobSig(r.Sender, r)
		h, err := wire.EncodeJobRequestHeader(r)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		r2, err := wire.DecodeJobRequestHeader(h)
		if err != nil || *r2 != *r {
			t.Fatalf("round trip: %+v %+v %v", r, r2, err)
		}
	})
}

// FuzzDecodeJobSenderHeader checks the same for Livepeer-Eth-Address.
func FuzzDecodeJobSenderHeader(f *testing.F) {
	for _, h := range transcriptHeaders(wire.HeaderJobSender) {
		f.Add(h)
	}
	f.Add("")
	f.Add(encodeRaw(`{"addr":"0x","sig":"0x"}`))
	f.Fuzz(func(t *testing.T, s string) {
		js, err := wire.DecodeJobSenderHeader(s)
		if err != nil {
			if js != nil {
				t.Fatal("sender returned with an error")
			}
			for _, e := range []error{wire.ErrJobHeaderMissing, wire.ErrJobHeaderTooLarge, wire.ErrJobHeaderBase64, wire.ErrJobHeaderJSON} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("undocumented error: %v", err)
		}
		if _, err := wire.VerifySenderSig(*js); err != nil && !errors.Is(err, wire.ErrSenderAddress) && !errors.Is(err, wire.ErrSigText) &&
			!errors.Is(err, wire.ErrUnsigned) && !errors.Is(err, wire.ErrBadSignature) {
			t.Fatalf("undocumented verify error: %v", err)
		}
		h, err := wire.EncodeJobSenderHeader(*js)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		js2, err := wire.DecodeJobSenderHeader(h)
		if err != nil || *js2 != *js {
			t.Fatalf("round trip: %+v %+v %v", js, js2, err)
		}
	})
}

// FuzzDecodeJobToken checks that token decoding never panics and that a
// decoded token re-encodes to a body that decodes to the same token.
func FuzzDecodeJobToken(f *testing.F) {
	for _, file := range []*transcript.File{transcript.Offchain(), transcript.Paid()} {
		for _, e := range file.Exchanges(transcript.HopGatewayOrchestrator) {
			if e.Path == "/process/token" {
				f.Add([]byte(e.ResponseBody))
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := wire.DecodeJobToken(b)
		if err != nil {
			if !errors.Is(err, wire.ErrJobTokenJSON) && !errors.Is(err, wire.ErrJobTokenTooLarge) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		_, _ = tok.PriceWeiPerUnit()
		enc, err := wire.EncodeJobToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		tok2, err := wire.DecodeJobToken(enc)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		enc2, _ := wire.EncodeJobToken(tok2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}
