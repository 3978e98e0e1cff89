// Package ledger keeps byoc's money: prepaid pool accounts per
// (sender, capability, customer) and per-job hold accounts per (sender, job
// ID), moved only by atomic, idempotent operations and stored durably by a
// Store (SQLite embedded, or PostgreSQL for several replicas).
//
// Nothing else in byoc changes a balance. Callers (orchestrator, gateway,
// signer) decide *which* account a payment belongs to; this package decides
// whether the movement is allowed and records it exactly once.
//
// Money enters only by Credit (a payment) and leaves only by Charge (compute
// used); between accounts it moves by reserve (pool → job, OpenJob or Admit)
// and release (job → pool, CloseJob, FinishJob or expiry), every movement an
// entry in the journal. A job is open until it is closed or expires; a final
// job holds exactly 0. Credit and Charge carry a caller-chosen idempotency
// key: a replay returns the original result and changes nothing.
//
// Amounts are whole wei (Amount, never floats); the only rounding, billing
// units up and ticket credits down, is in rounding.go. Operations are
// applied in batches by a group committer, each all-or-nothing, with time
// from the injected Clock. Verify checks every invariant (conservation, the
// journal, no dust, no stranded holds, single credit, no debt).
//
// The rules in full — the job state machine, the balance rules as
// inequalities, idempotency, the errors in order of precedence, the
// rounding rule, durability — are in docs/ledger.md, "The rules in full".
package ledger
