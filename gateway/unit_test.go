package gateway

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"byoc/ethsig"
	"byoc/internal/transcript"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/pm"
	"byoc/wire"
)

func TestParseOrchestratorList(t *testing.T) {
	list, err := ParseOrchestratorList("a:1, https://a:1,b,, ")
	if err != nil || strings.Join(list, " ") != "https://a:1 https://b:8935" {
		t.Errorf("list %v %v", list, err)
	}
}

func TestValidJobID(t *testing.T) {
	for _, ok := range []string{"a", "job-1", "0f3a9c", "x.y:z_w", strings.Repeat("a", MaxJobIDLen)} {
		if err := ValidJobID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "x~2", "a/b", "é", "a\nb", strings.Repeat("a", MaxJobIDLen+1)} {
		if ValidJobID(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if a, b := NewJobID(), NewJobID(); a == b || len(a) != 32 || ValidJobID(a) != nil {
		t.Errorf("NewJobID %q %q", a, b)
	}
	j := &job{id: "j"}
	if j.attemptID() != "j" {
		t.Error(j.attemptID())
	}
	j.attempted = 1
	if j.attemptID() != "j~2" {
		t.Error(j.attemptID())
	}
}

func TestJobErrorStatus(t *testing.T) {
	a := func(stage Stage, err error) *AttemptError {
		return &AttemptError{Orchestrator: "o", Stage: stage, Err: err}
	}
	for _, tc := range []struct {
		attempts []*AttemptError
		want     int
	}{
		{nil, 503},
		{[]*AttemptError{a(StageToken, ErrUnknownCapability)}, 503},
		{[]*AttemptError{a(StageToken, ErrNeedsKey), a(StageToken, ErrNeedsKey)}, 402},
		{[]*AttemptError{a(StageToken, ErrNeedsKey), a(StageToken, ErrNoCapacity)}, 503},
		{[]*AttemptError{a(StagePayment, ErrJobIDUsed)}, 409},
		{[]*AttemptError{a(StageToken, ErrNoCapacity), a(StageJob, ErrTransport)}, 502},
	} {
		e := &JobError{Capability: "c", JobID: "j", Attempts: tc.attempts}
		if got := e.Status(); got != tc.want {
			t.Errorf("%v: %d, want %d", e, got, tc.want)
		}
	}
}

func TestParseBalanceLine(t *testing.T) {
	for in, want := range map[string]int64{" 8000000000.000}": 8000000000, "0.000}": 0, " 12}": 12, " -5.000 }": -5} {
		if got, ok := parseBalanceLine([]byte(in)); !ok || amountOf(got) != want {
			t.Errorf("%q: %s %v", in, got, ok)
		}
	}
	for _, bad := range []string{" 1.5}", "x}", "}"} {
		if _, ok := parseBalanceLine([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func amountOf(a ledger.Amount) int64 { v, _ := a.Int64(); return v }

// testGateway is a Gateway on a throwaway ledger, paying with the
// transcripts' sender key.
func testGateway(t *testing.T, signed bool) *Gateway {
	t.Helper()
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	d, _ := NewDiscovery(DiscoveryConfig{Static: []string{"https://127.0.0.1:1"}})
	cfg := Config{Discovery: d, Ledger: env.Ledger}
	if signed {
		s, err := ethsig.KeySignerFromHex(transcript.Paid().MadeWith.FixedInputs.SenderPrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Signer = s
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// A ticket earns what the orchestrator credits for it, its EV rounded down
// (ledger.CreditFor). Sizing with the exact EV would leave the hold short:
// 100 tickets of EV 1000.99 are credited 100 000 wei, not 100 099.
func TestPaySizesByCreditedEV(t *testing.T) {
	g := testGateway(t, true)
	tok := recordedToken(t)
	m := pm.MaxWinProb()
	winProb := new(big.Int).Quo(m, big.NewInt(200))
	tok.TicketParams.FaceValue = big.NewInt(200198).Bytes()
	tok.TicketParams.WinProb = winProb.Bytes()
	ev := pm.TicketEV(big.NewInt(200198), winProb)
	if f, _ := ev.Float64(); f < 1000.98 || f > 1000.99 {
		t.Fatalf("test EV %v", f)
	}
	o := &offer{token: tok}
	ctx, j := context.Background(), &job{req: &wire.JobRequest{Capability: "echo"}}
	p, err := g.pay(ctx, j, o, "job", ledger.Wei(100050))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Credits) != 101 || amountOf(p.Paid()) != 101000 {
		t.Errorf("%d tickets worth %s, want 101 worth 101000", len(p.Credits), p.Paid())
	}
	exact, _, _ := pm.TicketsNeeded(big.NewRat(100050, 1), ev, nil)
	if exact != 100 {
		t.Errorf("with the exact EV it would be %d tickets", exact)
	}
	if p, err := g.pay(ctx, j, o, "job", ledger.Amount{}); err != nil || len(p.Credits) != 0 || p.Header != "" {
		t.Errorf("nothing needed: %+v %v", p, err)
	}
	tok.TicketParams.WinProb = big.NewInt(1).Bytes() // EV far below a wei
	if _, err := g.pay(ctx, j, o, "job", ledger.Wei(1)); err == nil || !strings.Contains(err.Error(), "below 1 wei") {
		t.Errorf("sub-wei EV: %v", err)
	}
}

func recordedToken(t *testing.T) *wire.JobToken {
	t.Helper()
	sc, _ := transcript.Paid().Scenario("paid_job_1_first_payment")
	tok, err := wire.DecodeJobToken([]byte(sc.Hop(transcript.HopGatewayOrchestrator)[0].ResponseBody))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Every token a go-livepeer orchestrator answered in the recordings is
// understood without a panic: paid ones are usable (legacy balances),
// offchain ones without ticket_params are usable for free, one without
// capacity is not; and a keyless gateway refuses the paid ones clearly.
func TestEvaluateRecordedTokens(t *testing.T) {
	signed, keyless := testGateway(t, true), testGateway(t, false)
	n := 0
	for _, f := range []*transcript.File{transcript.Offchain(), transcript.Paid()} {
		for _, ex := range f.Exchanges(transcript.HopGatewayOrchestrator) {
			if ex.Path != "/process/token" || ex.StatusCode() != http.StatusOK {
				continue
			}
			n++
			tok, err := wire.DecodeJobToken([]byte(ex.ResponseBody))
			if err != nil {
				t.Fatalf("seq %d: %v", ex.Seq, err)
			}
			u := "https://127.0.0.1:1" // the recorded orchestrators' host, another port
			o, aerr := signed.evaluate(u, tok)
			switch {
			case tok.AvailableCapacity == 0:
				if !errors.Is(aerr, ErrNoCapacity) {
					t.Errorf("seq %d: no capacity: %v", ex.Seq, aerr)
				}
				continue
			case aerr != nil:
				t.Errorf("seq %d: %v", ex.Seq, aerr)
				continue
			}
			if o.exact || o.service == "" || o.price == nil {
				t.Errorf("seq %d: offer %+v", ex.Seq, o)
			}
			if o.price.Sign() > 0 {
				if amountOf(o.available) != tok.Balance || !o.poolFigure.ok {
					t.Errorf("seq %d: available %s, balance %d", ex.Seq, o.available, tok.Balance)
				}
				if _, aerr := keyless.evaluate(u, tok); !errors.Is(aerr, ErrNeedsKey) {
					t.Errorf("seq %d: keyless: %v", ex.Seq, aerr)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d recorded tokens", n)
	}
}

// The SSE relay writes each line as it comes, stops at [DONE] (ending that
// event with a blank line, and ignoring what follows), and reads the
// balance line and the insufficient-balance event.
func TestRelaySSE(t *testing.T) {
	long := strings.Repeat("y", 40<<10) // longer than the read buffer
	in := "data: {\"i\":0}\n\ndata: " + long + "\n\nevent: insufficient balance\ndata: {\"balance\": 17.000}\n\ndata: [DONE]\n\n\n\n\nmore"
	rec := httptest.NewRecorder()
	rr := relaySSE(rec, strings.NewReader(in))
	want := strings.TrimSuffix(in, "\n\n\n\nmore") + "\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("relayed %d bytes, want %d", len(got), len(want))
	}
	if !rr.complete || !rr.insufficient || !rr.endOK || amountOf(rr.end) != 17 || rr.upstreamErr != nil {
		t.Errorf("%+v", rr)
	}
}

// Jobs reusing a token share one PM session: their tickets' nonces never
// repeat, a session takes at most its budget of nonces, and it ends only
// once it is retired and no payment uses it.
func TestTokenCacheSharesOneSession(t *testing.T) {
	g := testGateway(t, true)
	lp := &localPayer{sender: g.payer.(*localPayer).sender, budget: 5}
	now := time.Unix(1000, 0)
	c := newTokenCache(time.Second, func() time.Time { return now }, lp)
	tok := recordedToken(t)
	r := c.put("https://o", "echo", tokenResult{url: "https://o", offer: &offer{url: "https://o", token: tok}})
	if r.offer.cached == nil || r.offer.reused {
		t.Fatalf("the fetching job's offer: cached %v reused %v", r.offer.cached, r.offer.reused)
	}
	got, ok := c.get("https://o", "echo")
	if !ok || !got.offer.reused || got.offer.cached != r.offer.cached || got.offer.poolFigure.ok {
		t.Fatalf("reuse: %+v %v", got.offer, ok)
	}
	ct := r.offer.cached
	s := ct.session.(*localSession)
	sid1, rel1, err := s.take(3)
	if err != nil {
		t.Fatalf("take 3: %v", err)
	}
	b1, err := lp.sender.CreateTicketBatch(sid1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.take(3); !errors.Is(err, ErrSessionSpent) {
		t.Fatalf("a sixth nonce was handed out past the budget of 5: %v", err)
	}
	sid2, rel2, err := s.take(2)
	if err != nil || sid2 != sid1 {
		t.Fatalf("take 2: %v, same session %v", err, sid2 == sid1)
	}
	b2, err := lp.sender.CreateTicketBatch(sid2, 2)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for _, b := range []*pm.TicketBatch{b1, b2} {
		for _, tk := range b.Tickets {
			if seen[tk.Nonce] {
				t.Fatalf("nonce %d used twice", tk.Nonce)
			}
			seen[tk.Nonce] = true
		}
	}
	rel1()
	now = now.Add(time.Second) // expired: retired on the next look
	if _, ok := c.get("https://o", "echo"); ok {
		t.Fatal("an expired token was reused")
	}
	if lp.sender.Sessions() != 1 {
		t.Fatalf("the session ended while a payment still used it: %d sessions", lp.sender.Sessions())
	}
	rel2()
	if lp.sender.Sessions() != 0 {
		t.Fatalf("the retired session was not ended: %d sessions", lp.sender.Sessions())
	}
	if _, _, err := s.take(1); !errors.Is(err, ErrSessionSpent) {
		t.Fatalf("a retired token's session was used: %v", err)
	}
	// The orchestrator sends the same params again: their nonces are
	// spent, so the new token's session is too (its tickets would
	// continue after nonce 5, past the budget).
	again := c.put("https://o", "echo", tokenResult{url: "https://o", offer: &offer{url: "https://o", token: recordedToken(t)}}).offer.cached
	if _, _, err := again.session.(*localSession).take(1); !errors.Is(err, ErrSessionSpent) {
		t.Fatalf("a session of params whose budget was spent took a nonce: %v", err)
	}
	again.session.Retire()
	// A payment from the shared session that it cannot take says so, and
	// one of its own is made and its session ended at once.
	tok = recordedToken(t)
	tok.TicketParams.RecipientRandHash = append([]byte{^tok.TicketParams.RecipientRandHash[0]}, tok.TicketParams.RecipientRandHash[1:]...) // fresh params
	ct2 := c.put("https://o", "echo", tokenResult{url: "https://o", offer: &offer{url: "https://o", token: tok}}).offer.cached
	req := PayRequest{Token: tok, Amount: ledger.Wei(1), Shared: ct2.session}
	ev := pm.TicketEV(new(big.Int).SetBytes(tok.TicketParams.FaceValue), new(big.Int).SetBytes(tok.TicketParams.WinProb))
	req.Amount = ledger.CreditFor(ev).Add(ledger.CreditFor(ev)).Add(ledger.CreditFor(ev)) // 3 tickets
	if p, err := lp.Pay(context.Background(), req); err != nil || len(p.Credits) != 3 {
		t.Fatalf("shared payment: %d tickets, %v", len(p.Credits), err)
	}
	if _, err := lp.Pay(context.Background(), req); !errors.Is(err, ErrSessionSpent) {
		t.Fatalf("the shared session took 6 nonces with a budget of 5: %v", err)
	}
	req.Shared = nil
	if p, err := lp.Pay(context.Background(), req); err != nil || len(p.Credits) != 3 {
		t.Fatalf("own payment: %d tickets, %v", len(p.Credits), err)
	}
	// Timeouts are not kept; refusals are.
	c.put("https://slow", "echo", tokenResult{url: "https://slow", err: &AttemptError{Err: ErrTimeout}})
	if _, ok := c.get("https://slow", "echo"); ok {
		t.Fatal("a timeout was kept")
	}
	c.put("https://gone", "echo", tokenResult{url: "https://gone", err: &AttemptError{Err: ErrTransport}})
	if r, ok := c.get("https://gone", "echo"); !ok || r.err == nil {
		t.Fatal("a refusal was not kept")
	}
}

// A token's service_addr must be on the orchestrator's host: names compare
// case-insensitively and without a trailing dot, addresses canonically;
// ports and schemes may differ; names are not resolved.
func TestSameHost(t *testing.T) {
	for _, tc := range []struct {
		orch, service string
		want          bool
	}{
		{"https://orch.example.com:8935", "https://orch.example.com:8935/", true},
		{"https://orch.example.com:8935", "https://ORCH.Example.com.:9000", true},
		{"http://orch.example.com:8935", "https://orch.example.com", true},
		{"https://orch.example.com:8935", "http://orch.example.com", false}, // TLS dropped
		{"https://127.0.0.1:8935", "https://127.0.0.1:1234", true},
		{"https://[::ffff:127.0.0.1]:8935", "https://127.0.0.1:8935", true},
		{"https://[2001:db8::1]:8935", "https://[2001:0db8:0:0::1]:1", true},
		{"https://127.0.0.1:8935", "https://127.0.0.2:8935", false},
		{"https://127.0.0.1:8935", "https://localhost:8935", false},
		{"https://orch.example.com:8935", "https://orch.example.com.evil.net:8935", false},
		{"https://orch.example.com:8935", "https://10.0.0.5:8935", false},
	} {
		su, err := url.Parse(tc.service)
		if err != nil {
			t.Fatal(err)
		}
		if got := sameHost(tc.orch, su); got != tc.want {
			t.Errorf("sameHost(%s, %s) = %v, want %v", tc.orch, tc.service, got, tc.want)
		}
	}
}

// Failed and lost streams are forgotten 10 minutes after their last
// event; running ones are kept.
func TestStreamsForgotten(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := &Gateway{cfg: Config{Now: func() time.Time { return now }}}
	for _, st := range []string{"failed", "lost", "running"} {
		_, cancel := context.WithCancel(context.Background())
		s := &gwStream{id: st, state: st, cancel: cancel}
		s.event("x", "y", now)
		g.streams.add(s)
	}
	now = now.Add(endedKeep)
	g.forgetEnded()
	if len(g.streams.list()) != 3 {
		t.Fatalf("forgotten too early: %d left", len(g.streams.list()))
	}
	now = now.Add(time.Second)
	g.forgetEnded()
	if l := g.streams.list(); len(l) != 1 || l[0].id != "running" {
		t.Errorf("left: %v", l)
	}
}
