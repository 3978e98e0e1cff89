package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/ledger"
)

// paymentTests are the conformance tests of ReceivePayment, run by Run.
var paymentTests = []struct {
	name string
	fn   func(t *testing.T, e *Env)
}{
	{"PaymentCreditsOnceAcrossRestart", testPaymentOnce},
	{"PaymentNonceCap", testPaymentCap},
	{"PaymentChainedStopsAtFirstBadTicket", testPaymentChained},
	{"PaymentToClosedJobRecordsNothing", testPaymentClosedJob},
	{"PaymentTicketKeyBoundToAccount", testPaymentKeyBound},
	{"PaymentWinnersQueuedOnce", testPaymentWinners},
	{"WinnerRedemptionStates", testWinnerStates},
	{"PaymentConcurrentReplays", testPaymentConcurrent},
	{"ForgetSessions", testForgetSessions},
	{"AdmitOpensPaysAndChecks", testAdmit},
	{"AdmitDecided", testAdmitDecided},
	{"AdmitRefusedWithoutMoneyWritesNothing", testAdmitRefusedWritesNothing},
	{"FinishJobChargesAndCloses", testFinishJob},
}

// ticketPayment is a payment of tickets with the given nonces in session,
// worth 100 wei each, under a cap of maxNonces per session (0: none);
// every ticket whose nonce is a multiple of 4 wins.
func ticketPayment(to ledger.Ref, session string, maxNonces int, nonces ...uint32) ledger.PaymentRequest {
	req := ledger.PaymentRequest{To: to, Session: session, SessionExpiry: 100, MaxNonces: maxNonces}
	for _, n := range nonces {
		key := fmt.Sprintf("%s/%d", session, n)
		req.Tickets = append(req.Tickets, ledger.PaymentTicket{Nonce: n, Credit: ledger.PaymentCredit{Key: key, Amount: ledger.Wei(100)}})
		if n%4 == 0 {
			req.Winners = append(req.Winners, ledger.Winner{Key: key, Sender: to.Sender, FaceValue: ledger.Wei(400), Payload: []byte{byte(n)}})
		}
	}
	return req
}

func (e *Env) pay(req ledger.PaymentRequest) (ledger.PaymentResult, error) {
	return e.Ledger.ReceivePayment(e.Ctx, req)
}

func testPaymentOnce(t *testing.T, e *Env) {
	r, err := e.pay(ticketPayment(poolA.Ref(), "s1", 0, 1, 2, 3))
	if err != nil || r.Credited.Cmp(ledger.Wei(300)) != 0 || r.Tickets != 3 {
		t.Fatalf("payment = %+v, %v", r, err)
	}
	r, err = e.pay(ticketPayment(poolA.Ref(), "s1", 0, 3, 4))
	if err != nil || r.Credited.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("partly replayed payment = %+v, %v", r, err)
	}
	e.Restart()
	r, err = e.pay(ticketPayment(poolA.Ref(), "s1", 0, 1, 2, 3, 4))
	if err != nil || r.Credited.Sign() != 0 || r.Tickets != 0 {
		t.Fatalf("replay after restart = %+v, %v", r, err)
	}
	e.WantBalance(poolA.Ref(), 400)
}

func testPaymentCap(t *testing.T, e *Env) {
	e.pay(ticketPayment(poolA.Ref(), "s1", 3, 1, 2))
	r, err := e.pay(ticketPayment(poolA.Ref(), "s1", 3, 3, 4))
	if err != nil || r.Credited.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("payment past the cap = %+v, %v", r, err)
	}
	e.WantBalance(poolA.Ref(), 300)
}

// A chained payment (PM's rule) credits its tickets up to the first that
// earns nothing — a replayed nonce, one past the cap, a refused ticket —
// and records the new nonces of all of them; the result says what the
// nonce rule found of each ticket.
func testPaymentChained(t *testing.T, e *Env) {
	e.pay(ticketPayment(poolA.Ref(), "s1", 0, 2))
	chained := func(maxNonces int, nonces ...uint32) ledger.PaymentRequest {
		req := ticketPayment(poolA.Ref(), "s1", maxNonces, nonces...)
		req.Chained = true
		return req
	}
	// 1 is new, 2 a replay, 3 new but after the replay: 100 credited, 1
	// and 3 recorded; 3 repeated within the payment is seen.
	r, err := e.pay(chained(0, 1, 2, 3, 3))
	want := []ledger.NonceVerdict{ledger.NonceNew, ledger.NonceSeen, ledger.NonceNew, ledger.NonceSeen}
	if err != nil || r.Credited.Cmp(ledger.Wei(100)) != 0 || r.Tickets != 1 || !slices.Equal(r.Nonces, want) {
		t.Fatalf("chained payment = %+v, %v", r, err)
	}
	if r, err := e.pay(chained(0, 3)); err != nil || r.Tickets != 0 || !slices.Equal(r.Nonces, []ledger.NonceVerdict{ledger.NonceSeen}) {
		t.Fatalf("a blocked ticket's nonce is not recorded: %+v, %v", r, err)
	}
	// The cap (4: 1, 2, 3 held): 5 fits, 6 does not, 7 after it neither.
	r, err = e.pay(chained(4, 5, 6, 7))
	want = []ledger.NonceVerdict{ledger.NonceNew, ledger.NonceTooMany, ledger.NonceTooMany}
	if err != nil || r.Credited.Cmp(ledger.Wei(100)) != 0 || !slices.Equal(r.Nonces, want) {
		t.Fatalf("chained payment at the cap = %+v, %v", r, err)
	}
	// A refused ticket (a bad signature: no nonce) stops the rest; the
	// nonce after it is recorded all the same.
	req := chained(0, 9, 10)
	req.Tickets = append([]ledger.PaymentTicket{{NoNonce: true, Refused: true}}, req.Tickets...)
	r, err = e.pay(req)
	want = []ledger.NonceVerdict{ledger.NonceUnchecked, ledger.NonceNew, ledger.NonceNew}
	if err != nil || r.Tickets != 0 || !slices.Equal(r.Nonces, want) {
		t.Fatalf("payment after a refused ticket = %+v, %v", r, err)
	}
	if r, _ := e.pay(ticketPayment(poolA.Ref(), "s1", 0, 9, 10, 11)); r.Tickets != 1 {
		t.Fatalf("nonces after a refused ticket were not recorded: %+v", r)
	}
	e.WantBalance(poolA.Ref(), 400) // 2, 1, 5, 11
}

func testPaymentClosedJob(t *testing.T, e *Env) {
	mustOpen(e, jobA1, 0, 0)
	e.Ledger.CloseJob(e.Ctx, jobA1)
	_, err := e.pay(ticketPayment(jobA1.Ref(), "s1", 0, 1, 2))
	WantErr(t, err, ledger.ErrJobClosed)
	_, err = e.pay(ticketPayment(jobA2.Ref(), "s1", 0, 1, 2))
	WantErr(t, err, ledger.ErrNotFound)
	// Nothing was recorded: the same tickets can still pay the pool.
	if r, err := e.pay(ticketPayment(poolA.Ref(), "s1", 0, 1, 2)); err != nil || r.Credited.Cmp(ledger.Wei(200)) != 0 {
		t.Fatalf("payment to pool = %+v, %v", r, err)
	}
}

func testPaymentKeyBound(t *testing.T, e *Env) {
	e.pay(ticketPayment(poolA.Ref(), "s1", 0, 1))
	// A ticket that presents no nonce cannot credit the same ticket
	// elsewhere.
	other := ledger.PoolKey{Sender: poolA.Sender, Capability: "other"}.Ref()
	req := ledger.PaymentRequest{To: other, Tickets: []ledger.PaymentTicket{{NoNonce: true, Credit: ledger.PaymentCredit{Key: "s1/1", Amount: ledger.Wei(100)}}}}
	_, err := e.pay(req)
	WantErr(t, err, ledger.ErrIdempotencyConflict)
	e.WantBalance(other, 0)
}

func testPaymentWinners(t *testing.T, e *Env) {
	mustOpen(e, jobA1, 0, 0)
	if r, err := e.pay(ticketPayment(jobA1.Ref(), "s1", 0, 4, 5, 8)); err != nil || r.Winners != 2 {
		t.Fatalf("payment = %+v, %v", r, err)
	}
	// A replay is not credited, and its winners, presented again, are not
	// queued again.
	if r, err := e.pay(ticketPayment(jobA1.Ref(), "s1", 0, 4, 8)); err != nil || r.Winners != 0 || !r.Credited.IsZero() {
		t.Fatalf("replay = %+v, %v", r, err)
	}
	ws, err := e.Ledger.Winners(e.Ctx, ledger.WinnerQueued, 0)
	if err != nil || len(ws) != 2 || ws[0].Key != "s1/4" || ws[0].Account != jobA1.Ref() ||
		ws[0].FaceValue.Cmp(ledger.Wei(400)) != 0 || ws[0].RedeemAfter != 100 || string(ws[1].Payload) != "\x08" {
		t.Fatalf("winners = %+v, %v", ws, err)
	}
}

// testWinnerStates moves a winning ticket through its redemption states
// (docs/chain.md): only from the state the caller read, with the
// transaction written before it is sent, across a restart.
func testWinnerStates(t *testing.T, e *Env) {
	e.pay(ticketPayment(poolA.Ref(), "s1", 0, 4))
	w, err := e.Ledger.Winner(e.Ctx, "s1/4")
	if err != nil || w.State != ledger.WinnerQueued || w.TxNonce != -1 || w.TxHash != "" || w.Payout != nil || w.Attempts != 0 {
		t.Fatalf("queued winner = %+v, %v", w, err)
	}
	WantErr(t, e.Ledger.UpdateWinner(e.Ctx, "s1/9", ledger.WinnerQueued, ledger.WinnerUpdate{State: ledger.WinnerDead}), ledger.ErrNotFound)
	WantErr(t, e.Ledger.UpdateWinner(e.Ctx, "s1/4", ledger.WinnerQueued, ledger.WinnerUpdate{State: "lost"}), ledger.ErrInvalidInput)
	neg := ledger.Wei(-1)
	WantErr(t, e.Ledger.UpdateWinner(e.Ctx, "s1/4", ledger.WinnerQueued, ledger.WinnerUpdate{State: ledger.WinnerRedeemed, Payout: &neg}), ledger.ErrInvalidInput)
	WantErr(t, e.Ledger.UpdateWinner(e.Ctx, "s1/4", ledger.WinnerSubmitted, ledger.WinnerUpdate{State: ledger.WinnerRedeemed}), ledger.ErrWinnerState)
	raw := []byte{0x02, 0xf8, 0x01}
	if err := e.Ledger.UpdateWinner(e.Ctx, "s1/4", ledger.WinnerQueued, ledger.WinnerUpdate{State: ledger.WinnerSubmitted,
		TxHash: "0xabc", TxNonce: 7, TxRaw: raw, Attempt: true}); err != nil {
		t.Fatal(err)
	}
	// A note keeps the transaction.
	if err := e.Ledger.UpdateWinner(e.Ctx, "s1/4", ledger.WinnerSubmitted, ledger.WinnerUpdate{State: ledger.WinnerSubmitted,
		LastError: "waiting", KeepTx: true}); err != nil {
		t.Fatal(err)
	}
	e.Restart()
	w, err = e.Ledger.Winner(e.Ctx, "s1/4")
	if err != nil || w.State != ledger.WinnerSubmitted || w.TxHash != "0xabc" || w.TxNonce != 7 || string(w.TxRaw) != string(raw) ||
		w.Attempts != 1 || w.LastError != "waiting" || !w.UpdatedAt.Equal(e.Clock.Now().UTC().Truncate(time.Microsecond)) {
		t.Fatalf("submitted winner after a restart = %+v, %v", w, err)
	}
	paid := ledger.MustParseAmount("123456789012345678901234567890")
	if err := e.Ledger.UpdateWinner(e.Ctx, "s1/4", ledger.WinnerSubmitted, ledger.WinnerUpdate{State: ledger.WinnerRedeemed,
		TxHash: "0xabc", TxNonce: 7, Payout: &paid}); err != nil {
		t.Fatal(err)
	}
	ws, err := e.Ledger.Winners(e.Ctx, ledger.WinnerRedeemed, 0)
	if err != nil || len(ws) != 1 || ws[0].Payout == nil || ws[0].Payout.Cmp(paid) != 0 || ws[0].TxRaw != nil || ws[0].LastError != "" {
		t.Fatalf("redeemed = %+v, %v", ws, err)
	}
	if ws, _ := e.Ledger.Winners(e.Ctx, ledger.WinnerQueued, 0); len(ws) != 0 {
		t.Fatalf("still queued: %+v", ws)
	}
}

// testPaymentConcurrent sends the same tickets many times at once, as a
// replaying client would; each ticket is credited once.
func testPaymentConcurrent(t *testing.T, e *Env) {
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonces := []uint32{uint32(i % 10), uint32(i%10 + 1), 20}
			if _, err := e.pay(ticketPayment(poolA.Ref(), "s1", 0, nonces...)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	e.WantBalance(poolA.Ref(), 12*100) // nonces 0..10 and 20
}

func testForgetSessions(t *testing.T, e *Env) {
	e.pay(ticketPayment(poolA.Ref(), "s1", 0, 1))
	req := ticketPayment(poolA.Ref(), "s2", 0, 1)
	req.SessionExpiry = 200
	e.pay(req)
	// s3's expiry rises with its second payment, and a third does not
	// lower it.
	for i, expiry := range []int64{100, 300, 50} {
		req := ticketPayment(poolA.Ref(), "s3", 0, uint32(i+1))
		req.SessionExpiry = expiry
		e.pay(req)
	}
	if n, err := e.Ledger.ForgetSessions(e.Ctx, 150); err != nil || n != 1 {
		t.Fatalf("forgot %d, %v", n, err)
	}
	// s1's nonce is forgotten, but its ticket keeps its credit key.
	if r, err := e.pay(ticketPayment(poolA.Ref(), "s1", 0, 1)); err != nil || r.Credited.Sign() != 0 || r.Replayed != 1 {
		t.Fatalf("forgotten session replay = %+v, %v", r, err)
	}
	if r, _ := e.pay(ticketPayment(poolA.Ref(), "s2", 0, 1)); r.Tickets != 0 {
		t.Fatalf("kept session replay credited %+v", r)
	}
	if r, _ := e.pay(ticketPayment(poolA.Ref(), "s3", 0, 1, 2, 3)); r.Tickets != 0 {
		t.Fatalf("kept session replay credited %+v", r)
	}
	if n, err := e.Ledger.ForgetSessions(e.Ctx, 300); err != nil || n != 3 { // s1 (recorded again), s2, s3
		t.Fatalf("forgot %d, %v", n, err)
	}
	e.WantBalance(poolA.Ref(), 500)
}

func admit(e *Env, job ledger.JobKey, reserve, minimum int64, pay *ledger.PaymentRequest) (ledger.AdmitResult, error) {
	return e.Ledger.Admit(e.Ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: poolA.Capability,
		Reserve: ledger.Wei(reserve), Minimum: ledger.Wei(minimum), TTL: time.Minute}, Payment: pay})
}

func testAdmit(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "fund")
	// Paid 300, topped up from the pool to 800, minimum 500: admitted.
	pay := ticketPayment(ledger.Ref{}, "s1", 0, 1, 2, 3)
	r, err := admit(e, jobA1, 800, 500, &pay)
	if err != nil || !r.Admitted || r.Payment.Credited.Cmp(ledger.Wei(300)) != 0 || r.Job.Drawn.Cmp(ledger.Wei(500)) != 0 ||
		r.Job.Balance.Cmp(ledger.Wei(800)) != 0 || r.Job.PoolBalance.Cmp(ledger.Wei(500)) != 0 {
		t.Fatalf("admit = %+v, %v", r, err)
	}
	// The same ID again, while the job runs: refused, and its payment is
	// not recorded (the same tickets pay for the next job).
	pay2 := ticketPayment(ledger.Ref{}, "s1", 0, 4)
	_, err = admit(e, jobA1, 800, 0, &pay2)
	WantErr(t, err, ledger.ErrJobExists)
	// Not enough: paid 100, pool 500, minimum 700: not admitted, closed at
	// once, the payment kept in the pool.
	r, err = admit(e, jobA2, 700, 700, &pay2)
	if err != nil || r.Admitted || r.Released.Cmp(ledger.Wei(600)) != 0 || r.Job.PoolBalance.Cmp(ledger.Wei(600)) != 0 {
		t.Fatalf("refused admit = %+v, %v", r, err)
	}
	a, _ := e.Ledger.Account(e.Ctx, jobA2.Ref())
	if a.State != ledger.StateClosed || !a.Balance.IsZero() {
		t.Fatalf("refused job = %+v", a)
	}
	_, err = admit(e, jobA2, 0, 0, nil)
	WantErr(t, err, ledger.ErrJobClosed)
	e.WantBalance(poolA.Ref(), 600)
	e.WantBalance(jobA1.Ref(), 800)
}

// A refused admission whose payment moved no money writes nothing: no
// pool, no job, no entry, no ticket nonce; the job ID stays unused. One
// whose payment credited something still closes its job, the payment kept
// in the pool.
func testAdmitRefusedWritesNothing(t *testing.T, e *Env) {
	fresh := ledger.JobKey{Sender: "0xfresh", JobID: "job-1"}
	freshPool := ledger.PoolKey{Sender: fresh.Sender, Capability: poolA.Capability}
	admitAs := func(job ledger.JobKey, pay *ledger.PaymentRequest) (ledger.AdmitResult, error) {
		return e.Ledger.Admit(e.Ctx, ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: poolA.Capability,
			Reserve: ledger.Wei(800), Minimum: ledger.Wei(500), TTL: time.Minute}, Payment: pay})
	}
	// Tickets whose nonces are new but that earn nothing (all of them
	// refused by the scheme, say for a bad signature).
	worthless := func(session string, nonces ...uint32) *ledger.PaymentRequest {
		req := &ledger.PaymentRequest{Session: session, SessionExpiry: 100}
		for _, n := range nonces {
			req.Tickets = append(req.Tickets, ledger.PaymentTicket{Nonce: n, Refused: true})
		}
		return req
	}
	e.Credit(poolA.Ref(), 300, "fund")
	// A paid winning ticket (nonce 4 wins): replayed below, it moves nothing.
	if r, err := e.pay(ticketPayment(poolA.Ref(), "s9", 0, 4)); err != nil || r.Winners != 1 {
		t.Fatalf("winning payment = %+v, %v", r, err)
	}
	before := e.MustVerify()
	for i, tc := range []struct {
		job ledger.JobKey
		pay *ledger.PaymentRequest
	}{
		{fresh, nil},                   // a sender with no pool
		{fresh, worthless("w1", 1, 2)}, // ... paying with worthless tickets
		{jobA1, nil},                   // a pool that holds less than the minimum
		{jobA1, worthless("w2", 1)},    // ... and worthless tickets
		{jobA1, ptr(ticketPayment(ledger.Ref{}, "s1", 0))},    // a payment of no tickets
		{jobA1, ptr(ticketPayment(ledger.Ref{}, "s9", 0, 4))}, // a replayed winning ticket
	} {
		r, err := admitAs(tc.job, tc.pay)
		wantPool := int64(0)
		if tc.job == jobA1 {
			wantPool = 400
		}
		if err != nil || r.Admitted || r.Job.Created || !r.Released.IsZero() || r.Job.PoolBalance.Cmp(ledger.Wei(wantPool)) != 0 {
			t.Fatalf("case %d: refused admit = %+v, %v", i, r, err)
		}
	}
	if after := e.MustVerify(); after.Accounts != before.Accounts || after.Entries != before.Entries {
		t.Fatalf("refusals that moved no money wrote: %+v -> %+v", before, after)
	}
	for _, ref := range []ledger.Ref{freshPool.Ref(), fresh.Ref(), jobA1.Ref()} {
		if _, err := e.Ledger.Account(e.Ctx, ref); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("%s after a refusal: %v", ref, err)
		}
	}
	err := e.Store.View(e.Ctx, func(tx ledger.ReadTx) error {
		got, err := tx.NonceState(e.Ctx, []ledger.NonceQuery{{Session: "w1", Nonces: []uint32{1, 2}}, {Session: "w2", Nonces: []uint32{1}}})
		if err == nil && len(got) != 0 {
			t.Errorf("worthless tickets' nonces recorded: %+v", got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The job IDs are unused: once there is money, they are admitted.
	pay := ticketPayment(ledger.Ref{}, "s2", 0, 1, 2)
	if r, err := admitAs(jobA1, &pay); err != nil || !r.Admitted || r.Job.Balance.Cmp(ledger.Wei(600)) != 0 {
		t.Fatalf("the refused job ID, paid: %+v, %v", r, err)
	}
	// A refusal whose payment credited something closes its job: the ID
	// is used, the payment is in the pool.
	pay = ticketPayment(ledger.Ref{}, "s3", 0, 1)
	if r, err := admitAs(fresh, &pay); err != nil || r.Admitted || !r.Job.Created || r.Released.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("refused paid admit = %+v, %v", r, err)
	}
	_, err = admitAs(fresh, nil)
	WantErr(t, err, ledger.ErrJobClosed)
	e.WantBalance(freshPool.Ref(), 100)
}

func ptr[T any](v T) *T { return &v }

// AdmitDecided reports the admission before its commit and confirms it
// after; when the commit fails, confirm says so and nothing happened.
func testAdmitDecided(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "fund")
	req := func(job ledger.JobKey, session string, nonce uint32) ledger.AdmitRequest {
		pay := ticketPayment(ledger.Ref{}, session, 0, nonce)
		return ledger.AdmitRequest{OpenJobRequest: ledger.OpenJobRequest{Job: job, Capability: poolA.Capability,
			Reserve: ledger.Wei(500), Minimum: ledger.Wei(300), TTL: time.Minute}, Payment: &pay}
	}
	d, confirm, err := e.Ledger.AdmitDecided(e.Ctx, req(jobA1, "s1", 1))
	if err != nil || !d.Admitted || d.Payment.Credited.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("decided = %+v, %v", d, err)
	}
	for range 2 { // confirm may be asked again
		if f, err := confirm(e.Ctx); err != nil || f.Admitted != d.Admitted || f.Job.Balance.Cmp(d.Job.Balance) != 0 {
			t.Fatalf("confirmed = %+v, %v; decided %+v", f, err, d)
		}
	}
	e.WantBalance(jobA1.Ref(), 500)
	// Refused when applied: the error comes once final, as from Admit.
	_, _, err = e.Ledger.AdmitDecided(e.Ctx, req(jobA1, "s1", 2))
	WantErr(t, err, ledger.ErrJobExists)

	// A store whose commits fail after the batch applied: decided says
	// admitted, confirm says it did not happen, and it did not.
	before := e.MustVerify()
	fs := &FailingCommits{Store: e.Store}
	l := ledger.New(fs, ledger.Options{Clock: e.Clock})
	defer l.Close()
	fs.Fail.Store(true)
	d, confirm, err = l.AdmitDecided(e.Ctx, req(jobA2, "s2", 1))
	if err != nil || !d.Admitted {
		t.Fatalf("decided before a failing commit = %+v, %v", d, err)
	}
	if _, err := confirm(e.Ctx); err == nil || !strings.Contains(err.Error(), "injected commit failure") {
		t.Fatalf("confirm after a failed commit: %v", err)
	}
	if _, err := e.Ledger.Account(e.Ctx, jobA2.Ref()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the job of a failed commit exists: %v", err)
	}
	if after := e.MustVerify(); after.Entries != before.Entries || after.Accounts != before.Accounts ||
		after.Credited.Cmp(before.Credited) != 0 || after.PoolTotal.Cmp(before.PoolTotal) != 0 {
		t.Fatalf("a failed commit changed the ledger: %+v -> %+v", before, after)
	}
	// The same admission once commits work again: its payment is new.
	fs.Fail.Store(false)
	if d, confirm, err = l.AdmitDecided(e.Ctx, req(jobA2, "s2", 1)); err != nil || !d.Admitted {
		t.Fatalf("decided after = %+v, %v", d, err)
	}
	if f, err := confirm(e.Ctx); err != nil || f.Payment.Credited.Cmp(ledger.Wei(100)) != 0 {
		t.Fatalf("confirmed after = %+v, %v", f, err)
	}
}

// FailingCommits is a store whose write transactions fail after fn ran,
// while Fail is set: what a commit that fails looks like to the ledger.
type FailingCommits struct {
	ledger.Store
	Fail atomic.Bool
}

func (f *FailingCommits) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	return f.Store.Update(ledger.KeepCommit(ctx), func(tx ledger.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if f.Fail.Load() {
			return errors.New("injected commit failure")
		}
		return nil
	})
}

func testFinishJob(t *testing.T, e *Env) {
	e.Credit(poolA.Ref(), 1000, "fund")
	mustOpen(e, jobA1, 600, 0)
	r, err := e.Ledger.FinishJob(e.Ctx, jobA1, ledger.Wei(250), ledger.Wei(0), "use-1")
	if err != nil || r.State != ledger.StateClosed || r.Released.Cmp(ledger.Wei(350)) != 0 || r.PoolBalance.Cmp(ledger.Wei(750)) != 0 {
		t.Fatalf("finish = %+v, %v", r, err)
	}
	// A retry of the same finish changes nothing.
	if r, err := e.Ledger.FinishJob(e.Ctx, jobA1, ledger.Wei(250), ledger.Wei(0), "use-1"); err != nil || !r.Replayed {
		t.Fatalf("retried finish = %+v, %v", r, err)
	}
	_, err = e.Ledger.FinishJob(e.Ctx, jobA1, ledger.Wei(1), ledger.Wei(0), "use-2")
	WantErr(t, err, ledger.ErrJobClosed)
	// A charge beyond the hold and its grace is refused whole: the job stays open.
	mustOpen(e, jobA2, 100, 0)
	_, err = e.Ledger.FinishJob(e.Ctx, jobA2, ledger.Wei(200), ledger.Wei(50), "use-3")
	WantErr(t, err, ledger.ErrInsufficientFunds)
	if a, _ := e.Ledger.Account(e.Ctx, jobA2.Ref()); a.State != ledger.StateOpen {
		t.Fatalf("job after a refused finish: %s", a.State)
	}
	e.WantBalance(poolA.Ref(), 650)
}
