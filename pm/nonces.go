package pm

import (
	"context"
	"errors"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum/common"
)

// DefaultMaxNoncesPerSession is how many distinct nonces a recipient accepts
// under one recipientRandHash (go-livepeer's maxSenderNonces).
const DefaultMaxNoncesPerSession = 600

// NonceVerdict is the outcome of presenting a ticket nonce to a session's
// set of seen nonces.
type NonceVerdict uint8

const (
	// NonceAccepted: the nonce is new and was recorded.
	NonceAccepted NonceVerdict = iota
	// NonceSeen: the nonce was already recorded (a replay).
	NonceSeen
	// NonceTooMany: the session already holds the maximum number of nonces.
	NonceTooMany
)

func (v NonceVerdict) String() string {
	switch v {
	case NonceAccepted:
		return "accepted"
	case NonceSeen:
		return "seen"
	case NonceTooMany:
		return "too many"
	}
	return "unknown"
}

// DecideNonce is the replay rule for one nonce, given whether it is already
// recorded for the session and how many nonces the session holds: a seen
// nonce is rejected first; otherwise it is rejected when recorded >= max
// (so the max+1-th distinct nonce fails); otherwise it is accepted and must
// be recorded. Nonces may arrive in any order, and 0 is a valid nonce.
func DecideNonce(seen bool, recorded, max int) NonceVerdict {
	if seen {
		return NonceSeen
	}
	if recorded >= max {
		return NonceTooMany
	}
	return NonceAccepted
}

// NonceSet is a read-only view of the nonces already recorded for one
// session, as a NonceBook implementation sees it inside its transaction.
type NonceSet interface {
	// Contains reports whether nonce is recorded.
	Contains(nonce uint32) bool
	// Len returns how many distinct nonces are recorded.
	Len() int
}

// NonceSnapshot is a NonceSet built from what a store read inside its
// transaction: which of the nonces about to be decided are already recorded
// for the session, and how many nonces the session holds in total. That is
// all ApplyNonceRule needs, so a durable book never loads a whole session.
type NonceSnapshot struct {
	Recorded map[uint32]struct{}
	Count    int
}

// NewNonceSnapshot returns a snapshot from the recorded nonces found among
// those being decided and the session's total count.
func NewNonceSnapshot(recorded []uint32, count int) *NonceSnapshot {
	s := &NonceSnapshot{Recorded: make(map[uint32]struct{}, len(recorded)), Count: count}
	for _, n := range recorded {
		s.Recorded[n] = struct{}{}
	}
	return s
}

// Contains implements NonceSet.
func (s *NonceSnapshot) Contains(n uint32) bool { _, ok := s.Recorded[n]; return ok }

// Len implements NonceSet.
func (s *NonceSnapshot) Len() int { return s.Count }

// ApplyNonceRule applies DecideNonce to nonces in order, as if each accepted
// nonce were recorded before the next is decided (so a nonce repeated within
// the call is seen the second time). It returns one verdict per nonce and
// the accepted nonces, in order, which the caller must record. It does not
// modify set. max <= 0 selects DefaultMaxNoncesPerSession.
//
// This is the one implementation of the rule: every NonceBook, in memory or
// durable, should read the session's state (for a store: which of nonces are
// recorded and the session's count, see NonceSnapshot), call ApplyNonceRule
// and store the accepted nonces, all in one transaction.
func ApplyNonceRule(set NonceSet, nonces []uint32, max int) (verdicts []NonceVerdict, accepted []uint32) {
	if max <= 0 {
		max = DefaultMaxNoncesPerSession
	}
	verdicts = make([]NonceVerdict, len(nonces))
	var added map[uint32]struct{}
	for i, n := range nonces {
		_, dup := added[n]
		v := DecideNonce(dup || set.Contains(n), set.Len()+len(accepted), max)
		verdicts[i] = v
		if v == NonceAccepted {
			if added == nil {
				added = make(map[uint32]struct{}, len(nonces))
			}
			added[n] = struct{}{}
			accepted = append(accepted, n)
		}
	}
	return verdicts, accepted
}

// NonceSession identifies the ticket session nonces belong to.
type NonceSession struct {
	// RecipientRandHash keys the session.
	RecipientRandHash common.Hash
	// Sender is the payer, for messages and bookkeeping.
	Sender common.Address
	// ExpirationBlock is the session's params expiration. Once the last seen
	// L1 block is comfortably past it (allow for clock or chain
	// reorganisation) a book may forget the session: its tickets can no
	// longer earn credit, and a winning ticket queued again is absorbed by
	// the idempotent Redeemer.
	ExpirationBlock *big.Int
}

// NonceBook records which ticket nonces have been seen per
// recipientRandHash. byoc's ledger implements it durably so that replay
// protection survives restarts.
type NonceBook interface {
	// RecordNonces applies ApplyNonceRule to nonces for the session and
	// records the accepted ones, atomically: either all accepted nonces are
	// recorded and the verdicts returned, or nothing is recorded and an
	// error is returned. It returns exactly one verdict per nonce.
	RecordNonces(ctx context.Context, s NonceSession, nonces []uint32) ([]NonceVerdict, error)
}

// MemNonceBook is an in-memory NonceBook, for tests and tools. It is safe
// for concurrent use.
type MemNonceBook struct {
	max int

	mu       sync.Mutex // guards sessions
	sessions map[common.Hash]*memNonces
}

type memNonces struct {
	seen       map[uint32]struct{}
	expiration *big.Int
}

func (m *memNonces) Contains(n uint32) bool { _, ok := m.seen[n]; return ok }
func (m *memNonces) Len() int               { return len(m.seen) }

// NewMemNonceBook returns an empty book that accepts maxPerSession nonces
// per session (<= 0 selects DefaultMaxNoncesPerSession).
func NewMemNonceBook(maxPerSession int) *MemNonceBook {
	if maxPerSession <= 0 {
		maxPerSession = DefaultMaxNoncesPerSession
	}
	return &MemNonceBook{max: maxPerSession, sessions: make(map[common.Hash]*memNonces)}
}

// RecordNonces implements NonceBook.
func (b *MemNonceBook) RecordNonces(ctx context.Context, s NonceSession, nonces []uint32) ([]NonceVerdict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.sessions[s.RecipientRandHash]
	if set == nil {
		set = &memNonces{seen: make(map[uint32]struct{})}
		if s.ExpirationBlock != nil {
			set.expiration = new(big.Int).Set(s.ExpirationBlock)
		}
	}
	verdicts, accepted := ApplyNonceRule(set, nonces, b.max)
	if len(accepted) > 0 {
		b.sessions[s.RecipientRandHash] = set
		for _, n := range accepted {
			set.seen[n] = struct{}{}
		}
	}
	return verdicts, nil
}

// Forget drops every session whose expiration block is at or below block
// and returns how many it dropped. Sessions recorded without an expiration
// block are kept.
func (b *MemNonceBook) Forget(block *big.Int) int {
	if block == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k, s := range b.sessions {
		if s.expiration != nil && s.expiration.Cmp(block) <= 0 {
			delete(b.sessions, k)
			n++
		}
	}
	return n
}

// Sessions returns how many sessions the book holds.
func (b *MemNonceBook) Sessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

var errNilNonceBook = errors.New("pm: nil nonce book")
