// Package worker is byoc's sample BYOC worker: an HTTP service that
// registers capabilities with an orchestrator and does the work the
// orchestrator forwards to it. `byoc worker` runs it on its own, `byoc demo`
// runs it beside an orchestrator and a gateway, and end-to-end tests use it
// as the worker they can steer: make it slow, make it fail, make it crash.
//
// # Capabilities
//
// One process offers several capabilities, each under its own path prefix,
// so it can register several capability names, each with its own URL
// (Server.CapabilityURL). The orchestrator sends every job as a POST to the
// registered URL, plus "/" and the path suffix the client used after
// /process/request/ (docs/protocol.md §2.3); each capability accepts any suffix.
//
//	/reverse  reverses text. A JSON body {"text": "..."} (Content-Type
//	          application/json or *+json) is answered 200 application/json
//	          {"original":"...","reversed":"..."} plus a newline, the shape
//	          go-livepeer's reference text-reversing worker answers (recorded in
//	          internal/transcript's recordings). Any other body is taken as UTF-8 text and
//	          answered 200 text/plain, reversed. Reversal keeps combining marks,
//	          emoji modifiers and zero-width-joined sequences with their base
//	          character, so "é" written as e + U+0301 stays "é".
//	/echo     answers the body back unchanged, with the request's Content-Type
//	          (application/octet-stream when there is none).
//	/sse      server-sent events, framed like the reference SSE worker:
//	          data: {"i":0,"token":"Hello"} and a blank line, one event per
//	          interval, then data: [DONE]. The optional JSON body
//	          {"text": "...", "events": N, "interval_ms": M} chooses the text,
//	          the number of events and the interval (default: the tokens Hello,
//	          from, SSE, then the text if any, 100 ms apart). Stops as soon as
//	          the client goes away.
//	/sleep    {"duration_ms": N} or {"duration": "1.5s"}: waits that long (at
//	          most Config.MaxSleep, 10 minutes by default), then answers
//	          {"slept_ms": N}. Gives up at once when the request is cancelled.
//	          For tests of compute charging and timeouts.
//	/fail     {"status": 503, "message": "..."}: answers that status (200–599,
//	          default 500) with the message as a text/plain body, the way
//	          http.Error does. {"close_connection": true} instead drops the
//	          connection without any answer (a transport error for the
//	          orchestrator). For tests of error paths; a 401 makes a
//	          go-livepeer orchestrator remove the capability (docs/protocol.md §6.2).
//
// sleep and fail take only the fields above (an unknown field is a 400, so a
// typo cannot silently turn into a default); reverse and sse ignore unknown
// fields, as a worker standing in for the reference must.
//
// Under every capability prefix, the stream calls an orchestrator makes for
// BYOC streams (POST <url>/stream/start, /stream/params, /stream/stop, with
// X-Stream-Id) are answered the way the reference stream worker answers them:
// {"received_bytes":N,"started":true}, {"updated":true} and {"stopped":true}.
//
// GET / lists the capabilities and GET /healthz answers "ok"; neither needs
// the token.
//
// # Limits and errors
//
// With Config.Token set, every capability request must carry
// "Authorization: Bearer <token>" (the header an orchestrator adds when the
// capability was registered with that token), else 401. Bodies above
// Config.MaxBodyBytes (10 MiB by default) get 413, malformed JSON 400, a
// method other than POST 405; every error body says what was wrong. A
// handler never panics; should it, the request gets a 500 and the process
// lives on.
//
// # Tests
//
// Handler.Stats counts requests served and in flight, and Handler.WaitFor
// blocks until the counts satisfy a condition, so tests synchronise on what
// the worker saw rather than on sleeps. Server.Crash closes the listener and
// resets every connection, as a killed process would.
//
// # Registration
//
// Register and Unregister speak the orchestrator's /capability/register and
// /capability/unregister (docs/protocol.md §4.3): a JSON ExternalCapability body (or
// the raw name, to unregister) with the orchestrator secret, raw, as the
// Authorization header. Orchestrators serve HTTPS with a self-signed
// certificate; a caller accepts it only by passing InsecureSkipVerify or the
// certificate's pool (WithRootCAs).
package worker
