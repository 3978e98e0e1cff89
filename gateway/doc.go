// Package gateway is byoc's BYOC gateway: the client's entry point. It
// takes a job the way a go-livepeer gateway does, picks an orchestrator,
// pays it with PM tickets, forwards the job, relays the answer, tries the
// next orchestrator when one fails before producing output, and keeps its
// own books of what it holds at each orchestrator.
//
// # Client API
//
// POST /process/request/<path> with the Livepeer header: standard base64 of
// a JSON job request (go-livepeer's: capability, request and parameters as
// JSON texts, timeout_seconds required and positive, optional id) and the
// job's body. The answer is the worker's: its status (2xx as the
// orchestrator relays it), body and headers (its Content-Type, X-Metadata),
// plain or server-sent events streamed as they arrive, plus
// X-Orchestrator-Url (who ran it), Livepeer-Balance (what the orchestrator
// says is left in our pool there), Livepeer-Job-Charged (what the job was
// charged, from byoc orchestrators) and Livepeer-Job-Id (the job's ID).
// Bad input is a 4xx naming the problem; when no orchestrator could run the
// job the answer is 503 (none usable: unknown capability, no capacity, too
// dear), 402 (all want a payment and the gateway has no key) or 502 (jobs
// were sent and failed), listing every orchestrator tried and why; never
// an empty 200 (go-livepeer D13). An orchestrator whose answer has not
// begun within the job's timeout_seconds plus Config.JobMargin (10 s) is
// given up on: 504, not retried; an answer still streaming then is cut off.
//
// # Job IDs and retries
//
// Every job has an ID: the client's (1–128 letters, digits, - _ . :) or 128
// random bits in hex. It is sent as the request's id, so an orchestrator
// keeps the job's money in its own hold, and (for a client's ID) as
// Livepeer-Job-Id on token requests, so a byoc orchestrator reports that
// hold's balance if it has it.
//
// Each signed request is bound to its attempt: a byoc_job object in
// parameters names the attempt's ID, the capability, the timeout and an
// expiry (wire.Bind), and the job signature covers it, so a captured
// header cannot be replayed as another job (go-livepeer D8); go-livepeer
// orchestrators ignore the key.
//
// An orchestrator closes a job's hold when the job ends, whatever the
// outcome, and never opens it again. So a retry at the next orchestrator
// carries a new attempt ID, "<id>~2", "<id>~3" (client IDs cannot contain
// "~"): the failed attempt's hold has already gone back to our pool there,
// charged only for compute the worker actually did, and the new attempt is
// funded on its own; nothing is paid or charged twice. An attempt fails over
// only when no output reached the client: a transport error, a 5xx that
// does not carry the worker's X-Metadata (the orchestrator's own failure:
// worker unreachable, no capacity), or a 429. A 4xx, a 504 (the worker may
// have worked until the timeout) and a worker's own error answer are
// final and relayed. Once the first byte of an answer is sent the job is
// never run again (go-livepeer D2). At most MaxAttempts job requests are
// sent per job.
//
// # Selection
//
// Orchestrators come from a static list and/or a discovery webhook (a URL
// answering go-livepeer's [{"address": url}] list), refreshed every minute;
// until the webhook first answers, a job waits for it within its search
// timeout instead of crashing (D30). For each job, every candidate the
// job's parameters.orchestrators include/exclude lists allow is asked for a
// token in parallel, each within the response timeout and all within the
// search timeout (the client's Livepeer-Orch-Search-Resp-Timeout and
// Livepeer-Orch-Search-Timeout headers, which go-livepeer ignores, D1;
// defaults 500 ms and 1 s). Once a usable token is in (a reused one at
// once; not one from an orchestrator that failed in the last 30 s), the
// others get as long again as it took (at least 50 ms): an orchestrator
// much slower than the fastest is not waited for. Usable means: the capability is known,
// capacity is free, the price is at most MaxPrice (an exact rational, wei
// per second), a priced token has ticket params and the gateway a key, and
// its service_addr (where the job and its tickets go) is on the host of
// the orchestrator URL the token was asked from — host names compared
// case-insensitively, unresolved; the port may differ. Others are refused
// and logged (outcome foreign_service_addr) unless
// Config.AllowForeignServiceAddr (--allow-foreign-service-addr), for
// orchestrators fronted by another host.
// Offers are tried by price, then those that failed in the last 30 s last,
// then by recent latency (an EWMA of token latency plus time to a job's
// first response byte, per orchestrator).
//
// # Token reuse
//
// An orchestrator's answer to a token request serves the jobs for the same
// capability that come within Config.TokenReuse (2 s; --token-reuse),
// so a busy gateway asks each orchestrator about once per period instead
// of once per job (tokens.go). Refusals are kept as long (timeouts are
// not); an attempt that fails drops the orchestrator's token. The jobs
// reusing a token pay from one PM session with one nonce counter, capped at
// the sender's refresh threshold (500 nonces; recipients accept 600): a
// payment that would pass it asks for fresh params first. A reused token's
// balance figures are stale and not used: the books' figure sizes the
// payment. If the orchestrator refuses a reused token's payment before
// running anything ("Invalid payment": it restarted with other params;
// "Insufficient balance": its price rose), the gateway asks it for a fresh
// token and tries once more. Jobs with the client's own ID always ask.
//
// # Payment
//
// A Payer makes the payment (payer.go): the gateway's own key here, PM
// tickets signed in this process; a remote signer is the other kind.
// Tickets come from the session of the attempt's token (shared by the jobs
// reusing it, see above). The
// orchestrator admits a job only if its hold covers MinCompute (60 s by
// default, as go-livepeer and byoc orchestrators demand) and tops the hold
// up from our pool to cost(max(timeout, MinCompute)); so the gateway wants
// the hold to reach required = cost(max(timeout, MinCompute)), with
// ledger.CostOf and ledger.UnitsFor, the rounding both sides share. What it
// can count on from prepaid credit is its draw (below), at most what the
// token says is available (job_balance + pool_balance from byoc
// orchestrators, balance from go-livepeer ones); the rest, required −
// draw, is paid in n = pm.TicketsNeeded tickets, each counted at what the
// orchestrator credits for it: its EV rounded down to a whole wei
// (ledger.CreditFor), so n tickets always cover what is missing (exact EVs
// would leave the hold up to a wei per ticket short). Zero tickets when the
// credit covers it. Without a key (offchain), requests are unsigned (sender
// the zero address, sig ""), free capabilities work and priced ones are
// refused with ErrNeedsKey — never a nil dereference (D4, D5).
//
// # The books
//
// The gateway's money is in a ledger of its own (its data directory; never
// an orchestrator's), moved only by the ledger package. There is one pool
// per (orchestrator, capability) — the ledger's "sender" field holds the
// orchestrator's PM recipient address, since the gateway is the one who
// paid — and one hold per job attempt, keyed by (orchestrator, attempt
// ID), mirroring the orchestrator's two levels:
//
//   - open: the job reserves what it may count on: at most required, at
//     most what a fresh token says is available, and at most the pool as it
//     will be once the jobs already answered have posted their books
//     (ledger.Pending: this process is the books' only writer), so concurrent
//     jobs never count the same credit twice. Its hold draws that from the
//     ledger's pool (or less, while answered jobs' releases are still being
//     posted). For an ID the gateway made up (which cannot have been used)
//     the hold is written while the request is on its way, together with
//     the payment (one ledger step, ledger.Admit) once the request's
//     headers are written, or alone when there is nothing to pay; a
//     client's ID is opened before paying, so a reused one is refused up
//     front (409).
//   - credit: the tickets sent, one credit each, keyed by the ticket's
//     hash (as the orchestrator keys them), worth CreditFor(EV). They are
//     booked as soon as the request headers carrying them are written,
//     alongside the request: once sent they are spent — the orchestrator
//     holds the signed tickets whatever it answers — and a crash mid-job
//     cannot lose the record. A payment that never left (the connection
//     failed first) is not booked. If an orchestrator refuses a job before
//     taking its payment (no capacity, a 4xx before admission), the books
//     hold credit it does not: reconciliation finds that shortfall.
//   - charge: Livepeer-Job-Charged, the exact charge from byoc
//     orchestrators; for a byoc stream, the hold's balance at its start
//     (Livepeer-Payment-Balance) minus the balance line the orchestrator
//     sends before [DONE]; for orchestrators that report neither
//     (go-livepeer), the price times the whole seconds the gateway waited,
//     an upper bound of what they charge; for a job given up on (504),
//     timeout_seconds at the price, the most the orchestrator may be
//     entitled to. Never more than the hold holds for the job (what it
//     drew plus the tickets sent, less any write-off): an orchestrator
//     claiming more is logged (warn), counted
//     (byoc_gateway_overcharge_claims_total{orchestrator} and
//     byoc_gateway_overcharge_claimed_wei_total) and ranks as failed, so
//     no answer can drive a pool below zero.
//   - close: what is left goes back to the pool in the same step as the
//     charge (ledger.FinishJob).
//   - write-off: what a byoc orchestrator says the payment did not credit
//     (Livepeer-Payment-Credited below what was sent: it refused the
//     tickets) is charged to the hold under "uncredited:…" before it
//     closes, so the books never count tickets the orchestrator refused.
//
// A job's charge and close are posted right after its answer went out (the
// handler returns first, so the client's keep-alive connection is free at
// once); WaitIdle and Close wait for them. After a crash, a hold left open
// is released by the sweeper after its TTL (timeout plus HoldTTLMargin)
// with the tickets it paid and without the charge it never learned: the
// credit carries over to the next job, and reconciliation finds the
// missing charge as a shortfall and writes it down.
//
// # Reconciliation (bounded)
//
// The books are compared with the orchestrator's own figure for our pool —
// a token's pool_balance (byoc, exact) or balance (go-livepeer), and a
// plain answer's Livepeer-Balance (the pool after the orchestrator closed
// the job) — whenever both describe the same state: no other job of ours
// was open at that orchestrator in between, and none may still be settling
// there (a stream or a broken attempt whose hold the orchestrator may close
// a little after we stopped listening: SettleTime). The books' side is the
// pool as it will be once every answered job's books are posted
// (ledger.Pending; this process is the books' only writer), so jobs still
// posting do not get in the way. go-livepeer resets its
// mirror to whatever the token says (BYOC.md §6.2); this gateway never
// credits itself more than it paid. An orchestrator reporting more than
// the books is logged and counted, nothing else (another gateway sharing
// our key, go-livepeer's exact EVs and lower charges). An orchestrator
// reporting less (it lost its ledger, charged more than it said, someone
// with our key spent the pool) is logged and counted, payments are sized by
// the lower figure at once, and when a second comparison shows the same
// shortfall the pool is written down by it (a charge on the pool keyed
// "writedown:…"), never below zero. Metrics: byoc_gateway_books_comparisons_total{result},
// byoc_gateway_books_discrepancy_wei_total{direction},
// byoc_gateway_books_written_down_wei_total.
//
// # Legacy orchestrators
//
// go-livepeer master keys balances by (sender, capability): there the
// account is the pool, and the per-job holds exist only in our books. The
// same rules apply; the pool view is the token's balance (floored,
// saturating at about 0.0092 ETH, where comparisons stop) and
// Livepeer-Balance. Its streams are relayed only up to [DONE] (it keeps
// the connection open with newlines until the timeout, D2b).
//
// # Operations
//
// StartNode serves the client API and, on a separate listener, /metrics
// (jobs by outcome, attempts per orchestrator and stage, tickets and wei
// paid and charged, job/token/selection latency, book comparisons,
// write-downs, ledger errors), /healthz, /admin/orchestrators and
// /admin/pools. Logs are structured (log/slog) with job_id, capability and
// orchestrator. `byoc gateway` runs it; `byoc bench` measures it
// (package gatewaybench).
package gateway
