package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/gateway"
	"byoc/internal/testnet"
	"byoc/internal/transcript"
	"byoc/ledger"
	"byoc/pm"
	"byoc/trickle"
	"byoc/wire"
)

// glStreamOrch is a stub of a go-livepeer (master) orchestrator as it
// bills BYOC streams (docs/protocol.md §9): one balance per (sender,
// capability), credited the expected value of each payment's tickets; a
// start is refused 402 unless that balance, after crediting, holds 60 s
// of compute, and is then charged the start call's whole seconds rounded
// up (1 s); every 23 s of the stub's own clock a running stream's
// balance is debited 23 s of compute; the first time it is below zero
// the stub only warns, the second time it removes the stream (closes its
// channels: the gateway's events subscription ends). A top-up
// (/ai/stream/payment) is credited and answered 200, or 400 when the
// balance is still below 60 s; a stop is refused 400 below 60 s, as
// go-livepeer's setupOrchJob does. Its token's balance is that (sender,
// capability) balance, floored. Tickets are not verified: the stub is
// about the cadence, not PM.
type glStreamOrch struct {
	URL   string
	price int64 // wei per second
	tok   []byte
	media *trickle.Server

	mu       sync.Mutex
	balance  map[string]*big.Rat // sender/capability
	streams  map[string]*glStream
	credited *big.Rat // all tickets' EV
	minBal   *big.Rat // the lowest balance seen after a debit (nil before one)
	refuse   bool     // refuse top-ups (400, nothing credited)
	nothing  bool     // answer top-ups 200 with Livepeer-Payment-Credited: 0, crediting nothing
	full     bool     // refuse starts 503 (no capacity) before taking their payment
	removed  []string // streams it removed for want of money
	stopped  []string // streams stopped by a stop request
	payments int      // top-ups answered 200
	refused  int      // top-ups refused (refuse set)
	seen     map[string]bool
}

type glStream struct {
	sender, capability string
	elapsed            time.Duration // on the stub's clock, since the start
	ticks              int
	warned             bool
	charged            *big.Rat
}

func newGLStreamOrch(t *testing.T, price int64) *glStreamOrch {
	t.Helper()
	sc, ok := transcript.Paid().Scenario("paid_job_1_first_payment")
	if !ok {
		t.Fatal("no recorded token")
	}
	o := &glStreamOrch{price: price, tok: []byte(sc.Hop(transcript.HopGatewayOrchestrator)[0].ResponseBody),
		media:   trickle.NewServer(trickle.Config{BasePath: "/ai/trickle/", SweepInterval: -1}),
		balance: map[string]*big.Rat{}, seen: map[string]bool{}, streams: map[string]*glStream{}, credited: new(big.Rat)}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		o.media.Shutdown()
		srv.Close()
	})
	o.URL = srv.URL
	return o
}

func (o *glStreamOrch) seconds(n int64) *big.Rat { return big.NewRat(n*o.price, 1) }

func (o *glStreamOrch) bal(sender, capability string) *big.Rat {
	k := strings.ToLower(sender) + "/" + capability
	if o.balance[k] == nil {
		o.balance[k] = new(big.Rat)
	}
	return o.balance[k]
}

// credit adds the EV of a payment's tickets to its sender's balance
// (o.mu held).
func (o *glStreamOrch) credit(hdr, capability string) error {
	if hdr == "" {
		return nil
	}
	p, err := wire.DecodePaymentHeader(hdr)
	if err != nil || p.TicketParams == nil {
		return fmt.Errorf("payment: %v", err)
	}
	ev := pm.TicketEV(new(big.Int).SetBytes(p.TicketParams.FaceValue), new(big.Int).SetBytes(p.TicketParams.WinProb))
	n := int64(0)
	for _, sp := range p.TicketSenderParams {
		k := fmt.Sprintf("%x/%d", p.TicketParams.RecipientRandHash, sp.SenderNonce)
		if !o.seen[k] { // a nonce seen before is not credited again
			o.seen[k] = true
			n++
		}
	}
	v := new(big.Rat).Mul(ev, big.NewRat(n, 1))
	b := o.bal(common.BytesToAddress(p.Sender).Hex(), capability)
	b.Add(b, v)
	o.credited.Add(o.credited, v)
	return nil
}

func (o *glStreamOrch) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if strings.HasPrefix(r.URL.Path, "/ai/trickle/") {
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		o.media.ServeHTTP(w, r)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.URL.Path == "/process/token" {
		js, err := wire.DecodeJobSenderHeader(r.Header.Get(wire.HeaderJobSender))
		tok, terr := wire.DecodeJobToken(o.tok)
		if err != nil || terr != nil {
			http.Error(w, fmt.Sprint(err, terr), http.StatusBadRequest)
			return
		}
		// EV 1000 wei a ticket, exactly: 255 divides 2^256-1.
		tok.TicketParams.FaceValue = big.NewInt(255000).Bytes()
		tok.TicketParams.WinProb = new(big.Int).Quo(pm.MaxWinProb(), big.NewInt(255)).Bytes()
		// A fresh seed (and so recipient rand) for each token, as
		// go-livepeer's recipient draws one per TicketParams call.
		seed, hash := make([]byte, 32), make([]byte, 32)
		rand.Read(seed)
		rand.Read(hash)
		tok.TicketParams.Seed, tok.TicketParams.RecipientRandHash = seed, hash
		tok.Price = &wire.PriceInfo{PricePerUnit: o.price, PixelsPerUnit: 1}
		tok.ServiceAddr, tok.AvailableCapacity = o.URL, 4
		b := o.bal(js.Addr, r.Header.Get(wire.HeaderCapability))
		tok.Balance = wire.BalanceForToken(new(big.Int).Quo(b.Num(), b.Denom()))
		out, _ := wire.EncodeJobToken(tok)
		w.Write(out)
		return
	}
	req, err := wire.DecodeJobRequestHeader(r.Header.Get(wire.HeaderJobRequest))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var details wire.JobRequestDetails
	json.Unmarshal([]byte(req.Request), &details)
	b := o.bal(req.Sender, req.Capability)
	minimum := o.seconds(60) // go-livepeer's 60 s after crediting
	switch r.URL.Path {
	case "/ai/stream/start":
		if o.full {
			http.Error(w, "No capacity available for capability", http.StatusServiceUnavailable)
			return
		}
		if err := o.credit(r.Header.Get(wire.PaymentHeader), req.Capability); err != nil || b.Cmp(minimum) < 0 {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusPaymentRequired)
			io.WriteString(w, "Insufficient balance for request\n")
			return
		}
		o.media.Create(req.ID + "-control")
		o.media.Create(req.ID + "-events")
		b.Sub(b, o.seconds(1)) // the start call's seconds, rounded up
		o.streams[req.ID] = &glStream{sender: req.Sender, capability: req.Capability, charged: o.seconds(1)}
		w.Header().Set(wire.HeaderControlURL, o.URL+"/ai/trickle/"+req.ID+"-control")
		w.Header().Set(wire.HeaderEventsURL, o.URL+"/ai/trickle/"+req.ID+"-events")
		w.Header().Set("Livepeer-Balance", b.FloatString(0))
	case "/ai/stream/payment":
		if o.refuse {
			o.refused++
			http.Error(w, "Failed to process payment, request not valid err=invalid ticket", http.StatusBadRequest)
			return
		}
		if o.nothing {
			w.Header().Set(wire.HeaderPaymentCredited, "0")
			w.Header().Set("Livepeer-Balance", b.FloatString(0))
			return
		}
		if err := o.credit(r.Header.Get(wire.PaymentHeader), req.Capability); err != nil || b.Cmp(minimum) < 0 {
			http.Error(w, "Failed to process payment, request not valid err=Insufficient balance for request", http.StatusBadRequest)
			return
		}
		o.payments++
		w.Header().Set("Livepeer-Balance", b.FloatString(0))
	case "/ai/stream/stop":
		if b.Cmp(minimum) < 0 {
			http.Error(w, "Failed to stop stream, request not valid err=Insufficient balance for request", http.StatusBadRequest)
			return
		}
		if o.streams[details.StreamID] != nil {
			o.remove(details.StreamID)
			o.stopped = append(o.stopped, details.StreamID)
		}
		io.WriteString(w, `{"stopped":true}`)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// remove ends a stream and closes its channels (o.mu held).
func (o *glStreamOrch) remove(id string) {
	delete(o.streams, id)
	o.media.Close(id + "-control")
	o.media.Close(id + "-events")
}

// advance moves the stub's clock by d: each running stream is debited 23 s
// of compute at each 23 s of its life, and removed at the second debit
// that leaves its balance below zero.
func (o *glStreamOrch) advance(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, s := range o.streams {
		s.elapsed += d
		for s.elapsed >= time.Duration(s.ticks+1)*23*time.Second {
			s.ticks++
			b := o.bal(s.sender, s.capability)
			b.Sub(b, o.seconds(23))
			s.charged.Add(s.charged, o.seconds(23))
			if o.minBal == nil || b.Cmp(o.minBal) < 0 {
				o.minBal = new(big.Rat).Set(b)
			}
			if b.Sign() < 0 {
				if s.warned {
					o.remove(id)
					o.removed = append(o.removed, id)
					break
				}
				s.warned = true
			}
		}
	}
}

func (o *glStreamOrch) stream(id string) *glStream {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.streams[id]
}

// glCadence runs a byoc gateway against the stub: the books on a manual
// clock, the top-up rounds driven by hand (PayStreams at each 50 s, the
// ticker the gateway asked for never ticks) while the stub's debits follow
// its own clock, both advanced a second at a time.
type glCadence struct {
	t      *testing.T
	o      *glStreamOrch
	gw     *gateway.Node
	clock  *ledger.ManualClock
	asked  chan time.Duration
	now    time.Duration // stream time
	paidGW int           // rounds that paid
	failed int           // rounds with a refused top-up
}

func newGLCadence(t *testing.T) *glCadence {
	c := &glCadence{t: t, o: newGLStreamOrch(t, 1000), clock: ledger.NewManualClock(time.Now()), asked: make(chan time.Duration, 1)}
	c.gw = startGateway(t, keyA, []string{c.o.URL}, func(cfg *gateway.NodeConfig) {
		cfg.Clock = c.clock
		cfg.Gateway.MinCompute = gateway.DefaultMinCompute // go-livepeer's 60 s minimum
		cfg.Gateway.StreamTicker = func(d time.Duration) (<-chan time.Time, func()) {
			select {
			case c.asked <- d:
			default:
			}
			return nil, func() {}
		}
	})
	return c
}

func (c *glCadence) start(id string, timeout int) {
	c.t.Helper()
	h, _ := wire.EncodeJobRequestHeader(&wire.JobRequest{Request: `{}`, Parameters: "{}", Capability: "live", TimeoutSeconds: timeout})
	r, _ := http.NewRequest(http.MethodPost, c.gw.URL+"/process/stream/start", strings.NewReader(`{"stream_id":"`+id+`","params":"{}"}`))
	r.Header.Set(wire.HeaderJobRequest, h)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st := c.gw.StreamState(ctx, id); resp.StatusCode != http.StatusOK || st != "running" {
		c.t.Fatalf("start: %d, state %q: %s", resp.StatusCode, st, c.status(id))
	}
}

func (c *glCadence) status(id string) string {
	resp, err := http.Get(c.gw.URL + "/process/stream/" + id + "/status")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// run advances both clocks a second at a time to stream time end: the
// stub debits at each 23 s, then the gateway's round runs at each 50 s,
// then each is called.
func (c *glCadence) run(end time.Duration, each func()) {
	ctx := context.Background()
	for c.now < end {
		c.now += time.Second
		c.clock.Advance(time.Second)
		c.o.advance(time.Second)
		if c.now%gateway.DefaultStreamPayInterval == 0 {
			paid, failed := c.gw.PayStreams(ctx)
			c.paidGW += paid
			c.failed += failed
		}
		if each != nil {
			each()
		}
	}
}

// A byoc gateway keeps a stream alive at a go-livepeer orchestrator (the
// stub above): with its default cadence (a round every 50 s topping up
// 70 s of compute when the token's balance is below 120 s) against the
// orchestrator's 23 s debits every 23 s, over 10 minutes the stream is
// never removed and the orchestrator's balance never goes below zero; the
// start pays the 60 s minimum though the client asked for 30 s; and at
// the client's stop the gateway's books (credited every ticket, charged
// the whole seconds the stream ran) agree with what the orchestrator was
// paid exactly and with what it charged within the documented bound: no
// more than 1 s of compute below it (the start call it rounds up) and
// less than one 23 s debit above it (the debit it had not yet made).
func TestStreamPaysGoLivepeerOrchestrator(t *testing.T) {
	c := newGLCadence(t)
	o := c.o
	c.start("cam", 30)
	if d := <-c.asked; d != gateway.DefaultStreamPayInterval {
		t.Errorf("the gateway's ticker paces rounds every %v, want %v", d, gateway.DefaultStreamPayInterval)
	}
	if got := o.credited; got.Cmp(o.seconds(60)) != 0 {
		t.Fatalf("the start paid %s wei, want 60 s of compute (60000)", got.FloatString(0))
	}
	c.run(10*time.Minute, func() {
		if o.stream("cam") == nil {
			t.Fatalf("at %v the orchestrator removed the stream (balance %s): %s", c.now, o.minBal.FloatString(0), c.status("cam"))
		}
		if c.now%gateway.DefaultStreamPayInterval == 0 && !strings.Contains(c.status("cam"), `"state":"running"`) {
			t.Fatalf("at %v the gateway no longer runs the stream: %s", c.now, c.status("cam"))
		}
	})
	if o.minBal.Sign() < 0 || len(o.removed) != 0 {
		t.Errorf("the orchestrator's balance went down to %s wei (removed %v)", o.minBal.FloatString(0), o.removed)
	}
	if c.failed != 0 || c.paidGW != 10 || o.payments != 10 {
		t.Errorf("top-up rounds: %d paid, %d refused; the orchestrator credited %d", c.paidGW, c.failed, o.payments)
	}
	st := c.status("cam")
	if !strings.Contains(st, `"state":"running"`) || strings.Contains(st, "error") {
		t.Errorf("the stream after 10 minutes: %s", st)
	}
	ctx := context.Background()
	resp, err := http.Post(c.gw.URL+"/process/stream/cam/stop", "text/plain", strings.NewReader("bye"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	o.mu.Lock()
	stopped := len(o.stopped) == 1
	o.mu.Unlock()
	if resp.StatusCode != http.StatusOK || !stopped {
		t.Errorf("stop: %d %q; the orchestrator stopped %v", resp.StatusCode, out, o.stopped)
	}
	gwSt, err := c.gw.Ledger.Statement(ctx, ledger.JobKey{Sender: o.recipient(t), JobID: gateway.StreamHoldJobID("cam")}.Ref(), 0)
	if err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	credited, charged := new(big.Rat).Set(o.credited), o.chargedTotal()
	o.mu.Unlock()
	gwCredited, gwCharged := big.NewRat(amount(t, gwSt.Credited), 1), big.NewRat(amount(t, gwSt.Charged), 1)
	diff := new(big.Rat).Sub(gwCharged, charged)
	if gwCredited.Cmp(credited) != 0 || gwSt.Account.State != ledger.StateClosed ||
		diff.Cmp(new(big.Rat).Neg(o.seconds(1))) < 0 || diff.Cmp(o.seconds(23)) >= 0 {
		t.Errorf("books at the end: the gateway credited %s charged %s (%s); the orchestrator credited %s charged %s",
			gwSt.Credited, gwSt.Charged, gwSt.Account.State, credited.FloatString(0), charged.FloatString(0))
	}
	t.Logf("10 min: %d top-ups; paid %s wei; orchestrator charged %s, the books %s; lowest balance %s wei",
		c.paidGW, credited.FloatString(0), charged.FloatString(0), gwSt.Charged, o.minBal.FloatString(0))
}

// A top-up the go-livepeer orchestrator refuses: the gateway retries it,
// then tells the client (a payment_error event and the status's error)
// while the orchestrator still runs the stream on what is left; only
// later, at its second debit below zero, does the orchestrator remove the
// stream, and the gateway, its events channel closed, reports it lost.
func TestStreamTopUpRefusedByGoLivepeerOrchestrator(t *testing.T) {
	c := newGLCadence(t)
	o := c.o
	c.start("cam", 60)
	o.mu.Lock()
	o.refuse = true
	o.mu.Unlock()
	var told, gone time.Duration
	c.run(3*time.Minute, func() {
		if told == 0 && strings.Contains(c.status("cam"), `"payment_error"`) {
			told = c.now
			if o.stream("cam") == nil {
				t.Fatalf("the client was told at %v, after the orchestrator removed the stream", c.now)
			}
		}
		if o.stream("cam") == nil && gone == 0 {
			gone = c.now
			c.now = 3 * time.Minute // done: the rest is the gateway's reaction
		}
	})
	// 60 s paid, 1 s charged at the start: 36, 13, -10 (a warning), -33 s
	// (removed) at its debits of 23, 46, 69 and 92 s.
	if gone != 92*time.Second {
		t.Errorf("the orchestrator removed the stream at %v, want 92s", gone)
	}
	o.mu.Lock()
	removed := append([]string(nil), o.removed...)
	o.mu.Unlock()
	o.mu.Lock()
	tries := o.refused
	o.mu.Unlock()
	if told != gateway.DefaultStreamPayInterval || c.failed != 1 || c.paidGW != 0 || tries != 1+gateway.DefaultStreamPayRetries {
		t.Errorf("the client was told at %v (want the first round, at 50 s); rounds: %d refused, %d paid; %d tries refused (want 3)",
			told, c.failed, c.paidGW, tries)
	}
	if len(removed) != 1 {
		t.Fatalf("the orchestrator did not remove the unpaid stream: %v", removed)
	}
	testnet.Eventually(t, "the gateway to see the stream gone", func() bool {
		return strings.Contains(c.status("cam"), `"state":"lost"`)
	})
	st := c.status("cam")
	if i, j := strings.Index(st, `"payment_error"`), strings.Index(st, `"stream_lost"`); i < 0 || j < i {
		t.Errorf("status: want payment_error before stream_lost: %s", st)
	}
}

// chargedTotal is what the stub charged its streams, running and ended
// (o.mu held).
func (o *glStreamOrch) chargedTotal() *big.Rat {
	return new(big.Rat).Sub(o.credited, o.bal(o.sender(), "live"))
}

func (o *glStreamOrch) sender() string {
	for k := range o.balance {
		return strings.SplitN(k, "/", 2)[0]
	}
	return ""
}

// recipient is the orchestrator's address as the gateway's books name it
// (the tickets' recipient).
func (o *glStreamOrch) recipient(t *testing.T) string {
	t.Helper()
	tok, err := wire.DecodeJobToken(o.tok)
	if err != nil {
		t.Fatal(err)
	}
	return common.BytesToAddress(tok.TicketParams.Recipient).Hex()
}

// A top-up the orchestrator answers 200 but credits nothing for
// (Livepeer-Payment-Credited: 0) is logged and counted
// (byoc_gateway_stream_topups_uncredited_total), and its tickets (70 s)
// are written off the stream's hold in the books, which then holds only
// the start's payment (60 s, go-livepeer's minimum).
func TestStreamTopUpCreditedNothing(t *testing.T) {
	c := newGLCadence(t)
	c.o.mu.Lock()
	c.o.nothing = true
	c.o.mu.Unlock()
	c.start("nothing", 30)
	c.gw.PayStreams(context.Background())
	if n := metric(t, c.gw, "byoc_gateway_stream_topups_uncredited_total", "orchestrator", c.o.URL); n != 1 {
		t.Errorf("top-ups credited nothing, counted: %v, want 1", n)
	}
	st, err := c.gw.Ledger.Statement(context.Background(), ledger.JobKey{Sender: c.o.recipient(t), JobID: gateway.StreamHoldJobID("nothing")}.Ref(), 0)
	if err != nil || amount(t, st.Credited) != 60000+70000 || amount(t, st.Charged) != 70000 {
		t.Errorf("the stream's hold in the books: credited %s, charged (written off) %s, %v; want 130000 and 70000", st.Credited, st.Charged, err)
	}
}

// A start refused before its payment was taken (503, no capacity; no
// Livepeer-Payment-Credited, as go-livepeer never sends) is not booked:
// the books hold nothing for it.
func TestStreamStartRefusedBeforePayment(t *testing.T) {
	c := newGLCadence(t)
	c.o.mu.Lock()
	c.o.full = true
	c.o.mu.Unlock()
	h, _ := wire.EncodeJobRequestHeader(&wire.JobRequest{Request: `{}`, Parameters: "{}", Capability: "live", TimeoutSeconds: 30})
	r, _ := http.NewRequest(http.MethodPost, c.gw.URL+"/process/stream/start", strings.NewReader(`{"stream_id":"full","params":"{}"}`))
	r.Header.Set(wire.HeaderJobRequest, h)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st := c.gw.StreamState(ctx, "full"); st != "failed" {
		t.Fatalf("state %q, want failed", st)
	}
	if st, err := c.gw.Ledger.Statement(ctx, ledger.JobKey{Sender: c.o.recipient(t), JobID: gateway.StreamHoldJobID("full")}.Ref(), 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("the refused start was booked: %+v, %v", st.Account, err)
	}
}
