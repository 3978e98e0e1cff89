package meter_test

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ledger"
	"byoc/ledger/journal"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator/meter"
	"byoc/pm"
	"byoc/pmledger"
	"byoc/wire"
)

var sender = common.HexToAddress("0x00000000000000000000000000000000000000a1")

// onBothStores runs test on a ledger on each of ledgertest.Stores (PostgreSQL skipped
// without BYOC_POSTGRES_DSN); each ends with the ledger's invariant check.
func onBothStores(t *testing.T, test func(t *testing.T, e *ledgertest.Env, m *meter.Meter, rec *recorder)) {
	for _, st := range ledgertest.Stores {
		name, f := st.Name, st.Factory
		t.Run(name, func(t *testing.T) {
			e := ledgertest.NewEnv(t, f)
			blocks, err := pm.NewOffchainBlocks(e.Clock.Now, 0, common.Hash{})
			if err != nil {
				t.Fatal(err)
			}
			rc := pm.RecipientConfig{Address: common.HexToAddress("0x00000000000000000000000000000000000000b2"), Blocks: blocks, TicketEV: big.NewInt(1000)}
			rc.Secret[0] = 1
			recipient, err := pm.NewRecipient(rc)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			m, err := meter.New(meter.Config{Ledger: e.Ledger, MinCompute: time.Second,
				Receiver: &pmledger.Receiver{Recipient: recipient, Ledger: e.Ledger}, Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			test(t, e, m, rec)
		})
	}
}

// recorder counts what the meter reports.
type recorder struct {
	refused int
	charged ledger.Amount
}

func (r *recorder) PaymentRefused(n int)                      { r.refused += n }
func (r *recorder) PaymentRecorded(int, ledger.PaymentResult) {}
func (r *recorder) Charged(a ledger.Amount)                   { r.charged = r.charged.Add(a) }

var price = big.NewRat(1000, 1) // wei per second

// job is a request for capability "cap" at 1000 wei per second.
func job(id string, timeout time.Duration) meter.Request {
	return meter.Request{Pool: meter.Pool{Sender: sender, Capability: "cap"}, JobID: id, RequestID: "r-" + id, Price: price, Timeout: timeout}
}

var pool = meter.Pool{Sender: sender, Capability: "cap"}

// admit admits req, confirms it and starts the work, failing on a refusal.
func admit(t *testing.T, e *ledgertest.Env, m *meter.Meter, req meter.Request) *meter.Job {
	t.Helper()
	j, a, err := m.Admit(e.Ctx, req)
	if err != nil {
		t.Fatalf("admit %s: %v", req.JobID, err)
	}
	if _, err := j.Confirm(e.Ctx); err != nil {
		t.Fatalf("confirm %s: %v", req.JobID, err)
	}
	if !a.Pending {
		t.Errorf("admission of %s not started early", req.JobID)
	}
	j.Start()
	return j
}

func wantAmount(t *testing.T, what string, got ledger.Amount, want int64) {
	t.Helper()
	if got.Cmp(ledger.Wei(want)) != 0 {
		t.Errorf("%s = %s, want %d", what, got, want)
	}
}

// Admit, debit at t+1 s and t+2.5 s, finish: whole seconds rounded up,
// each debit charging what the one before did not, the finish only what
// is left, and the rest of the hold back in the pool.
func TestAdmitDebitFinish(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, rec *recorder) {
		e.Credit(pool.Ref(), 20000, "fund")
		j := admit(t, e, m, job("j1", 10*time.Second))
		e.WantBalance(pool.Job("j1").Ref(), 10000)
		e.WantBalance(pool.Ref(), 10000)
		t0 := m.Now()

		e.Clock.Advance(time.Second)
		c, err := j.Debit(e.Ctx, m.Now())
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "debit at 1 s", c.Charged, 1000)
		e.Clock.Advance(1500 * time.Millisecond)
		if c, err = j.Debit(e.Ctx, m.Now()); err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "debit at 2.5 s", c.Charged, 2000)
		wantAmount(t, "total at 2.5 s", c.Total, 3000)
		if c, err = j.Debit(e.Ctx, t0.Add(2*time.Second)); err != nil || !c.Charged.IsZero() {
			t.Errorf("debit up to a time already paid for: %s, %v; want nothing", c.Charged, err)
		}
		e.WantBalance(pool.Job("j1").Ref(), 7000)

		f, err := j.Finish(e.Ctx, m.Now())
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "finish charged", f.Charged, 0)
		wantAmount(t, "finish total", f.Total, 3000)
		wantAmount(t, "released", f.Released, 7000)
		wantAmount(t, "pool after", f.PoolBalance, 17000)
		wantAmount(t, "charges reported", rec.charged, 3000)
		e.WantBalance(pool.Ref(), 17000)
		if a, err := e.Ledger.Account(e.Ctx, pool.Job("j1").Ref()); err != nil || a.State != ledger.StateClosed {
			t.Errorf("hold after finish: %+v, %v; want closed", a, err)
		}
	})
}

// A periodic debit that the hold cannot cover is refused with
// ErrInsufficientBalance, charging nothing; finishing then charges nothing
// more and releases what the hold still holds.
func TestDebitRunsTheHoldDry(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		e.Credit(pool.Ref(), 3500, "fund")
		j := admit(t, e, m, job("dry", 10*time.Second))
		e.WantBalance(pool.Job("dry").Ref(), 3500)
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			e.Clock.Advance(time.Second) // one tick a second
			_, err = j.Debit(e.Ctx, m.Now())
		}
		if !errors.Is(err, meter.ErrInsufficientBalance) {
			t.Fatalf("debits past the hold: %v, want ErrInsufficientBalance", err)
		}
		wantAmount(t, "charged before running dry", j.Total(), 3000)
		e.WantBalance(pool.Job("dry").Ref(), 500)
		f, err := j.FinishUnused(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "total", f.Total, 3000)
		wantAmount(t, "released", f.Released, 500)
		e.WantBalance(pool.Ref(), 500)
	})
}

// Work is never billed past its timeout, by debits or by the finish.
func TestTimeoutCap(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		e.Credit(pool.Ref(), 10000, "fund")
		j := admit(t, e, m, job("capped", 3*time.Second))
		e.WantBalance(pool.Job("capped").Ref(), 3000)
		e.Clock.Advance(10 * time.Second)
		if _, err := j.Debit(e.Ctx, m.Now()); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(10 * time.Second)
		f, err := j.Finish(e.Ctx, m.Now())
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "total after 20 s at a 3 s timeout", f.Total, 3000)
		wantAmount(t, "pool", f.PoolBalance, 7000)
	})
}

// DebitAmount charges up to a total, once per total.
func TestDebitAmount(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		e.Credit(pool.Ref(), 5000, "fund")
		j := admit(t, e, m, job("amt", 5*time.Second))
		for _, total := range []int64{1200, 1200, 800, 4000} {
			if _, err := j.DebitAmount(e.Ctx, ledger.Wei(total)); err != nil {
				t.Fatalf("debit up to %d: %v", total, err)
			}
		}
		if _, err := j.DebitAmount(e.Ctx, ledger.Wei(6000)); !errors.Is(err, meter.ErrInsufficientBalance) {
			t.Errorf("debit up to 6000 on a 5000 hold: %v, want ErrInsufficientBalance", err)
		}
		f, err := j.FinishUnused(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantAmount(t, "total", f.Total, 4000)
		wantAmount(t, "pool", f.PoolBalance, 1000)
	})
}

// The admission's refusals, each its own error, and none leaves a hold
// open.
func TestAdmitRefusals(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, rec *recorder) {
		// Nothing in the pool: below the minimum, nothing written.
		_, a, err := m.Admit(e.Ctx, job("poor", 10*time.Second))
		if !errors.Is(err, meter.ErrInsufficientBalance) || a.Paid {
			t.Errorf("admit on an empty pool: %+v, %v; want ErrInsufficientBalance", a, err)
		}
		if _, err := e.Ledger.Account(e.Ctx, pool.Job("poor").Ref()); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("a refusal that moved no money wrote the job: %v", err)
		}

		e.Credit(pool.Ref(), 20000, "fund")
		j := admit(t, e, m, job("twice", 10*time.Second))
		_, _, err = m.Admit(e.Ctx, job("twice", 10*time.Second))
		var me *meter.Error
		if !errors.Is(err, meter.ErrJobRunning) || !errors.As(err, &me) || me.JobID != "twice" || !errors.Is(err, ledger.ErrJobExists) {
			t.Errorf("admit of a running job: %v, want ErrJobRunning for job twice", err)
		}
		if _, err := j.Finish(e.Ctx, m.Now()); err != nil {
			t.Fatal(err)
		}
		if _, _, err = m.Admit(e.Ctx, job("twice", 10*time.Second)); !errors.Is(err, meter.ErrJobIDUsed) {
			t.Errorf("admit of a finished job's id: %v, want ErrJobIDUsed", err)
		}

		// Tickets without their params: refused whole before the ledger.
		req := job("badpay", 10*time.Second)
		req.Payment = &wire.Payment{Sender: sender[:], TicketSenderParams: []*wire.TicketSenderParams{{SenderNonce: 1}}}
		_, a, err = m.Admit(e.Ctx, req)
		if !errors.Is(err, meter.ErrInvalidPayment) || !a.Paid || !a.Credited.IsZero() || rec.refused != 1 {
			t.Errorf("admit with a malformed payment: %+v, %v (refused %d); want ErrInvalidPayment, credited 0", a, err, rec.refused)
		}

		// Free work holds nothing.
		free := job("free", 10*time.Second)
		free.Price = new(big.Rat)
		fj, a, err := m.Admit(e.Ctx, free)
		if err != nil || a.Pending || !fj.Free() {
			t.Errorf("free work: %+v, %v", a, err)
		}
		if f, err := fj.Finish(e.Ctx, m.Now()); err != nil || !f.Total.IsZero() {
			t.Errorf("finish of free work: %+v, %v", f, err)
		}
		e.WantBalance(pool.Ref(), 20000-1000)
	})
}

// A legacy request (no job ID) is held under its own internal ID.
func TestLegacyRequestHeld(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *ledgertest.Env, m *meter.Meter, _ *recorder) {
		e.Credit(pool.Ref(), 4000, "fund")
		req := job("", 3*time.Second)
		req.RequestID = "abc"
		j := admit(t, e, m, req)
		e.WantBalance(pool.Job(meter.LegacyJobPrefix+"abc").Ref(), 3000)
		e.WantBalance(pool.Ref(), 1000)
		// A second one at once gets only what is left: below the minimum.
		req.RequestID = "def"
		req.Timeout = 5 * time.Second
		m2, _ := meter.New(meter.Config{Ledger: e.Ledger, MinCompute: 2 * time.Second})
		if _, _, err := m2.Admit(e.Ctx, req); !errors.Is(err, meter.ErrInsufficientBalance) {
			t.Errorf("second legacy request on what the first left: %v, want ErrInsufficientBalance", err)
		}
		if _, err := j.Finish(e.Ctx, m.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		e.WantBalance(pool.Ref(), 3000)
	})
}

// A job's ledger changes that credit no tickets — here a ticketless
// admission and its finish — are acknowledged once written, their syncs
// deferred (ledger.DeferSync), unless Config.DurableJobs. (An admission
// with tickets is synced: TestTicketAdmissionSynced in the orchestrator.)
func TestJobSyncsDeferred(t *testing.T) {
	for _, durable := range []bool{false, true} {
		e := ledgertest.NewEnv(t, ledgertest.Journal)
		s, ok := e.Ledger.Store().(*journal.Store)
		if !ok {
			t.Fatalf("ledgertest.Journal opened a %T", e.Ledger.Store())
		}
		m, err := meter.New(meter.Config{Ledger: e.Ledger, MinCompute: time.Second, DurableJobs: durable})
		if err != nil {
			t.Fatal(err)
		}
		e.Credit(pool.Ref(), 20000, "fund")
		st0 := s.Stats()
		j := admit(t, e, m, job("j1", 10*time.Second))
		st1 := s.Stats()
		e.Clock.Advance(time.Second)
		if _, err := j.Finish(e.Ctx, m.Now()); err != nil {
			t.Fatal(err)
		}
		st2 := s.Stats()
		want := uint64(1)
		if durable {
			want = 0
		}
		if got := st1.Deferred - st0.Deferred; got != want {
			t.Errorf("durable jobs %v: %d deferred records for the ticketless admission, want %d", durable, got, want)
		}
		if got := st2.Deferred - st1.Deferred; got != want {
			t.Errorf("durable jobs %v: %d deferred records for the finish, want %d", durable, got, want)
		}
		e.WantBalance(pool.Ref(), 19000)
	}
}
