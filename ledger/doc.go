// Package ledger keeps byoc's money: prepaid pool accounts per
// (sender, capability, customer) and per-job hold accounts per (sender, job
// ID), moved only by atomic, idempotent operations and stored durably by a
// Store (SQLite embedded, or PostgreSQL for several replicas).
//
// Nothing else in byoc changes a balance. Callers (orchestrator, gateway,
// signer) decide *which* account a payment belongs to; this package decides
// whether the movement is allowed and records it exactly once.
//
// # Accounts
//
// A pool is prepaid credit for one (sender, capability, customer). The
// customer is "" unless a remote signer attested one. A pool is created by its
// first credit or by the first job opened against it, and is never closed.
//
// A job (a hold) belongs to exactly one pool. It is keyed by (sender, job ID):
// the same job ID under another sender is another job, so sender B can never
// see, fund, charge or close sender A's job.
//
// Money enters only by Credit (a payment) and leaves only by Charge (compute
// used). Between accounts it moves by reserve (pool → job, when a job opens)
// and release (job → pool, when a job closes or expires). Every movement is an
// entry: a transfer of a non-negative amount from one account (or from
// outside, for a credit) to another (or to outside, for a charge).
//
// # Job state machine
//
//	            OpenJob               CloseJob
//	(absent) ──────────▶ open ───────────────────▶ closed
//	                     │  ▲ Credit / Charge /
//	                     │  │ OpenJob (top-up): stay open, refresh TTL
//	                     │
//	                     └──────────────────────▶ expired
//	                          sweep, idle > TTL
//
// The states:
//
//   - open: reserve drawn, accepts Credit and Charge. Each accepted Credit,
//     Charge or OpenJob top-up sets expires_at = now + TTL (TTL is an interval
//     from the last activity, not a wall-clock deadline).
//   - closed, expired: final. The job's whole balance (possibly negative, see
//     Charge's grace) was released to its pool in the same atomic step that
//     changed the state, so a final job always has balance 0. A final job
//     accepts nothing more; CloseJob on a final job succeeds again without
//     change (Replayed), whatever the final state.
//   - Admit that refuses a job (its hold below the minimum) closes it in the
//     same step when its payment credited something: the job ID is used.
//     When the payment moved no money (none, or nothing but replayed or
//     invalid tickets), Admit writes nothing at all — no pool, no job, no
//     ticket nonces — and the job stays absent: its ID may be admitted
//     later. So refusals that move no money cannot grow the ledger.
//   - A job whose expires_at has passed but that the sweeper has not reached
//     yet is treated as expired by Credit, Charge and OpenJob (ErrJobExpired);
//     only the sweeper or CloseJob moves it, and both release the same way.
//
// # Balance rules, as inequalities
//
// For an operation to be accepted:
//
//	OpenJob:  draw = min(max(reserve − job.balance, 0), max(pool.balance, 0))
//	          rejected (ErrInsufficientFunds) when job.balance + draw < minimum
//	Charge:   rejected (ErrInsufficientFunds) when balance − amount < −grace
//	Credit:   always accepted for a valid amount on an existing open job or any pool
//
// And at every commit (checked by Verify):
//
//	Σ credits = Σ pool balances + Σ open job balances + Σ charges   (conservation)
//	balance(a) = Σ entries into a − Σ entries out of a               (journal)
//	balance(final job) = 0                                          (no dust)
//	no open job with expires_at ≤ now after a sweep at now           (no stranded holds)
//	each idempotency key appears on at most one entry               (single credit)
//	balance(pool) ≥ 0 and balance(open job) ≥ 0                     (no debt)
//
// A pool may be negative only when a job that a caller allowed into grace was
// released with a deficit: the sender then owes that amount, and the pool
// admits no job until it is credited again. Nothing is written off silently.
// byoc's nodes never leave such a debt (a job is charged at most what it
// held), so Verify names every pool and open job below zero unless
// VerifyOptions.AllowDebt says debt is expected.
//
// # Idempotency
//
// Credit and Charge carry a caller-chosen key (a PM ticket hash, a charge
// sequence). The key is stored on the entry with a hash of the operation's
// inputs, under a UNIQUE constraint, in the same transaction. The same key
// with the same inputs returns the original result with Replayed = true and
// changes nothing; the same key with other inputs is ErrIdempotencyConflict.
// (A batch first takes its keys to be new, which they nearly always are,
// and lets the UNIQUE constraint tell otherwise; it is then applied again
// with its keys looked up, so the answer is the same.)
// OpenJob, CloseJob and expiry are idempotent by the job's state.
//
// # Errors, in order of precedence
//
// When several apply, the first listed is returned:
//
//  1. ErrInvalidInput: empty or oversized key or name, control characters,
//     negative or absurd amount (above MaxAmount), negative TTL. Checked
//     before any storage is touched.
//  2. ErrIdempotencyConflict: the key was used before with other inputs.
//  3. ErrNotFound: the job (or, for a charge, the pool) does not exist.
//  4. ErrJobMismatch: OpenJob for an existing job with another capability or
//     customer.
//  5. ErrJobClosed / ErrJobExpired: the job is final, or idle past its TTL.
//  6. ErrInsufficientFunds: an inequality above would be broken.
//  7. ErrAmountOverflow: a balance would leave ±MaxAmount.
//
// A rejected operation changes nothing. Store failures are returned wrapped
// and also change nothing: each operation is all-or-nothing.
//
// # Amounts and the rounding rule
//
// Amounts are whole wei (Amount, an arbitrary-precision integer bounded by
// MaxAmount = 2^256−1), never floats. Two things arrive as exact fractions and
// are rounded here, in rounding.go and nowhere else:
//
//   - Compute time is billed in whole units: a duration is rounded UP to whole
//     units, at least one (UnitsFor), as go-livepeer bills a partial second.
//     The cost of n units at a fractional price is rounded UP to a whole wei
//     (CostOf).
//   - A PM ticket's expected value faceValue·winProb/(2^256−1) is credited
//     rounded DOWN to a whole wei (CreditFor); the fraction (< 1 wei a ticket)
//     stays with the orchestrator.
//
// Both directions favour the party that did the work, by less than one wei
// per event, and both sides of a byoc connection apply the same functions, so
// their books agree exactly.
//
// # Pending holds
//
// A writer that starts work before its writes commit (the gateway) keeps
// its pools' figures ahead of the ledger with Pending: the balance read
// from the ledger, less the draws of holds it reserved, plus the releases
// it promised once their charges were known. Pending writes nothing; the
// holds' OpenJob, Admit and FinishJob do, and the pool is read again when
// no hold of it is pending.
//
// # Durability and throughput
//
// Operations are queued to a committer that applies a batch of them in one
// store transaction (group commit): one fsync serves many operations, and an
// operation returns only after its batch committed. Operations within a batch
// are applied in order, each all-or-nothing. Time is read once per batch from
// the injected Clock.
package ledger
