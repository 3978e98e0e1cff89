// Package worker is byoc's sample BYOC worker: an HTTP service that
// registers capabilities with an orchestrator and does the work the
// orchestrator forwards to it. `byoc worker` runs it on its own, `byoc demo`
// runs it beside an orchestrator and a gateway, and end-to-end tests use it
// as the worker they can steer: make it slow, make it fail, make it crash.
//
// One process offers several capabilities, each under its own path prefix
// (Server.CapabilityURL): /reverse, /echo, /sse, /sleep and /fail, each
// also answering the BYOC stream calls (/stream/start, /stream/params,
// /stream/stop): a started stream reads its input trickle channel,
// publishes each segment transformed (uppercased, reversed, echoed) on its
// output channel and writes events, until stopped (stream.go). With
// Config.Token set every capability request needs that
// bearer token. A handler never panics. Handler.Stats and Handler.WaitFor
// let tests synchronise on what the worker saw; Server.Crash kills it as a
// process would die. Register and Unregister speak the orchestrator's
// /capability/register and /capability/unregister.
//
// What each capability answers, the limits and errors, and the
// registration protocol are in docs/worker.md.
package worker
