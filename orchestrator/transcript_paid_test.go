package orchestrator_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/big"
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

// TestReplayPaidTranscript runs the requests of a real go-livepeer gateway
// paying with real tickets against our orchestrator, configured with the
// recording's recipient key, PM secret, round and block: the recorded
// tickets are valid here, so our orchestrator credits them, charges the
// jobs and answers with the very balances the reference answered.
func TestReplayPaidTranscript(t *testing.T) {
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
	srv := httptest.NewUnstartedServer(nil)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	o, err := orchestrator.New(orchestrator.Config{ServiceAddr: srv.URL, Secret: "byoc-secret-123", Ledger: env.Ledger, Recipient: recipient})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = o.Handler()
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
				continue // streams and trickle are not part of byoc yet
			}
			replayed++
			req, err := e.Request(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(e.Path, "/capability/register") {
				body, _ := io.ReadAll(req.Body)
				body = []byte(workerURL.Replace(string(body)))
				req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
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
