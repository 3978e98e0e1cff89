package pm

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"byoc/ethsig"
	"byoc/wire"
)

// Sender defaults.
const (
	// DefaultRefreshThreshold is the last nonce at which a session asks for
	// fresh params (NeedsRefresh), well before the recipient's cap.
	DefaultRefreshThreshold = 500
	// DefaultMaxSessions bounds how many sessions a Sender holds at once.
	DefaultMaxSessions = 100_000
)

const (
	// DefaultMaxTicketEV is go-livepeer's -maxTicketEV default, in wei.
	DefaultMaxTicketEV = 3_000_000_000_000
	// DefaultMaxTotalEV is go-livepeer's -maxTotalEV default, in wei: the
	// most EV one batch may carry.
	DefaultMaxTotalEV = 20_000_000_000_000
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Signer signs tickets. Nil makes an offchain sender: it can keep
	// sessions and build ticketless (price 0) payments, which encode to an
	// empty header, but refuses to create tickets.
	Signer ethsig.Signer
	// MaxNonces is the recipient's per-session nonce cap; a batch that
	// would go past it is refused. 0 selects DefaultMaxNoncesPerSession.
	MaxNonces uint32
	// RefreshThreshold is the last nonce from which NeedsRefresh reports
	// true. 0 selects DefaultRefreshThreshold (capped at MaxNonces).
	RefreshThreshold uint32
	// MaxTicketEV and MaxTotalEV (wei) bound one ticket's EV and one batch's
	// total EV; nil selects DefaultMaxTicketEV and DefaultMaxTotalEV.
	MaxTicketEV *big.Int
	MaxTotalEV  *big.Int
	// MaxSessions bounds open sessions; 0 selects DefaultMaxSessions.
	MaxSessions int
	// Blocks, if set, lets CreateTicketBatch refuse params within one block
	// of expiring (ErrTicketParamsExpired) and StartSession drop sessions
	// whose params have expired.
	Blocks BlockSource
}

// SessionID identifies a ticket session: the recipientRandHash of its params.
type SessionID = common.Hash

// Sender keeps ticket sessions and signs ticket batches. Safe for concurrent
// use; nonces within a session are never handed out twice.
type Sender struct {
	cfg         SenderConfig
	maxTicketEV *big.Rat
	maxTotalEV  *big.Rat

	mu       sync.Mutex // guards sessions, starts and ended
	sessions map[SessionID]*session
	starts   int
	// ended keeps the last nonce of ended sessions, so a session started
	// again with the same params continues after it: a recipient may send
	// the same params again (same recipientRandHash), and it has the
	// nonces already used recorded. Two generations of at most
	// MaxSessions each: the older one is dropped when the newer fills, so
	// a hash used again moves to the newer and stays.
	ended, endedOld map[SessionID]uint32
}

type session struct {
	params    *wire.TicketParams // as received, field 7 included
	price     *wire.PriceInfo    // as received
	parsed    *TicketParams
	ev        *big.Rat // read-only
	preimage  [PreimageLen]byte
	preLen    int
	lastNonce uint32 // guarded by Sender.mu
}

// NewSender returns a Sender.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.MaxNonces == 0 {
		cfg.MaxNonces = DefaultMaxNoncesPerSession
	}
	if cfg.RefreshThreshold == 0 {
		cfg.RefreshThreshold = DefaultRefreshThreshold
	}
	if cfg.RefreshThreshold > cfg.MaxNonces {
		cfg.RefreshThreshold = cfg.MaxNonces
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxTicketEV == nil {
		cfg.MaxTicketEV = big.NewInt(DefaultMaxTicketEV)
	}
	if cfg.MaxTotalEV == nil {
		cfg.MaxTotalEV = big.NewInt(DefaultMaxTotalEV)
	}
	return &Sender{
		cfg:         cfg,
		maxTicketEV: new(big.Rat).SetInt(cfg.MaxTicketEV),
		maxTotalEV:  new(big.Rat).SetInt(cfg.MaxTotalEV),
		sessions:    make(map[SessionID]*session),
		ended:       make(map[SessionID]uint32),
	}
}

// CanSign reports whether the sender has a key.
func (s *Sender) CanSign() bool { return s.cfg.Signer != nil }

// Address returns the sender's address, or the zero address offchain.
func (s *Sender) Address() common.Address {
	if s.cfg.Signer == nil {
		return common.Address{}
	}
	return s.cfg.Signer.Address()
}

// StartSession opens a ticket session for params (as received from the
// recipient, including expiration_params, field 7) quoted at price (the
// recipient's PriceInfo, echoed in every payment). Start one session per
// job, with that job's fresh params. Nonces start at 0, so the first ticket
// has nonce 1.
//
// Starting a session whose recipientRandHash is already open keeps the open
// session and its nonces (go-livepeer resets them, which would make the
// recipient reject the reused nonces); starting one whose recipientRandHash
// was ended before continues after that session's last nonce, for the same
// reason (the recipient sent the same params again). Errors: ErrNoTicketParams,
// ErrMissingExpirationParams, ErrTooManySessions, an invalid price
// (ErrInvalidExpectedPrice) or malformed params (see ParseTicketParams).
func (s *Sender) StartSession(params *wire.TicketParams, price *wire.PriceInfo) (SessionID, error) {
	if params == nil {
		return SessionID{}, ErrNoTicketParams
	}
	if params.ExpirationParams == nil {
		return SessionID{}, ErrMissingExpirationParams
	}
	parsed, err := ParseTicketParams(params)
	if err != nil {
		return SessionID{}, err
	}
	if parsed.PricePerPixel, err = ParsePrice(price); err != nil {
		return SessionID{}, err
	}
	sess := &session{
		params: params.Clone(),
		price:  price.Clone(),
		parsed: parsed,
		ev:     parsed.EV(),
		preLen: PreimageLenNoAux,
	}
	sender := s.Address()
	copy(sess.preimage[0:20], parsed.Recipient[:])
	copy(sess.preimage[20:40], sender[:])
	fv, wp := pad32(parsed.FaceValue), pad32(parsed.WinProb)
	copy(sess.preimage[40:72], fv[:])
	copy(sess.preimage[72:104], wp[:])
	copy(sess.preimage[136:168], parsed.RecipientRandHash[:])
	if aux, err := parsed.ExpirationParams.AuxData(); err != nil {
		return SessionID{}, err
	} else if len(aux) > 0 {
		copy(sess.preimage[168:], aux)
		sess.preLen = PreimageLen
	}

	id := parsed.RecipientRandHash
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[id]; ok {
		return id, nil
	}
	s.starts++
	if s.cfg.Blocks != nil && (s.starts%256 == 0 || len(s.sessions) >= s.cfg.MaxSessions) {
		s.pruneLocked(s.cfg.Blocks.LastSeenL1Block())
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		return SessionID{}, fmt.Errorf("%w (%d)", ErrTooManySessions, s.cfg.MaxSessions)
	}
	sess.lastNonce = s.takeEndedLocked(id)
	s.sessions[id] = sess
	return id, nil
}

// takeEndedLocked returns the last nonce of the ended session id (0 for
// none) and forgets it: the session is open again. s.mu held.
func (s *Sender) takeEndedLocked(id SessionID) uint32 {
	last, ok := s.ended[id]
	if ok {
		delete(s.ended, id)
	} else if last, ok = s.endedOld[id]; ok {
		delete(s.endedOld, id)
	}
	return last
}

// keepEndedLocked remembers the last nonce of the session id ends with.
// s.mu held.
func (s *Sender) keepEndedLocked(id SessionID, last uint32) {
	if last == 0 {
		return
	}
	if len(s.ended) >= s.cfg.MaxSessions {
		s.endedOld, s.ended = s.ended, make(map[SessionID]uint32)
	}
	s.ended[id] = last
}

// pruneLocked drops sessions whose params expired at or before block.
func (s *Sender) pruneLocked(block *big.Int) {
	if block == nil {
		return
	}
	for id, sess := range s.sessions {
		if eb := sess.parsed.ExpirationBlock; eb.Sign() > 0 && eb.Cmp(block) <= 0 {
			delete(s.sessions, id)
		}
	}
}

// EndSession forgets a session, all but its last nonce: a session started
// again with the same params continues after it (StartSession). Ending an
// unknown session does nothing.
func (s *Sender) EndSession(id SessionID) {
	s.mu.Lock()
	if sess, ok := s.sessions[id]; ok {
		s.keepEndedLocked(id, sess.lastNonce)
		delete(s.sessions, id)
	}
	s.mu.Unlock()
}

// Sessions returns how many sessions are open.
func (s *Sender) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Sender) session(id SessionID) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnknownSession, id)
	}
	return sess, nil
}

// EV returns the expected value of one ticket in the session.
func (s *Sender) EV(id SessionID) (*big.Rat, error) {
	sess, err := s.session(id)
	if err != nil {
		return nil, err
	}
	return new(big.Rat).Set(sess.ev), nil
}

// Nonce returns the last nonce used in the session (0 before any ticket).
func (s *Sender) Nonce(id SessionID) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return 0, fmt.Errorf("%w: %v", ErrUnknownSession, id)
	}
	return sess.lastNonce, nil
}

// NeedsRefresh reports whether the session has used RefreshThreshold nonces
// or more (or is unknown), so the caller should get fresh params before the
// recipient's cap is reached.
func (s *Sender) NeedsRefresh(id SessionID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	return !ok || sess.lastNonce >= s.cfg.RefreshThreshold
}

// SignedNonce is one ticket of a batch.
type SignedNonce struct {
	Nonce uint32
	Sig   []byte
	Hash  common.Hash // the ticket hash
}

// TicketBatch is a batch of signed tickets from one session.
type TicketBatch struct {
	// Sender is the signer's address (zero offchain).
	Sender common.Address
	// Params are the session's params as received (field 7 included).
	Params *wire.TicketParams
	// ExpectedPrice is the session's price as received.
	ExpectedPrice *wire.PriceInfo
	// EV is the expected value of one ticket.
	EV *big.Rat
	// Tickets are in nonce order.
	Tickets []SignedNonce

	signed bool
}

// Credit returns the batch's total EV, len(Tickets)·EV, exactly.
func (b *TicketBatch) Credit() *big.Rat {
	return new(big.Rat).Mul(b.EV, new(big.Rat).SetInt64(int64(len(b.Tickets))))
}

// PaymentLayout selects how a batch is laid out in a Payment.
type PaymentLayout int

const (
	// LayoutSegment leaves expiration_params out of Payment.TicketParams and
	// sends them only at the top level (field 3), as go-livepeer's segment,
	// AI and live payments do (and the pm vectors).
	LayoutSegment PaymentLayout = iota
	// LayoutBYOC also echoes them inside Payment.TicketParams (field 7), as
	// go-livepeer's BYOC gateway does.
	LayoutBYOC
)

// Payment builds the wire payment for the batch: sender and expected_price,
// plus ticket_params (fields 1–6, and 7 for LayoutBYOC), expiration_params
// and one ticket_sender_params per ticket when the batch has tickets. The
// params and price are echoed exactly as the recipient sent them and each
// ticket carries the nonce it was signed with. An offchain (unsigned) batch
// gives nil, which EncodePaymentHeader turns into an empty header.
func (b *TicketBatch) Payment(layout PaymentLayout) *wire.Payment {
	if !b.signed {
		return nil
	}
	p := &wire.Payment{
		Sender:        append([]byte(nil), b.Sender[:]...),
		ExpectedPrice: b.ExpectedPrice.Clone(),
	}
	if len(b.Tickets) == 0 {
		return p
	}
	p.TicketParams = b.Params.Clone()
	p.ExpirationParams = b.Params.ExpirationParams.Clone()
	if layout != LayoutBYOC {
		p.TicketParams.ExpirationParams = nil
	}
	p.TicketSenderParams = make([]*wire.TicketSenderParams, len(b.Tickets))
	for i, t := range b.Tickets {
		p.TicketSenderParams[i] = &wire.TicketSenderParams{SenderNonce: t.Nonce, Sig: append([]byte(nil), t.Sig...)}
	}
	return p
}

// CreateTicketBatch signs n tickets with the session's next n nonces. n = 0
// gives an empty batch (whose payment carries only sender and price). Checks,
// in order: ErrTicketCount for n < 0; ErrNoSigner for n > 0 offchain;
// ErrSessionExhausted if the last nonce would exceed MaxNonces;
// ErrTicketParamsExpired when Blocks says the params expire within one
// block; and, for a positive EV, ErrFaceValueTooLow (EV >= face value),
// ErrTicketEVTooHigh and ErrTotalEVTooHigh. Nonces are reserved before
// signing, so a failed signature burns them rather than reusing them.
func (s *Sender) CreateTicketBatch(id SessionID, n int) (*TicketBatch, error) {
	return s.createBatch(id, 0, n)
}

// CreateTicketBatchAt is CreateTicketBatch with the nonces first … first+n−1,
// reserved elsewhere (a counter shared by several senders with one key);
// the session's last nonce is raised to the batch's last if below. first
// must be positive.
func (s *Sender) CreateTicketBatchAt(id SessionID, first uint32, n int) (*TicketBatch, error) {
	if first == 0 {
		return nil, fmt.Errorf("%w: first nonce 0", ErrTicketCount)
	}
	return s.createBatch(id, first, n)
}

func (s *Sender) createBatch(id SessionID, at uint32, n int) (*TicketBatch, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: %d", ErrTicketCount, n)
	}
	sess, err := s.session(id)
	if err != nil {
		return nil, err
	}
	b := &TicketBatch{
		Sender:        s.Address(),
		Params:        sess.params.Clone(),
		ExpectedPrice: sess.price.Clone(),
		EV:            new(big.Rat).Set(sess.ev),
		signed:        s.cfg.Signer != nil,
	}
	if n == 0 {
		return b, nil
	}
	if s.cfg.Signer == nil {
		return nil, ErrNoSigner
	}
	if err := s.checkParams(sess, n); err != nil {
		return nil, err
	}

	s.mu.Lock()
	first := sess.lastNonce + 1
	if at > 0 {
		first = at
	}
	if uint64(first)+uint64(n)-1 > uint64(s.cfg.MaxNonces) {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: nonces %d + %d tickets > %d", ErrSessionExhausted, first, n, s.cfg.MaxNonces)
	}
	if last := first + uint32(n) - 1; last > sess.lastNonce {
		sess.lastNonce = last
	}
	s.mu.Unlock()

	pre := sess.preimage
	b.Tickets = make([]SignedNonce, n)
	for i := range b.Tickets {
		nonce := first + uint32(i)
		binary.BigEndian.PutUint32(pre[132:136], nonce)
		h := crypto.Keccak256Hash(pre[:sess.preLen])
		sig, err := s.cfg.Signer.SignPersonal(h[:])
		if err != nil {
			return nil, fmt.Errorf("pm: signing ticket nonce %d: %w", nonce, err)
		}
		b.Tickets[i] = SignedNonce{Nonce: nonce, Sig: sig, Hash: h}
	}
	return b, nil
}

func (s *Sender) checkParams(sess *session, n int) error {
	p := sess.parsed
	if s.cfg.Blocks != nil && p.ExpirationBlock.Sign() > 0 {
		last := s.cfg.Blocks.LastSeenL1Block()
		if last != nil && new(big.Int).Sub(p.ExpirationBlock, last).Cmp(big.NewInt(1)) <= 0 {
			return ErrTicketParamsExpired
		}
	}
	if sess.ev.Sign() <= 0 {
		return nil
	}
	if sess.ev.Cmp(new(big.Rat).SetInt(p.FaceValue)) >= 0 {
		return fmt.Errorf("%w faceValue=%v ticketEV=%v", ErrFaceValueTooLow, p.FaceValue, sess.ev.FloatString(3))
	}
	if sess.ev.Cmp(s.maxTicketEV) > 0 {
		return fmt.Errorf("%w: %v > max ticket EV %v", ErrTicketEVTooHigh, sess.ev.FloatString(3), s.cfg.MaxTicketEV)
	}
	total := new(big.Rat).Mul(sess.ev, new(big.Rat).SetInt64(int64(n)))
	if total.Cmp(s.maxTotalEV) > 0 {
		return fmt.Errorf("%w: %v > max total EV %v", ErrTotalEVTooHigh, total.FloatString(3), s.cfg.MaxTotalEV)
	}
	return nil
}

// TicketsNeeded is go-livepeer's ticket-count rule (docs/protocol.md §7.5): with
// minCredit = max(fee, ev), no tickets are needed when existing >= minCredit;
// otherwise n = ceil((minCredit − existing)/ev) tickets, worth newCredit =
// n·ev. All values are exact; nil counts as zero. It fails with ErrZeroEV
// when tickets are needed but ev <= 0, and ErrTicketCount when n does not
// fit an int.
func TicketsNeeded(fee, ev, existing *big.Rat) (n int, newCredit *big.Rat, err error) {
	zero := new(big.Rat)
	if fee == nil {
		fee = zero
	}
	if ev == nil {
		ev = zero
	}
	if existing == nil {
		existing = zero
	}
	minCredit := fee
	if ev.Cmp(fee) > 0 {
		minCredit = ev
	}
	if existing.Cmp(minCredit) >= 0 {
		return 0, new(big.Rat), nil
	}
	if ev.Sign() <= 0 {
		return 0, nil, ErrZeroEV
	}
	q := new(big.Rat).Sub(minCredit, existing)
	q.Quo(q, ev)
	count, rem := new(big.Int).QuoRem(q.Num(), q.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		count.Add(count, big.NewInt(1))
	}
	if !count.IsInt64() || count.Int64() > int64(^uint(0)>>1) || count.Int64() > 1<<32 {
		return 0, nil, fmt.Errorf("%w: %v tickets", ErrTicketCount, count)
	}
	n = int(count.Int64())
	return n, new(big.Rat).Mul(ev, new(big.Rat).SetInt(count)), nil
}

// SkipTo raises the session's last nonce to n when it is lower, so that
// its next ticket has a nonce above n: a signer continuing a session whose
// earlier tickets were signed elsewhere (its state says n was used) never
// signs those nonces again. It never lowers the nonce.
func (s *Sender) SkipTo(id SessionID, n uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownSession, id)
	}
	if n > sess.lastNonce {
		sess.lastNonce = n
	}
	return nil
}

// CheckBatch runs CreateTicketBatch's checks for n tickets (the nonce cap,
// expiry, face value and EV limits) without reserving a nonce or signing,
// so a caller can refuse a batch before it commits to paying for it.
func (s *Sender) CheckBatch(id SessionID, n int) error {
	if n < 0 {
		return fmt.Errorf("%w: %d", ErrTicketCount, n)
	}
	sess, err := s.session(id)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if s.cfg.Signer == nil {
		return ErrNoSigner
	}
	s.mu.Lock()
	last := sess.lastNonce
	s.mu.Unlock()
	if uint64(last)+uint64(n) > uint64(s.cfg.MaxNonces) {
		return fmt.Errorf("%w: last nonce %d + %d tickets > %d", ErrSessionExhausted, last, n, s.cfg.MaxNonces)
	}
	return s.checkParams(sess, n)
}
