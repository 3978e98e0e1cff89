package orchestrator

// Streams (docs/orchestrator.md, "Streams"; docs/protocol.md §9).
//
// A stream is a long-lived session a gateway opens with /ai/stream/start
// and ends with /ai/stream/stop; between the two it sends /ai/stream/update
// (new parameters for the worker) and /ai/stream/payment (top-ups). Its
// media, control, events and data move over trickle channels named after
// its ID. Its money is one hold in the ledger, the stream's ID being the
// hold's job ID (meter.Stream): opened at start with the start payment
// and a reservation from the sender's pool, at the price pinned at start,
// charged by elapsed time, topped up by payments, closed at stop with the
// remainder released to the pool.
//
// The states of a stream, and what moves it from one to the next:
//
//	(none) ──start──▶ starting ──admitted, channels made, worker said 2xx──▶ running
//	starting ──402 / worker refused / worker unreachable──▶ stopped
//	running ──a settlement the hold cannot cover──▶ dry
//	dry ──a payment that covers what is owed──▶ running
//	dry ──grace passed (at a batch tick)──▶ stopped (reason: insufficient balance)
//	running, dry ──/ai/stream/stop──▶ stopped (reason: stopped by the gateway)
//	running, dry ──the node shuts down──▶ (the hold expires into the pool after its TTL)
//
// starting: the ID is taken (a second start with it is 409; an ID is never
// reused while its hold exists), a capacity slot is held, the hold is open.
// Update, stop and payment for it are 404: they cannot reach a worker that
// has not been started.
//
// running and dry: what the stream owes is price × elapsed whole seconds
// since its start, less what was charged (computed when read); it is
// charged at each payment, at stop and at every batch tick of the one
// settlement loop (RunStreams), never by a goroutine per stream. dry is
// running whose last settlement could not be charged: it keeps running
// through the grace (Config.StreamGrace), owing what it owes.
//
// stopped is final and happens once (stream.stop): the stream leaves the
// table first (so no settlement, payment or update can touch it again:
// no debit after release), then the worker gets /stream/stop, the
// orchestrator writes a last event saying why on the events channel, the
// channels are closed, the hold is finished (what is owed is charged, up
// to what the hold holds, and the rest released to the pool in the same
// ledger step, under a key naming the reason) and the capacity slot is
// released. The sender's other streams and jobs are not touched.
//
// Stream IDs name trickle channels: <id>, <id>-out, <id>-control,
// <id>-events, <id>-data. An ID that ends in one of those suffixes could
// name another stream's channel, so it is refused (400), as is one with a
// character outside [A-Za-z0-9._~-] or longer than maxStreamIDBytes.
