package testnet

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"byoc/internal/transcript"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/wire"
)

// The replays of go-livepeer's recorded BYOC exchanges against our
// orchestrator: the orchestrator's tests run them, and so does the PR #3914
// suite (backward compatibility).

// replayMode says how much of a recorded answer ours must match.
type replayMode int

const (
	// sameAll: status, header names and body (text byte for byte, JSON by
	// keys, order and values), after normalising ports.
	sameAll replayMode = iota
	// sameShape: status and header names; the body's text differs (our
	// error messages say more) or it is a token (checked by sameToken).
	sameShape
	// sameToken: a 200 token whose keys include the recorded token's keys in
	// the recorded order (ours adds ticket_params and pool_balance).
	sameToken
	// differs: we answer differently on purpose (why says how); only the
	// status is checked against ours.
	differs
)

type replayExpect struct {
	mode   replayMode
	status int // for differs: our status
	why    string
}

// Our answers to the requests a go-livepeer gateway and workers sent a
// go-livepeer orchestrator (offchain recording). Answers not listed must
// match in full (sameAll), tokens at least in shape (sameToken).
var offchainReplay = map[string]replayExpect{
	"register_bad_secret":                {differs, 401, "a wrong secret is 401 Unauthorized, not 400"},
	"register_missing_authorization":     {differs, 401, "a missing secret is 401 Unauthorized, not 400"},
	"register_invalid_json":              {sameShape, 0, "http.Error text/plain with a newline, not JSON-typed text"},
	"register_currency_usd_offchain":     {differs, 400, "go-livepeer panics (D11); we refuse the currency"},
	"register_capability_price0":         {sameShape, 0, "ok as text/plain, not JSON-typed text"},
	"register_sse_capability_with_token": {sameShape, 0, "ok as text/plain"},
	"register_capability_price_gt0":      {sameShape, 0, "ok as text/plain"},
	"register_dead_worker":               {sameShape, 0, "ok as text/plain"},
	"register_error_worker":              {sameShape, 0, "ok as text/plain"},
	"unregister_capability":              {sameShape, 0, "ok as text/plain"},
	"unregister_unknown_capability":      {sameShape, 0, "ok as text/plain"},
	"unregister_bad_secret":              {differs, 401, "401 Unauthorized, not 400"},
	"direct_token_sig_empty token":       {sameToken, 0, ""},
	// go-livepeer's offchain gateway asks for tokens with sig "0x", which its
	// own orchestrator refuses, so no offchain job ever runs (docs/protocol.md §5.3).
	// Ours accepts it as an unsigned sender and answers with a token.
	"job_plain token":                               {differs, 200, `token for sig "0x": accepted`},
	"job_with_id token":                             {differs, 200, `token for sig "0x": accepted`},
	"job_sse token":                                 {differs, 200, `token for sig "0x": accepted`},
	"job_price_gt0_via_gateway token":               {differs, 200, `token for sig "0x": accepted`},
	"stream_start_via_gateway token":                {differs, 200, `token for sig "0x": accepted`},
	"job_unknown_capability token":                  {differs, 404, "an unknown capability is 404"},
	"job_after_unregister_via_gateway token":        {differs, 404, "an unregistered capability is 404"},
	"direct_token_sig_0x token":                     {differs, 200, `"0x" is an unsigned sender, accepted (go-livepeer's own offchain gateway sends it, D6)`},
	"direct_token_price_gt0_offchain token":         {sameToken, 0, "quoted at its registered price: offchain byoc still charges, with real tickets"},
	"direct_token_unknown_capability token":         {differs, 404, "an unknown capability is 404, not a 200 with price 0"},
	"direct_token_missing_capability_header token":  {sameAll, 0, ""},
	"direct_token_missing_eth_address_header token": {sameAll, 0, ""},
	"direct_job_sig_0x":                             {differs, 200, `"0x" is unsigned: the free job runs anonymously`},
	"direct_job_price_gt0_offchain":                 {differs, 402, "an unsigned request may not use a priced capability"},
	"direct_job_missing_livepeer_header":            {sameShape, 0, "the message says what is wrong"},
	"direct_job_garbage_base64":                     {sameShape, 0, "the message says what is wrong"},
	"direct_job_sse_with_worker_token":              {sameShape, 0, "the relay ends with the worker's stream instead of writing newlines until the timeout (D2b)"},
	"direct_job_dead_worker_removes_capability":     {differs, 502, "a dead worker is 502 Bad Gateway (still 5xx: the gateway tries another orchestrator)"},
}

// ReplayOffchain replays every request the recorded
// go-livepeer gateway and workers sent to the orchestrator, in order, at
// our orchestrator, with stub workers answering as the recorded ones did,
// and compares our answers with the recorded ones (and what our
// orchestrator sent the workers with what the reference sent them).
// Streams (/ai/stream/*, trickle) and the gRPC ping are not part of byoc
// yet; their exchanges are counted and left out.
func ReplayOffchain(t *testing.T) {
	file := transcript.Offchain()
	n := StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) {
		c.Orchestrator.Secret = "byoc-secret-123"
		c.Orchestrator.MinCompute = 60e9
	})

	// Stub workers in place of the recorded ones, by recorded URL.
	var reverse, sse []transcript.Exchange
	for _, s := range file.Scenarios {
		for _, e := range s.Hop(transcript.HopOrchestratorWorker) {
			switch {
			case s.Name == "direct_job_sse_with_worker_token":
				sse = append(sse, e)
			case strings.HasPrefix(s.Name, "direct_job"):
				reverse = append(reverse, e)
			}
		}
	}
	reverseStub, sseStub := transcript.NewStubWorkerFor(t, reverse), transcript.NewStubWorkerFor(t, sse)
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	workerURL := strings.NewReplacer(
		"http://127.0.0.1:38102", reverseStub.URL,
		"http://127.0.0.1:38103", sseStub.URL,
		"http://127.0.0.1:38999", deadURL,
		"http://127.0.0.1:38199", notFound.URL,
	)

	replayed, left := 0, 0
	for _, s := range file.Scenarios {
		for _, e := range s.Exchanges {
			if e.Hop != transcript.HopGatewayOrchestrator && e.Hop != transcript.HopWorkerOrchestrator {
				continue
			}
			if strings.HasPrefix(e.Path, "/ai/") || strings.HasPrefix(e.Path, "/net.") {
				left++
				continue
			}
			replayed++
			resp, body := SendRecorded(t, noRedirect, n.URL, s.Name, e, workerURL)
			checkReplay(t, offchainReplay, s.Name, e, resp, body)
		}
	}
	if replayed != 42 || left != 5 {
		t.Errorf("replayed %d exchanges and left out %d; the recording has 42 and 5", replayed, left)
	}
	// What our orchestrator sent the workers is what the reference sent.
	for name, stub := range map[string]*transcript.StubWorker{"reverse": reverseStub, "sse": sseStub} {
		if d := stub.Compare().WithoutHeaders("Authorization"); len(d) > 0 {
			t.Errorf("requests to the %s worker differ from the reference's:\n%s", name, d)
		}
	}
	if got := sseStub.Received(); len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer worker-token-abc" {
		t.Errorf("the SSE worker did not get its registered token: %+v", got)
	}
}

var noRedirect = &http.Client{
	Transport:     Insecure.Transport,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// additions are headers byoc adds to answers a go-livepeer peer ignores.
var additions = &transcript.Options{IgnoreHeaders: []string{wire.HeaderJobCharged, wire.HeaderPaymentCredited}}

// SendRecorded sends recorded exchange e (of scenario name) to the server
// at base with client, a registration's worker URLs rewritten by workerURL
// (the recording's worker addresses to the test's stubs), and returns the
// answer with its body read.
func SendRecorded(t testing.TB, client *http.Client, base, name string, e transcript.Exchange, workerURL *strings.Replacer) (*http.Response, []byte) {
	t.Helper()
	req, err := e.Request(base)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if strings.HasPrefix(e.Path, "/capability/register") {
		body, _ := io.ReadAll(req.Body)
		body = []byte(workerURL.Replace(string(body)))
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %s: %v", name, e.Path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

func checkReplay(t *testing.T, expect map[string]replayExpect, name string, want transcript.Exchange, resp *http.Response, body []byte) {
	t.Helper()
	// Token answers are looked up as "<scenario> token" and default to
	// sameToken; other answers by scenario name and default to sameAll.
	ex, ok := expect[name]
	if isToken := strings.HasPrefix(want.Path, "/process/token"); isToken {
		if ex, ok = expect[name+" token"]; !ok {
			ex = replayExpect{mode: sameToken}
		}
	}
	diffs := transcript.CompareResponseParts(want, resp.StatusCode, resp.Header, body, additions)
	switch ex.mode {
	case sameAll:
		if len(diffs) > 0 {
			t.Errorf("%s: our answer differs from go-livepeer's:\n%s\n%s", name, diffs, body)
		}
	case sameShape:
		if d := diffs.WithoutHeaders("X-Content-Type-Options").Without(transcript.DiffBody, transcript.DiffHeaderValue, transcript.DiffJSONValue, transcript.DiffJSONKeys,
			transcript.DiffJSONOrder, transcript.DiffJSONType, transcript.DiffJSONFormat); len(d) > 0 {
			t.Errorf("%s (%s): status or header names differ:\n%s", name, ex.why, d)
		}
	case sameToken:
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d: %s", name, resp.StatusCode, body)
			return
		}
		// balance and available_capacity are left out when 0, by both.
		valueKeys := []string{"balance", "available_capacity"}
		wantKeys, gotKeys := without(jsonKeys(t, []byte(want.ResponseBody)), valueKeys), without(jsonKeys(t, body), valueKeys)
		if !subsequence(wantKeys, gotKeys) {
			t.Errorf("%s: token keys %v do not contain go-livepeer's %v in order", name, gotKeys, wantKeys)
		}
		for _, k := range []string{"ticket_params", "price", "service_addr", "LastNonce"} {
			if !contains(gotKeys, k) {
				t.Errorf("%s: token lacks %s", name, k)
			}
		}
	case differs:
		if resp.StatusCode != ex.status {
			t.Errorf("%s (%s): status %d, want %d: %s", name, ex.why, resp.StatusCode, ex.status, body)
		}
	}
}

func jsonKeys(t *testing.T, b []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", b)
	}
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	return keys
}

func without(keys, drop []string) []string {
	var out []string
	for _, k := range keys {
		if !contains(drop, k) {
			out = append(out, k)
		}
	}
	return out
}

func subsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && want[i] == g {
			i++
		}
	}
	return i == len(want)
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// Our answers to the paid recording: a go-livepeer gateway paying with real
// tickets. Listed scenarios differ on purpose; the others must match in
// full, Livepeer-Balance values included.
var paidReplay = map[string]replayExpect{
	"paid_register_capabilities":              {sameShape, 0, "ok as text/plain"},
	"mixed_register_on_offchain_orchestrator": {sameShape, 0, "ok as text/plain"},
	"paid_job_gwei_price_attempt_1":           {differs, 402, "an underpaid job is 402 Payment Required (the 4 tickets stay in the pool, as in go-livepeer)"},
	"paid_direct_job_signed_no_payment":       {differs, 402, "402 Payment Required"},
	"paid_direct_job_sig_0x":                  {differs, 402, `"0x" is unsigned, and an unsigned request may not use a priced capability`},
	"paid_sse_job":                            {sameShape, 0, "the balance line before [DONE] shows the job's own hold after its charge, where go-livepeer shows the capability's balance before any"},
	"paid_job_1_first_payment":                {sameAll, 0, ""},
	"paid_job_2_balance_already_covers":       {sameAll, 0, ""},
	"paid_job_gwei_price_attempt_2":           {sameAll, 0, ""},
}

// ReplayPaid runs the requests of a real go-livepeer gateway
// paying with real tickets against our orchestrator, configured with the
// recording's recipient key, PM secret, round and block: the recorded
// tickets are valid here, so our orchestrator credits them, charges the
// jobs and answers with the very balances the reference answered.
func ReplayPaid(t *testing.T) {
	file := transcript.Paid()
	in := file.MadeWith.FixedInputs
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	secretBytes := common.FromHex(in.RecipientHMACSecret)
	rc := pm.RecipientConfig{
		Address:  common.HexToAddress(in.RecipientAddress),
		TicketEV: mustBig(t, in.TicketEV),
		GasPrice: func() *big.Int { return mustBig(t, in.GasPrice) },
		Blocks: &pm.StaticBlocks{Block: big.NewInt(in.LastSeenL1Block), Round: in.LastInitializedRound,
			BlockHash: common.HexToHash(in.RoundBlockHash)},
	}
	copy(rc.Secret[:], secretBytes)
	recipient, err := pm.NewRecipient(rc)
	if err != nil {
		t.Fatal(err)
	}
	srv := ServeOrchestrator(t, orchestrator.Config{Secret: "byoc-secret-123", Ledger: env.Ledger, Recipient: recipient})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var reverse, sse []transcript.Exchange
	for _, s := range file.Scenarios {
		for _, e := range s.Hop(transcript.HopOrchestratorWorker) {
			switch {
			case strings.HasPrefix(e.Path, "/stream/"):
			case s.Name == "paid_sse_job":
				sse = append(sse, e)
			default:
				reverse = append(reverse, e)
			}
		}
	}
	reverseStub, sseStub := transcript.NewStubWorkerFor(t, reverse), transcript.NewStubWorkerFor(t, sse)
	workerURL := strings.NewReplacer("http://127.0.0.1:38102", reverseStub.URL, "http://127.0.0.1:38103", sseStub.URL)

	replayed := 0
	for _, s := range file.Scenarios {
		for _, e := range s.Exchanges {
			if (e.Hop != transcript.HopGatewayOrchestrator && e.Hop != transcript.HopWorkerOrchestrator) ||
				strings.HasPrefix(e.Path, "/ai/") {
				continue // the paid stream exchanges: orchestrator's TestPaidStreamTranscriptReplay
			}
			replayed++
			resp, body := SendRecorded(t, client, srv.URL, s.Name, e, workerURL)
			checkReplay(t, paidReplay, s.Name, e, resp, body)
			// Token balances are the reference's, up to the first stream
			// (whose payments go to /ai/stream routes, not replayed).
			if strings.HasPrefix(e.Path, "/process/token") && !strings.Contains(s.Name, "stream") && !strings.HasPrefix(s.Name, "mixed") {
				want, _ := wire.DecodeJobToken([]byte(e.ResponseBody))
				got, err := wire.DecodeJobToken(body)
				if err != nil || got.Balance != want.Balance {
					t.Errorf("%s: token balance %v, go-livepeer's %d (%v)", s.Name, got, want.Balance, err)
				}
			}
		}
	}
	if replayed != 29 {
		t.Errorf("replayed %d exchanges, want 29", replayed)
	}
	for name, stub := range map[string]*transcript.StubWorker{"reverse": reverseStub, "sse": sseStub} {
		if d := stub.Compare(); len(d) > 0 {
			t.Errorf("requests to the %s worker differ from the reference's:\n%s", name, d)
		}
	}
	// Every recorded ticket was credited exactly once to the gateway's
	// account: 1 + 4 + 4 + 1 tickets of 8e9 wei (rounded down per ticket).
	r := env.MustVerify()
	if r.Credited.Cmp(ledger.Wei(10*8_000_000_000)) != 0 {
		t.Errorf("credited %s wei, want the 10 recorded tickets", r.Credited)
	}
}

func mustBig(t *testing.T, s string) *big.Int {
	t.Helper()
	f, ok := new(big.Float).SetString(s)
	if !ok {
		t.Fatalf("not a number: %q", s)
	}
	b, _ := f.Int(nil)
	return b
}

// ServeOrchestrator serves an orchestrator built from cfg (its ServiceAddr
// set to the server's URL) on a loopback TLS server with HTTP/2, closed when
// the test ends: for orchestrators whose ledger or recipient a test builds
// itself.
func ServeOrchestrator(t testing.TB, cfg orchestrator.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg.ServiceAddr = srv.URL
	o, err := orchestrator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = o.Handler()
	return srv
}
