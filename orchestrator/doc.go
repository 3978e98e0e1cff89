// Package orchestrator is byoc's BYOC orchestrator: it registers workers'
// capabilities, issues job tokens (price, ticket params, balance), takes PM
// payments, admits jobs against capacity and a per-job hold in the ledger,
// forwards them to a worker (plain or server-sent events), charges for the
// compute time used and releases what is left to the sender's pool.
//
// It speaks go-livepeer's BYOC protocol so an unmodified go-livepeer
// gateway can use it, with fixes and additions: a job with an `id` gets its
// own hold (sender B never sees sender A's job); a request without one is a
// legacy request, paid into and charged to its pool as a capability-keyed
// node would, but held like any job under an internal job ID
// (LegacyJobPrefix), so concurrent legacy requests cannot overdraw the pool.
// A refusal that moves no money writes nothing to the ledger.
// Every money move of a job goes through package meter (admit, debit,
// finish); the handlers parse, call it and map its errors (httperr.go).
//
// Money: a job's account is opened when the job arrives, the payment sent
// with it is credited to it, and it is topped up from the sender's pool up
// to the job's possible cost (timeout_seconds at the capability's price,
// and at least MinCompute). It is admitted only if it then holds MinCompute
// of compute (default 60 s, as go-livepeer demands). After the worker
// answers, the compute time used is charged (whole seconds, rounded up, at
// least one, at most timeout_seconds: ledger.BilledUnits; never more than
// the hold holds) and the job is closed, its remainder going back to the
// pool in the same transaction. If the orchestrator dies
// mid-job, the hold expires after its TTL and comes back the same way.
//
// What is charged when a worker fails: the worker's time is charged
// whenever the worker got the job (it answered, even with an error status;
// it was still working when the timeout or the client ended the job; or
// its connection broke after it had received the whole request); nothing
// is charged when the worker could not be reached or refused our token
// (401): then no compute was done for the sender. A worker that could not
// be reached, broke the connection or refused our token is removed, as
// go-livepeer does, and the gateway may try another orchestrator (5xx).
//
// A server-sent-events job is charged while it runs, every ChargeInterval,
// for the whole seconds used so far, and only while its hold covers it:
// when the next charge would overdraw the hold, the stream is stopped with
// an "insufficient balance" event (that job only), and the part of a
// second it could not pay is not charged. A stream whose worker breaks, or
// that its timeout cuts, ends with an "error" event.
package orchestrator
