package ledgertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"byoc/ledger"
)

// model is the ledger's rules written as simply as possible, on int64s and
// maps. testModel runs random operations against both and compares.
type model struct {
	now   time.Time
	pools map[ledger.PoolKey]int64
	jobs  map[ledger.JobKey]*modelJob
	keys  map[string]modelKey
}

type modelJob struct {
	pool    ledger.PoolKey
	bal     int64
	state   ledger.State
	ttl     time.Duration
	expires time.Time
}

type modelKey struct {
	input string
	after int64
}

var errReplay = errors.New("replayed")

func (m *model) replay(key, input string) (int64, error) {
	k, ok := m.keys[key]
	switch {
	case !ok:
		return 0, nil
	case k.input != input:
		return 0, ledger.ErrIdempotencyConflict
	}
	return k.after, errReplay
}

func (m *model) usable(j *modelJob) error {
	if j.state.IsFinal() {
		return ledger.ErrJobClosed
	}
	if !j.expires.After(m.now) {
		return ledger.ErrJobExpired
	}
	return nil
}

func (m *model) credit(ref ledger.Ref, amt int64, key string) (int64, error) {
	input := fmt.Sprint("credit", ref, amt)
	if after, err := m.replay(key, input); err != nil {
		return after, err
	}
	var bal int64
	if ref.Kind == ledger.KindPool {
		m.pools[ref.Pool()] += amt
		bal = m.pools[ref.Pool()]
	} else {
		j := m.jobs[ref.Job()]
		if j == nil {
			return 0, ledger.ErrNotFound
		}
		if err := m.usable(j); err != nil {
			return 0, err
		}
		j.bal += amt
		j.expires = m.now.Add(j.ttl)
		bal = j.bal
	}
	m.keys[key] = modelKey{input, bal}
	return bal, nil
}

func (m *model) charge(ref ledger.Ref, amt, grace int64, key string) (int64, error) {
	input := fmt.Sprint("charge", ref, amt)
	if after, err := m.replay(key, input); err != nil {
		return after, err
	}
	var j *modelJob
	bal, ok := m.pools[ref.Pool()]
	if ref.Kind == ledger.KindJob {
		if j, ok = m.jobs[ref.Job()], m.jobs[ref.Job()] != nil; ok {
			bal = j.bal
		}
	}
	if !ok {
		return 0, ledger.ErrNotFound
	}
	if j != nil {
		if err := m.usable(j); err != nil {
			return 0, err
		}
	}
	if bal-amt < -grace {
		return 0, ledger.ErrInsufficientFunds
	}
	bal -= amt
	if j != nil {
		j.bal, j.expires = bal, m.now.Add(j.ttl)
	} else {
		m.pools[ref.Pool()] = bal
	}
	m.keys[key] = modelKey{input, bal}
	return bal, nil
}

func (m *model) open(job ledger.JobKey, pool ledger.PoolKey, reserve, minimum int64, ttl time.Duration) (int64, error) {
	j := m.jobs[job]
	if j != nil {
		if j.pool != pool {
			return 0, ledger.ErrJobMismatch
		}
		if err := m.usable(j); err != nil {
			return 0, err
		}
	}
	bal := int64(0)
	if j != nil {
		bal = j.bal
	}
	draw := min(max(reserve-bal, 0), max(m.pools[pool], 0))
	if bal+draw < minimum {
		return 0, ledger.ErrInsufficientFunds
	}
	if j == nil {
		j = &modelJob{pool: pool, state: ledger.StateOpen, ttl: ttl}
		m.jobs[job] = j
	}
	j.ttl = ttl
	m.pools[pool] -= draw
	j.bal += draw
	j.expires = m.now.Add(ttl)
	return j.bal, nil
}

func (m *model) release(j *modelJob, state ledger.State) int64 {
	m.pools[j.pool] += j.bal
	released := j.bal
	j.bal, j.state = 0, state
	return released
}

func (m *model) close(job ledger.JobKey) (int64, error) {
	j := m.jobs[job]
	if j == nil {
		return 0, ledger.ErrNotFound
	}
	if j.state.IsFinal() {
		return 0, errReplay
	}
	return m.release(j, ledger.StateClosed), nil
}

func (m *model) sweep() int {
	n := 0
	for _, j := range m.jobs {
		if j.state == ledger.StateOpen && !j.expires.After(m.now) {
			m.release(j, ledger.StateExpired)
			n++
		}
	}
	return n
}

// sameOutcome compares a ledger result with the model's.
func sameOutcome(t *testing.T, step int, what string, gotBal ledger.Amount, replayed bool, gotErr error, wantBal int64, wantErr error) {
	t.Helper()
	outcomes[outcomeName(wantErr)]++
	switch {
	case wantErr == errReplay:
		if gotErr != nil || !replayed {
			t.Fatalf("step %d %s: got %v (replayed %v), want a replay", step, what, gotErr, replayed)
		}
	case wantErr != nil:
		if !errors.Is(gotErr, wantErr) {
			t.Fatalf("step %d %s: error %v, want %v", step, what, gotErr, wantErr)
		}
		return
	case gotErr != nil:
		t.Fatalf("step %d %s: unexpected error %v", step, what, gotErr)
	}
	if gotBal.Cmp(ledger.Wei(wantBal)) != 0 {
		t.Fatalf("step %d %s: balance %s, model %d", step, what, gotBal, wantBal)
	}
}

// outcomes counts what the model test exercised, so that it cannot pass by
// never reaching a rule.
var outcomes = map[string]int{}

func outcomeName(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// testModel runs random operations against the ledger and the model and
// checks, after every step, that both agree and every invariant holds.
func testModel(t *testing.T, e *Env) {
	e.AllowDebt = true // random charges go into grace
	steps := 1500
	clear(outcomes)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	m := &model{now: e.Clock.Now(), pools: map[ledger.PoolKey]int64{}, jobs: map[ledger.JobKey]*modelJob{}, keys: map[string]modelKey{}}
	senders := []string{"0xs1", "0xs2"}
	caps := []string{"echo", "llm"}
	var used []string
	step := 0
	// Most operations name a recent job of the pool's own capability and a
	// fresh key; a few reuse keys and cross capabilities, to reach every rule.
	pick := func() (ledger.PoolKey, ledger.JobKey) {
		s, c := senders[rng.IntN(len(senders))], rng.IntN(len(caps))
		jc := c
		if rng.IntN(10) == 0 {
			jc = rng.IntN(len(caps))
		}
		return ledger.PoolKey{Sender: s, Capability: caps[c]},
			ledger.JobKey{Sender: s, JobID: fmt.Sprintf("%s-%d", caps[jc], step/40+rng.IntN(4))}
	}
	key := func() string {
		if len(used) > 0 && rng.IntN(5) == 0 {
			return used[rng.IntN(len(used))]
		}
		k := fmt.Sprintf("k%d", len(used))
		used = append(used, k)
		return k
	}
	for ; step < steps; step++ {
		pool, job := pick()
		switch op := rng.IntN(9); op {
		case 0, 1:
			ref := pool.Ref()
			if op == 1 {
				ref = job.Ref()
			}
			amt, k := rng.Int64N(500), key()
			want, werr := m.credit(ref, amt, k)
			r, err := e.Ledger.Credit(e.Ctx, ref, ledger.Wei(amt), k)
			sameOutcome(t, step, fmt.Sprintf("credit %s %d %s", ref, amt, k), r.Balance, r.Replayed, err, want, werr)
		case 2, 3:
			ref := job.Ref()
			if op == 3 {
				ref = pool.Ref()
			}
			amt, grace, k := rng.Int64N(300), rng.Int64N(100), key()
			want, werr := m.charge(ref, amt, grace, k)
			r, err := e.Ledger.Charge(e.Ctx, ref, ledger.Wei(amt), ledger.Wei(grace), k)
			sameOutcome(t, step, fmt.Sprintf("charge %s %d grace %d %s", ref, amt, grace, k), r.Balance, r.Replayed, err, want, werr)
		case 4, 5:
			reserve, minimum := rng.Int64N(400), rng.Int64N(300)
			want, werr := m.open(job, pool, reserve, minimum, 30*time.Second)
			r, err := e.Ledger.OpenJob(e.Ctx, ledger.OpenJobRequest{Job: job, Capability: pool.Capability,
				Reserve: ledger.Wei(reserve), Minimum: ledger.Wei(minimum), TTL: 30 * time.Second})
			sameOutcome(t, step, fmt.Sprintf("open %s on %s reserve %d min %d", job.JobID, pool.Capability, reserve, minimum), r.Balance, false, err, want, werr)
		case 6:
			want, werr := m.close(job)
			r, err := e.Ledger.CloseJob(e.Ctx, job)
			sameOutcome(t, step, "close "+job.JobID, r.Released, r.Replayed, err, want, werr)
		case 7:
			d := time.Duration(rng.IntN(20)) * time.Second
			e.Clock.Advance(d)
			m.now = m.now.Add(d)
		case 8:
			want := m.sweep()
			if want > 0 {
				outcomes["swept"]++
			}
			if got, err := e.Ledger.ExpireJobs(e.Ctx); err != nil || got != want {
				t.Fatalf("step %d sweep: expired %d (%v), model %d", step, got, err, want)
			}
		}
		r, err := ledger.Verify(e.Ctx, e.Store, ledger.VerifyOptions{AllowDebt: true})
		if err != nil || !r.OK() {
			t.Fatalf("step %d: verify %v %v", step, err, r.Problems)
		}
		if step%25 == 0 || step == steps-1 {
			compareAll(t, e, m)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	for _, want := range []error{nil, errReplay, ledger.ErrIdempotencyConflict, ledger.ErrNotFound, ledger.ErrJobMismatch,
		ledger.ErrJobClosed, ledger.ErrJobExpired, ledger.ErrInsufficientFunds} {
		if outcomes[outcomeName(want)] == 0 {
			t.Errorf("the random run never produced outcome %q; widen the generator", outcomeName(want))
		}
	}
	if outcomes["swept"] == 0 {
		t.Error("the random run never expired a job")
	}
}

func compareAll(t *testing.T, e *Env, m *model) {
	t.Helper()
	for k, want := range m.pools {
		if got := e.Balance(k.Ref()); got.Cmp(ledger.Wei(want)) != 0 {
			t.Fatalf("%s = %s, model %d", k.Ref(), got, want)
		}
	}
	for k, j := range m.jobs {
		a, err := e.Ledger.Account(e.Ctx, k.Ref())
		if err != nil || a.Balance.Cmp(ledger.Wei(j.bal)) != 0 || a.State != j.state {
			t.Fatalf("%s = %+v (%v), model %+v", k.Ref(), a, err, *j)
		}
	}
}
