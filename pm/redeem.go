package pm

import (
	"context"
	"sync"

	"github.com/ethereum/go-ethereum/common"
)

// SignedTicket is a winning ticket with everything needed to redeem it on
// the TicketBroker: the ticket, the sender's signature and the revealed
// recipientRand.
type SignedTicket struct {
	Ticket        Ticket
	Hash          common.Hash // the ticket hash (usedTickets key)
	Sig           []byte
	RecipientRand [32]byte
}

// Redeemer takes winning tickets for later on-chain redemption. byoc's
// ledger implements it durably (the winning-ticket queue).
//
// QueueTicket must be idempotent by SignedTicket.Hash, also after the
// ticket was redeemed: a winning ticket can be presented again (replayed,
// or re-validated after a nonce session was forgotten), and a redemption
// must only be attempted once the ticket's ParamsExpirationBlock has
// passed, because revealing recipientRand earlier lets the sender predict
// which of its further tickets win.
type Redeemer interface {
	QueueTicket(ctx context.Context, t *SignedTicket) error
}

// OffchainRedeemer is the Redeemer of a node without a chain: it only keeps
// the winning tickets it is given, once each, in memory. Safe for concurrent
// use.
type OffchainRedeemer struct {
	mu      sync.Mutex // guards tickets and seen
	tickets []*SignedTicket
	seen    map[common.Hash]struct{}
}

// QueueTicket records t unless a ticket with the same hash was recorded.
func (r *OffchainRedeemer) QueueTicket(ctx context.Context, t *SignedTicket) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[common.Hash]struct{})
	}
	if _, ok := r.seen[t.Hash]; ok {
		return nil
	}
	r.seen[t.Hash] = struct{}{}
	r.tickets = append(r.tickets, t)
	return nil
}

// Tickets returns the recorded tickets in the order they were queued.
func (r *OffchainRedeemer) Tickets() []*SignedTicket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*SignedTicket(nil), r.tickets...)
}
