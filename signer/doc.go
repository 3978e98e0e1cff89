// Package signer is byoc's remote signer: it holds the paying key and signs
// PM ticket batches and orchestrator-info requests for gateways that hold
// none, over the same HTTP API as go-livepeer's remote signer
// (/sign-orchestrator-info, /generate-live-payment,
// /discover-orchestrators). Before it signs, it asks an optional auth
// webhook who the customer is and charges the customer's budget in the
// ledger, so a customer over budget is refused before a nonce is spent. The
// manual, and every difference from go-livepeer's signer a peer can see, is
// in docs/signer.md.
package signer
