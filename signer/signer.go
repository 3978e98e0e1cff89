package signer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"byoc/ethsig"
	"byoc/ledger"
	"byoc/pm"
	"byoc/wire"
)

// DefaultMaxBody bounds a request body (go-livepeer sets no bound).
const DefaultMaxBody = 1 << 20

// MaxTicketsPerCall is go-livepeer's limit on the tickets of one payment;
// a call needing more is refused with 400.
const MaxTicketsPerCall = 100

// Config configures a Signer.
type Config struct {
	// Key signs tickets, states and the orchestrator-info signature.
	Key ethsig.Signer
	// Clock is the time of billing (units since the state's LastUpdate) and
	// of auth expiry; default the wall clock.
	Clock ledger.Clock
	// MaxPrice is the highest orchestrator price accepted, in wei per unit
	// (pixel, second or job as the type says); nil: no ceiling.
	MaxPrice *big.Rat
	// Blocks, if set, lets the signer answer 480 for ticket params within
	// one block of expiring.
	Blocks pm.BlockSource
	// Webhook, if set, is asked who the customer is before signing.
	Webhook *Webhook
	// Budget, if set, is charged for every signed payment before signing;
	// a refusal answers 483.
	Budget Budget
	// Nonces, if set, reserves each batch's nonces (replicas sharing a
	// ledger); without, they come from this signer's memory.
	Nonces Nonces
	// Discovery, if set, serves GET /discover-orchestrators.
	Discovery Discovery
	// Logger receives the signer's logs; default slog.Default().
	Logger *slog.Logger
	// NewID makes state, manifest and request IDs; default 8 random hex
	// digits, as go-livepeer's.
	NewID func() string
	// MaxBody bounds request bodies; default DefaultMaxBody.
	MaxBody int64
	// MaxSessions bounds the ticket sessions kept in memory (their last
	// nonces); 0 selects pm.DefaultMaxSessions.
	MaxSessions int
}

// Signer serves the remote signer's HTTP API. Safe for concurrent use.
type Signer struct {
	cfg     Config
	sender  *pm.Sender
	infoSig []byte
	log     *slog.Logger

	mu      sync.Mutex // guards lastUse and calls
	lastUse map[pm.SessionID]time.Time
	calls   int
}

// sessionIdle is how long an unused ticket session is kept: past an
// orchestrator's auth token lifetime (30 min), its params are stale anyway.
const sessionIdle = time.Hour

// New returns a Signer; the orchestrator-info signature is made here, once.
func New(cfg Config) (*Signer, error) {
	if cfg.Key == nil {
		return nil, errors.New("signer: no key")
	}
	if cfg.Clock == nil {
		cfg.Clock = ledger.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = pm.DefaultMaxSessions
	}
	if cfg.MaxPrice != nil && cfg.MaxPrice.Sign() <= 0 {
		return nil, errors.New("signer: the maximum price must be positive")
	}
	s := &Signer{
		cfg:     cfg,
		sender:  pm.NewSender(pm.SenderConfig{Signer: cfg.Key, Blocks: cfg.Blocks, MaxSessions: cfg.MaxSessions}),
		log:     cfg.Logger,
		lastUse: make(map[pm.SessionID]time.Time),
	}
	sig, err := InfoSig(cfg.Key)
	if err != nil {
		return nil, err
	}
	s.infoSig = sig
	return s, nil
}

// InfoSig is the signature go-livepeer's OrchestratorRequest carries:
// personal-sign over keccak256 of the address's EIP-55 hex.
func InfoSig(key ethsig.Signer) ([]byte, error) {
	return key.SignPersonal(keccak([]byte(key.Address().Hex())))
}

// Address is the signer's (the tickets' sender's) address.
func (s *Signer) Address() string { return s.cfg.Key.Address().Hex() }

// Handler serves the signer's routes.
func (s *Signer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sign-orchestrator-info", s.signOrchestratorInfo)
	mux.HandleFunc("POST /generate-live-payment", s.generateLivePayment)
	mux.HandleFunc("POST "+wire.RouteBYOCCustomer, s.byocCustomer)
	mux.HandleFunc("POST "+wire.RouteSignBYOCJob, s.signBYOCJob)
	mux.HandleFunc("POST "+wire.RouteGenerateBYOCPayment, s.generateBYOCPayment)
	if s.cfg.Discovery != nil {
		mux.HandleFunc("GET /discover-orchestrators", s.discoverOrchestrators)
	}
	return mux
}

func (s *Signer) signOrchestratorInfo(w http.ResponseWriter, r *http.Request) {
	respondJSON(w, http.StatusOK, map[string]string{
		"address":   s.cfg.Key.Address().Hex(),
		"signature": "0x" + hex.EncodeToString(s.infoSig),
	})
}

// touch records the use of a ticket session and, every 1024 calls, ends
// the sessions idle for longer than sessionIdle.
func (s *Signer) touch(id pm.SessionID, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastUse[id] = now
	s.calls++
	if s.calls%1024 != 0 && len(s.lastUse) < s.cfg.MaxSessions {
		return
	}
	for sid, t := range s.lastUse {
		if now.Sub(t) > sessionIdle {
			delete(s.lastUse, sid)
			s.sender.EndSession(sid)
		}
	}
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
