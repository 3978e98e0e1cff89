package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/internal/testnet"
	"byoc/ledger"
	"byoc/ledger/stores"
	"byoc/signer"
	"byoc/wire"
)

// eventSink records the usage events a signer delivers, by ID.
type eventSink struct {
	mu     sync.Mutex
	byID   map[string]json.RawMessage
	posts  int
	events int
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var evs []struct {
		ID      string          `json:"id"`
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &evs); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts++
	for _, e := range evs {
		s.events++
		s.byID[e.ID] = e.Data
	}
}

// signerInfo is an orchestrator's offer, made up (the signer does not
// check params against a recipient's secret): fresh recipientRandHash per
// client, ticket EV 1000 wei, price 1 wei per pixel.
func signerInfo(t *testing.T) string {
	rrh := make([]byte, 32)
	rand.Read(rrh)
	recipient := make([]byte, 20)
	recipient[19] = 7
	info := &wire.OrchestratorInfo{
		Transcoder: "https://orch.invalid:8935",
		TicketParams: &wire.TicketParams{Recipient: recipient, FaceValue: big.NewInt(1_000_000).Bytes(),
			WinProb: new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1000)).Bytes(), RecipientRandHash: rrh,
			Seed: []byte{1}, ExpirationBlock: big.NewInt(1 << 40).Bytes(),
			ExpirationParams: &wire.TicketExpirationParams{CreationRound: 1, CreationRoundBlockHash: make([]byte, 32)}},
		PriceInfo: &wire.PriceInfo{PricePerUnit: 1, PixelsPerUnit: 1},
		Address:   recipient,
		AuthToken: &wire.AuthToken{Token: []byte("t"), SessionId: "s", Expiration: time.Now().Add(time.Hour).Unix()},
	}
	return base64.StdEncoding.EncodeToString(info.Marshal())
}

// TestFaultSignerKilledUnderLoad runs `byoc signer` with budgets, the
// shared nonce counter and a usage-event sink as a process under
// concurrent payment load and kills it with SIGKILL twice, restarting it
// on the same data directory. Then: the ledger's invariants hold; no nonce
// of an acknowledged payment was signed twice; every spend in the ledger
// has exactly one usage event at the sink (by ID; redeliveries merge),
// their spent amounts add up to what the budget was charged, every
// acknowledged payment is among them, and there is no other: a call cut
// off by the kill and sent again was charged once.
func TestFaultSignerKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	sink := &eventSink{byID: map[string]json.RawMessage{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir, addr, admin := t.TempDir(), testnet.FreePort(t), testnet.FreePort(t)
	args := []string{"signer", "--data-dir", dir, "--listen", addr, "--admin-listen", admin, "--dev-key", testnet.KeyA,
		"--budgets", "--shared-nonces", "--usage-events-url", srv.URL, "--log-level", "error"}
	proc := testnet.StartProcess(t, "serving", args...)
	grant := `{"customer":"kim","amount":"100000000","key":"g1"}`
	if resp, err := http.Post("http://"+admin+"/admin/budget/grant", "application/json", strings.NewReader(grant)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("grant: %v %v", resp, err)
	}

	type ack struct {
		session string
		seq     uint64
		nonces  []uint32
		rrh     string
	}
	var (
		mu        sync.Mutex
		acks      []ack
		oks       atomic.Int64
		stop, up  atomic.Bool
		wg        sync.WaitGroup
		clients   = 6
		client    = &http.Client{Timeout: 5 * time.Second}
		statePath = "http://" + addr + "/generate-live-payment"
	)
	up.Store(true)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info := signerInfo(t)
			var state json.RawMessage
			for j := 0; !stop.Load(); j++ {
				if !up.Load() {
					time.Sleep(10 * time.Millisecond) // the signer is being restarted
					continue
				}
				body := fmt.Sprintf(`{"orchestrator":%q,"inPixels":3000,"ManifestID":"c%d"`, info, i)
				if state != nil {
					body += `,"state":` + string(state)
				}
				req, _ := http.NewRequest(http.MethodPost, statePath, bytes.NewBufferString(body+"}"))
				req.Header.Set("Signer-Auth-Id", "kim")
				resp, err := client.Do(req)
				if err != nil {
					continue // down
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					continue
				}
				var r struct {
					Payment string          `json:"payment"`
					State   json.RawMessage `json:"state"`
				}
				json.Unmarshal(b, &r)
				var ss struct{ State []byte }
				json.Unmarshal(r.State, &ss)
				var st struct {
					StateID        string
					SequenceNumber uint64
				}
				json.Unmarshal(ss.State, &st)
				p, err := wire.DecodePaymentHeader(r.Payment)
				if err != nil {
					t.Error(err)
					return
				}
				a := ack{session: st.StateID, seq: st.SequenceNumber, rrh: fmt.Sprintf("%x", p.TicketParams.RecipientRandHash)}
				for _, tsp := range p.TicketSenderParams {
					a.nonces = append(a.nonces, tsp.SenderNonce)
				}
				mu.Lock()
				acks = append(acks, a)
				mu.Unlock()
				oks.Add(1)
				state = r.State
			}
		}()
	}
	for k := range 2 {
		target := oks.Load() + 60
		testnet.Eventually(t, "load before the kill", func() bool { return oks.Load() >= target })
		up.Store(false)
		proc.Kill9()
		proc = testnet.StartProcess(t, "serving", args...)
		up.Store(true)
		t.Logf("kill %d done after %d acknowledged payments", k+1, oks.Load())
	}
	target := oks.Load() + 60
	testnet.Eventually(t, "load after the last restart", func() bool { return oks.Load() >= target })
	stop.Store(true)
	wg.Wait()

	// Every spend's event reaches the sink (the restarted signer delivers
	// what the killed one had not).
	spends := func() (n int, charged ledger.Amount) {
		resp, err := http.Get("http://" + admin + "/admin/statement?customer=kim")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			Spent ledger.Amount           `json:"spent"`
			Lines []struct{ Kind string } `json:"lines"`
		}
		json.NewDecoder(resp.Body).Decode(&st)
		for _, l := range st.Lines {
			if l.Kind == "spend" {
				n++
			}
		}
		return n, st.Spent
	}
	nSpends, charged := spends()
	testnet.Eventually(t, "every usage event delivered", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.byID) >= nSpends
	})
	// The last stop is a kill too: what is checked below is read from the
	// data directory as a restart finds it, the journal replayed first.
	proc.Kill9()

	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.byID) != nSpends {
		t.Errorf("%d distinct usage events for %d spends", len(sink.byID), nSpends)
	}
	// Clients resend a state until it is answered: with the shared nonce
	// counter, a call the kill cut off is charged once however often it is
	// sent, so there are as many spends as acknowledged payments.
	if nSpends != len(acks) {
		t.Errorf("%d spends for %d acknowledged payments", nSpends, len(acks))
	}
	total := ledger.Amount{}
	bySeq := map[string]bool{}
	for id, data := range sink.byID {
		var u struct {
			Spent          string `json:"spent"`
			SessionID      string `json:"session_id"`
			SequenceNumber uint64 `json:"sequence_number"`
			AuthID         string `json:"auth_id"`
		}
		if err := json.Unmarshal(data, &u); err != nil || u.AuthID != "kim" {
			t.Errorf("event %s: %s", id, data)
		}
		a, err := ledger.ParseAmount(u.Spent)
		if err != nil {
			t.Fatal(err)
		}
		total = total.Add(a)
		bySeq[fmt.Sprintf("%s/%d", u.SessionID, u.SequenceNumber)] = true
	}
	if total.Cmp(charged) != 0 {
		t.Errorf("events add up to %s wei, the budget was charged %s", total, charged)
	}
	used := map[string]bool{}
	for _, a := range acks {
		if !bySeq[fmt.Sprintf("%s/%d", a.session, a.seq)] {
			t.Errorf("acknowledged payment %s/%d has no usage event", a.session, a.seq)
		}
		for _, n := range a.nonces {
			k := fmt.Sprintf("%s/%d", a.rrh, n)
			if used[k] {
				t.Errorf("nonce %s signed twice", k)
			}
			used[k] = true
		}
	}

	ctx := context.Background()
	s, _, err := stores.Open(ctx, dir, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := ethsig.KeySignerFromHex(testnet.KeyA)
	if err != nil {
		t.Fatal(err)
	}
	bg := &signer.Budgets{Ledger: ledger.New(s, ledger.Options{}), Owner: k.Address().Hex()}
	if v, err := bg.Read(ctx, "kim"); err != nil || v.Spent.Cmp(charged) != 0 {
		t.Errorf("reopened after the kill, the budget was charged %s wei (%v); the signer said %s", v.Spent, err, charged)
	}
	r, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("invariant violated: %s", p)
	}
	t.Logf("report: %d acknowledged payments, %d spends (%d events delivered in %d posts, %d distinct), charged %s wei, 2 kills",
		len(acks), nSpends, sink.events, sink.posts, len(sink.byID), charged)
}
