package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"byoc/ledger"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
)

// CallTimeout bounds the chain reads a payment waits for (a sender not in
// the cache): a slow node refuses the payment rather than holding it.
const CallTimeout = 10 * time.Second

// ErrSenderUnlocking refuses a sender that started an unlock: its deposit
// and reserve may be withdrawn before its tickets are redeemed.
var ErrSenderUnlocking = errors.New("chain: sender is unlocking its deposit and reserve")

// ErrSenderUnfunded refuses a sender with neither deposit nor claimable
// reserve for this orchestrator.
var ErrSenderUnfunded = errors.New("chain: sender has no deposit or reserve for this orchestrator")

// State is an orchestrator's cached view of the chain: the block and round
// its ticket params carry (a pm.BlockSource) and each sender's funds, for
// the sender checks. Refresh, called once per new block, reads the head and
// rounds and drops the cached senders the TicketBroker's funding, claim,
// transfer and unlock events name (all of them on a new round, when
// claimable reserves reset). Safe for concurrent use.
type State struct {
	Client *Client
	Me     common.Address // the orchestrator: the reserve's claimant
	// Ledger, when set, gives the winning tickets not yet redeemed, which
	// count against a sender's max float.
	Ledger *ledger.Ledger
	// MaxFloatPerSender caps the unredeemed winning value one sender may
	// have (nil: only its funds cap it).
	MaxFloatPerSender *big.Int

	mu        sync.Mutex
	gasPrice  *big.Int
	l1        uint64 // RoundsManager.blockNum: ticket params' clock
	round     int64
	roundHash common.Hash
	seen      uint64 // last block whose logs were read
	senders   map[common.Address]SenderInfo
	claimable map[common.Address]*big.Int
}

// Refresh reads the head, the last initialized round and its block hash,
// and the broker's events since the last Refresh.
func (s *State) Refresh(ctx context.Context) error {
	header, err := s.Client.Backend.HeaderByNumber(ctx, nil)
	if err != nil {
		return err
	}
	head := header.Number.Uint64()
	l1, err := s.Client.BlockNum(ctx)
	if err != nil {
		return err
	}
	tip, err := s.Client.Backend.SuggestGasTipCap(ctx)
	if err != nil {
		return err
	}
	gasPrice := new(big.Int).Set(tip)
	if header.BaseFee != nil {
		gasPrice.Add(gasPrice, header.BaseFee)
	}
	last, err := s.Client.LastInitializedRound(ctx)
	if err != nil {
		return err
	}
	round := new(big.Int).Set(last)
	hash, err := s.Client.BlockHashForRound(ctx, round)
	if err != nil {
		return err
	}
	// A round whose hash is not yet stored (Arbitrum lags L1): the one before.
	if hash == (common.Hash{}) && round.Sign() > 0 {
		round.Sub(round, big.NewInt(1))
		if hash, err = s.Client.BlockHashForRound(ctx, round); err != nil {
			return err
		}
	}
	s.mu.Lock()
	from := s.seen + 1
	first := s.seen == 0
	s.mu.Unlock()
	var touched []common.Address
	all := false
	if !first && head >= from {
		logs, err := s.Client.Backend.FilterLogs(ctx, ethereum.FilterQuery{FromBlock: new(big.Int).SetUint64(from),
			ToBlock: new(big.Int).SetUint64(head), Addresses: []common.Address{s.Client.Broker, s.Client.Rounds}})
		if err != nil {
			return err
		}
		for _, l := range logs {
			if l.Address == s.Client.Rounds {
				all = true // NewRound: claimable shares reset
				continue
			}
			if len(l.Topics) >= 2 {
				touched = append(touched, common.BytesToAddress(l.Topics[1].Bytes()))
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if round.Int64() != s.round {
		all = true
	}
	s.l1, s.round, s.roundHash, s.seen, s.gasPrice = l1.Uint64(), round.Int64(), hash, head, gasPrice
	if all || first || s.senders == nil {
		s.senders, s.claimable = map[common.Address]SenderInfo{}, map[common.Address]*big.Int{}
	}
	for _, a := range touched {
		delete(s.senders, a)
		delete(s.claimable, a)
	}
	return nil
}

// GasPrice is the head's base fee plus the suggested tip at the last
// Refresh: what a redemption would pay per gas, for pricing tickets
// (pm.RecipientConfig.GasPrice).
func (s *State) GasPrice() *big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gasPrice == nil {
		return new(big.Int)
	}
	return new(big.Int).Set(s.gasPrice)
}

// LastSeenL1Block is the RoundsManager's blockNum at the last Refresh
// (pm.BlockSource): the L1 block number, also on Arbitrum.
func (s *State) LastSeenL1Block() *big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return new(big.Int).SetUint64(s.l1)
}

// CreationRound is the last initialized round with a block hash and that
// hash (pm.BlockSource).
func (s *State) CreationRound() (int64, common.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.round, s.roundHash
}

// Sender returns a sender's funds and this orchestrator's claimable share
// of its reserve, from the cache or the chain.
func (s *State) Sender(ctx context.Context, sender common.Address) (SenderInfo, *big.Int, error) {
	s.mu.Lock()
	info, ok := s.senders[sender]
	claim := s.claimable[sender]
	s.mu.Unlock()
	if ok && claim != nil {
		return info, claim, nil
	}
	info, err := s.Client.SenderInfo(ctx, sender)
	if err != nil {
		return SenderInfo{}, nil, err
	}
	if claim, err = s.Client.ClaimableReserve(ctx, sender, s.Me); err != nil {
		return SenderInfo{}, nil, err
	}
	s.mu.Lock()
	if s.senders == nil {
		s.senders, s.claimable = map[common.Address]SenderInfo{}, map[common.Address]*big.Int{}
	}
	s.senders[sender], s.claimable[sender] = info, claim
	s.mu.Unlock()
	return info, claim, nil
}

// ValidateSender refuses a sender that is unlocking or has nothing this
// orchestrator could be paid from (pm.RecipientConfig.ValidateSender).
func (s *State) ValidateSender(sender common.Address) error {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	info, claim, err := s.Sender(ctx, sender)
	if err != nil {
		return fmt.Errorf("chain: reading sender %s: %w", sender.Hex(), err)
	}
	if info.Unlocking() {
		return fmt.Errorf("%w (withdraw round %s)", ErrSenderUnlocking, info.WithdrawRound)
	}
	if info.Deposit.Sign() == 0 && claim.Sign() == 0 {
		return ErrSenderUnfunded
	}
	return nil
}

// MaxFloat is what a sender can still back for this orchestrator: its
// deposit plus this orchestrator's claimable reserve, less the face value
// of its winning tickets not yet redeemed, at most MaxFloatPerSender less
// the same (pm.RecipientConfig.MaxFloat). Never negative.
func (s *State) MaxFloat(sender common.Address) (*big.Int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	info, claim, err := s.Sender(ctx, sender)
	if err != nil {
		return nil, err
	}
	pending, err := s.pending(ctx, sender)
	if err != nil {
		return nil, err
	}
	f := new(big.Int).Add(info.Deposit, claim)
	if s.MaxFloatPerSender != nil && f.Cmp(s.MaxFloatPerSender) > 0 {
		f.Set(s.MaxFloatPerSender)
	}
	f.Sub(f, pending)
	if f.Sign() < 0 {
		f.SetInt64(0)
	}
	return f, nil
}

// pending sums the face values of a sender's queued and submitted winners.
func (s *State) pending(ctx context.Context, sender common.Address) (*big.Int, error) {
	sum := new(big.Int)
	if s.Ledger == nil {
		return sum, nil
	}
	for _, st := range []string{ledger.WinnerQueued, ledger.WinnerSubmitted} {
		ws, err := s.Ledger.Winners(ctx, st, 0)
		if err != nil {
			return nil, err
		}
		for _, w := range ws {
			if common.HexToAddress(w.Sender) == sender {
				sum.Add(sum, w.FaceValue.Big())
			}
		}
	}
	return sum, nil
}
