// Package pm implements Livepeer's probabilistic micropayment (PM) tickets,
// wire-compatible with go-livepeer: the recipient (orchestrator) side that
// issues ticket parameters and validates incoming tickets, the sender
// (gateway, remote signer) side that keeps ticket sessions and signs ticket
// batches, and the pure functions both share (ticket hash, recipientRand,
// win rule, face value and win probability, ticket counts). Signatures are
// made and checked by package ethsig.
//
// # Model
//
// A recipient commits to a secret random number per ticket session: it hands
// out TicketParams whose RecipientRandHash is keccak256 of
// HMAC-SHA256(secret, seed‖sender‖faceValue‖winProb‖expirationBlock‖price‖auxData).
// The sender signs tickets (EIP-191 personal-sign over the ticket hash) with
// increasing nonces under that hash. A ticket wins when
// keccak256(sig‖recipientRand) < winProb; it is worth its expected value
// EV = faceValue·winProb/(2^256−1), an exact rational, whether or not it wins.
//
// # Recipient flow
//
//	v, err := rcpt.Validate(payment, quote) // stateless; err is a *FatalError
//	err = v.Settle(ctx, nonceBook)          // replay rule, credit flags
//	for _, t := range v.Tickets { if t.Credit { credit(t.TicketHash, t.EV) } }
//	for _, w := range v.Winners() { redeemer.QueueTicket(ctx, w) }
//
// Validate runs go-livepeer's checks in go-livepeer's order; the only state
// it needs, the set of nonces already seen per recipientRandHash, is behind
// the NonceBook interface so that it can live in a durable store; a store
// that applies the rule inside its own transaction (byoc's ledger, through
// pmledger) takes Validation.Nonces as values instead and gives its
// verdicts to Validation.SettleNonces. The rule is ApplyNonceRule
// (pmledger's tests hold the ledger's to it).
//
// # Sender flow
//
//	id, _ := sender.StartSession(token.TicketParams, token.Price) // one per job
//	n, _, _ := pm.TicketsNeeded(fee, ev, existingCredit)
//	batch, _ := sender.CreateTicketBatch(id, n)
//	header := wire.EncodePaymentHeader(batch.Payment(pm.LayoutBYOC))
//
// # Amounts
//
// Every amount is an exact *big.Int (wei) or *big.Rat; nothing here rounds
// unless its doc comment says so, and nothing uses floating point. Values
// returned to callers are fresh copies that the caller may modify.
//
// Time and chain state come in through BlockSource; OffchainBlocks derives a
// block number from an injected clock for nodes that run without a chain.
package pm
