// Package gateway is byoc's BYOC gateway: the client's entry point. It
// takes a job the way a go-livepeer gateway does, picks an orchestrator,
// pays it with PM tickets, forwards the job, relays the answer, tries the
// next orchestrator when one fails before producing output, and keeps its
// own books of what it holds at each orchestrator.
//
// The client API is POST /process/request/<path> with the Livepeer header;
// the answer is the worker's, plus X-Orchestrator-Url, Livepeer-Balance,
// Livepeer-Job-Charged and Livepeer-Job-Id. When no orchestrator could run
// the job the answer is 503, 402 or 502 naming every orchestrator tried,
// never an empty 200; an answer that has not begun within the job's timeout
// plus Config.JobMargin is a 504.
//
// Where things are: submit.go runs a job (attempts, failover, charging the
// books); selection.go asks orchestrators for tokens and ranks the offers;
// tokens.go reuses tokens and their PM sessions; books.go keeps the
// gateway's own ledger (a pool per orchestrator and capability, a hold per
// attempt) and reconciles it with what orchestrators report; relay.go
// relays plain and server-sent-event answers; discovery.go keeps the
// orchestrator list; node.go starts the servers (StartNode). `byoc gateway`
// runs it; `byoc bench` measures it (package internal/bench).
//
// The manual — job IDs and retries, selection, token reuse, how a payment
// is sized, the books and their reconciliation, legacy orchestrators,
// metrics — is docs/gateway.md. The D-numbers in comments are go-livepeer's
// defects, listed in docs/protocol.md.
package gateway
