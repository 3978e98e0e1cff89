package orchestrator_test

import (
	"crypto/tls"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/internal/testnet"
	"byoc/internal/transcript"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/wire"
)

// go-livepeer's paid recording, its stream exchanges included, replayed at
// our orchestrator as the go-livepeer gateway sent them — real tickets,
// valid here because the orchestrator runs with the recording's recipient
// key, PM secret, round and block — and checked for money, not only shape:
// the underpaid start is 402 and opens nothing; the paid start opens the
// stream's hold with its tickets and a draw from the pool, and its
// Livepeer-Balance is that hold less the first second it owes; the legacy top-up (id "", the stream in
// the details) credits its tickets to that hold once, after 10 s of the
// stream were charged, and the same payment sent again credits nothing;
// the stop charges exactly 15 s and releases the rest to the pool; the
// go-livepeer gateway's second stop moves nothing. On every store.
func TestPaidStreamTranscriptReplay(t *testing.T) {
	for _, st := range ledgertest.Stores {
		t.Run(st.Name, func(t *testing.T) { testPaidStreamReplay(t, st.Factory) })
	}
}

func testPaidStreamReplay(t *testing.T, f ledgertest.Factory) {
	file := transcript.Paid()
	in := file.MadeWith.FixedInputs
	env := ledgertest.NewEnv(t, f)
	rc := pm.RecipientConfig{
		Address:  common.HexToAddress(in.RecipientAddress),
		TicketEV: bigOf(t, in.TicketEV),
		GasPrice: func() *big.Int { return bigOf(t, in.GasPrice) },
		Blocks: &pm.StaticBlocks{Block: big.NewInt(in.LastSeenL1Block), Round: in.LastInitializedRound,
			BlockHash: common.HexToHash(in.RoundBlockHash)},
	}
	copy(rc.Secret[:], common.FromHex(in.RecipientHMACSecret))
	recipient, err := pm.NewRecipient(rc)
	if err != nil {
		t.Fatal(err)
	}
	srv := testnet.ServeOrchestrator(t, orchestrator.Config{Secret: "byoc-secret-123", Ledger: env.Ledger, Recipient: recipient,
		Channels: &memChannels{}, StreamTicker: func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}

	// The workers: the stream worker is the SSE one (its recorded host).
	var reverse, sse []transcript.Exchange
	for _, s := range file.Scenarios {
		for _, e := range s.Hop(transcript.HopOrchestratorWorker) {
			if s.Name == "paid_sse_job" || strings.HasPrefix(e.Path, "/stream/") {
				sse = append(sse, e)
			} else {
				reverse = append(reverse, e)
			}
		}
	}
	reverseStub, sseStub := transcript.NewStubWorkerFor(t, reverse), transcript.NewStubWorkerFor(t, sse)
	workerURL := strings.NewReplacer("http://127.0.0.1:38102", reverseStub.URL, "http://127.0.0.1:38103", sseStub.URL)

	sender := common.HexToAddress(in.SenderAddress).Hex()
	const capability, streamID = "sse-paid-gwei", "harness-a66d5865"
	pool := ledger.PoolKey{Sender: sender, Capability: capability}.Ref()
	hold := ledger.JobKey{Sender: sender, JobID: streamID}.Ref()
	price := int64(1_000_000_000) // the recording's fixed price, wei per second
	bal := func(ref ledger.Ref) *big.Int {
		t.Helper()
		a, err := env.Ledger.Balance(env.Ctx, ref)
		if err != nil {
			t.Fatalf("balance of %s: %v", ref, err)
		}
		return a.Big()
	}
	header := func(resp *http.Response, name string) *big.Int {
		t.Helper()
		v, ok := new(big.Int).SetString(resp.Header.Get(name), 10)
		if !ok {
			t.Fatalf("%s: %q is not a number", name, resp.Header.Get(name))
		}
		return v
	}
	send := func(e transcript.Exchange) (*http.Response, []byte) {
		t.Helper()
		return testnet.SendRecorded(t, client, srv.URL, "paid stream", e, workerURL)
	}

	var poolBefore, startCredited, held *big.Int
	var payment transcript.Exchange
	stops := 0
	for _, s := range file.Scenarios {
		if strings.HasPrefix(s.Name, "mixed") {
			continue // an offchain orchestrator's
		}
		for _, e := range s.Exchanges {
			if e.Hop != transcript.HopGatewayOrchestrator && e.Hop != transcript.HopWorkerOrchestrator || strings.HasPrefix(e.Path, "/ai/trickle/") {
				continue // the trickle reads are the data plane's
			}
			if e.Path == "/ai/stream/start" && s.Name == "paid_stream_start_via_gateway" {
				poolBefore = bal(pool)
			}
			resp, body := send(e)
			switch {
			case e.Path == "/ai/stream/start" && s.Name == "paid_stream_start_timeout30_underpaid":
				if resp.StatusCode != http.StatusPaymentRequired || string(body) != e.ResponseBody {
					t.Errorf("underpaid start: %d %q, want go-livepeer's 402 %q", resp.StatusCode, body, e.ResponseBody)
				}
			case e.Path == "/ai/stream/stop" && s.Name == "paid_stream_start_timeout30_underpaid":
				// go-livepeer: 400 (it checks the balance first); no stream runs.
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("stop of the stream that never started: %d %q, want 404", resp.StatusCode, body)
				}
			case e.Path == "/ai/stream/start":
				for _, h := range []string{wire.HeaderControlURL, wire.HeaderEventsURL, wire.HeaderBalance} {
					if resp.StatusCode != http.StatusOK || resp.Header.Get(h) == "" {
						t.Fatalf("paid start: %d %q, %s %q", resp.StatusCode, body, h, resp.Header.Get(h))
					}
				}
				held = bal(hold)
				startCredited = header(resp, wire.HeaderPaymentCredited)
				drawn := new(big.Int).Sub(poolBefore, bal(pool))
				// A stream owes its first second from its start (the one
				// rounding rule: at least one unit).
				if want := new(big.Int).Sub(held, big.NewInt(price)); header(resp, wire.HeaderBalance).Cmp(want) != 0 ||
					new(big.Int).Add(startCredited, drawn).Cmp(held) != 0 || startCredited.Sign() <= 0 {
					t.Errorf("paid start: Livepeer-Balance %s, want the hold %s less 1 s owed; hold = credited %s + drawn %s?",
						resp.Header.Get(wire.HeaderBalance), held, startCredited, drawn)
				}
				env.Clock.Advance(10 * time.Second)
			case e.Path == "/ai/stream/payment":
				payment = e
				credited := header(resp, wire.HeaderPaymentCredited)
				want := new(big.Int).Add(held, credited)
				want.Sub(want, big.NewInt(10*price))
				if resp.StatusCode != http.StatusOK || credited.Sign() <= 0 || header(resp, wire.HeaderBalance).Cmp(want) != 0 || bal(hold).Cmp(want) != 0 {
					t.Errorf("legacy top-up: %d %q credited %s balance %s hold %s; want 200, the hold + credit - 10 s = %s",
						resp.StatusCode, body, credited, resp.Header.Get(wire.HeaderBalance), bal(hold), want)
				}
				held = want
				t.Logf("top-up: go-livepeer answered Livepeer-Balance %s (the capability's balance), we %s (the stream's hold less what it owes); credited %s",
					e.ResponseHeaders.Get(wire.HeaderBalance), resp.Header.Get(wire.HeaderBalance), credited)
				// The same payment again: its tickets were credited once.
				again, b := send(payment)
				if again.StatusCode == http.StatusOK || bal(hold).Cmp(held) != 0 {
					t.Errorf("the top-up sent again: %d %q, hold %s; want refused, the hold still %s", again.StatusCode, b, bal(hold), held)
				}
				t.Logf("the top-up sent again: %d %q", again.StatusCode, strings.TrimSpace(string(b)))
				env.Clock.Advance(5 * time.Second)
			case e.Path == "/ai/stream/stop":
				stops++
				if stops == 1 {
					if resp.StatusCode != http.StatusOK || string(body) != e.ResponseBody {
						t.Errorf("stop: %d %q, want go-livepeer's 200 %q", resp.StatusCode, body, e.ResponseBody)
					}
					break
				}
				// go-livepeer's gateway stops twice; go-livepeer answers 200
				// again, we 404: the stream is gone, nothing moves.
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("second stop: %d %q, want 404", resp.StatusCode, body)
				}
			}
		}
	}
	if stops != 2 || payment.Path == "" || held == nil {
		t.Fatalf("the recording's stream exchanges were not all replayed: stops %d, payment %v", stops, payment.Path != "")
	}
	st, err := env.Ledger.Statement(env.Ctx, hold, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Account.State != ledger.StateClosed || st.Charged.Big().Cmp(big.NewInt(15*price)) != 0 {
		t.Errorf("the stream's hold: %s, charged %s; want closed, 15 s at %d", st.Account.State, st.Charged, price)
	}
	if released := st.Released.Big(); released.Cmp(new(big.Int).Sub(held, big.NewInt(5*price))) != 0 {
		t.Errorf("released %s, want what it held less the last 5 s: %s", released, new(big.Int).Sub(held, big.NewInt(5*price)))
	}
	var calls []string
	for _, r := range sseStub.Received() {
		if strings.HasPrefix(r.Path, "/stream/") {
			calls = append(calls, r.Path+" "+r.Header.Get(wire.HeaderStreamID))
		}
	}
	if strings.Join(calls, ",") != "/stream/start "+streamID+",/stream/stop "+streamID {
		t.Errorf("the stream worker's calls: %v, want one start and one stop", calls)
	}
}

func bigOf(t *testing.T, s string) *big.Int {
	t.Helper()
	f, ok := new(big.Float).SetString(s)
	if !ok {
		t.Fatalf("not a number: %q", s)
	}
	b, _ := f.Int(nil)
	return b
}
