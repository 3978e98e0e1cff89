package pm

import (
	"errors"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// ParamsValidityBlocks is how many L1 blocks ticket params stay valid:
// ExpirationBlock = LastSeenL1Block + ParamsValidityBlocks.
const ParamsValidityBlocks = 40

// BlockSource supplies the chain state PM needs. Implementations must be safe
// for concurrent use.
type BlockSource interface {
	// LastSeenL1Block returns the latest L1 block number the node has seen.
	// It must be positive; callers may modify the returned value.
	LastSeenL1Block() *big.Int
	// CreationRound returns the round and L1 block hash to stamp into new
	// ticket params (go-livepeer: the last initialized round and its block
	// hash, or the round before it on Arbitrum when that hash is still
	// zero). The implementation applies any such fallback.
	CreationRound() (round int64, blockHash common.Hash)
}

// OffchainBlockSeconds is the block time OffchainBlocks assumes, so params
// stay valid for ParamsValidityBlocks·12 s = 8 minutes.
const OffchainBlockSeconds = 12

// DefaultOffchainRound is the round OffchainBlocks reports when none is
// given. It is not 0 so that auxData is not empty and go-livepeer senders
// use the recipient's expiration params as they are.
const DefaultOffchainRound = 1

// DefaultOffchainBlockHash is the block hash OffchainBlocks reports when none
// is given: keccak256("byoc/offchain-round-block-hash").
var DefaultOffchainBlockHash = crypto.Keccak256Hash([]byte("byoc/offchain-round-block-hash"))

// OffchainBlocks is a BlockSource for nodes without a chain: the block number
// is the injected clock's Unix time divided by OffchainBlockSeconds (never
// below 1), and the round and block hash are fixed.
type OffchainBlocks struct {
	now       func() time.Time
	round     int64
	blockHash common.Hash
}

// NewOffchainBlocks returns an offchain block source driven by now. A round
// of 0 and a zero hash select DefaultOffchainRound and
// DefaultOffchainBlockHash.
func NewOffchainBlocks(now func() time.Time, round int64, blockHash common.Hash) (*OffchainBlocks, error) {
	if now == nil {
		return nil, errors.New("pm: offchain blocks need a clock")
	}
	if round < 0 {
		return nil, errors.New("pm: negative round")
	}
	if round == 0 {
		round = DefaultOffchainRound
	}
	if blockHash == (common.Hash{}) {
		blockHash = DefaultOffchainBlockHash
	}
	return &OffchainBlocks{now: now, round: round, blockHash: blockHash}, nil
}

// LastSeenL1Block returns max(1, unix seconds / OffchainBlockSeconds).
func (o *OffchainBlocks) LastSeenL1Block() *big.Int {
	b := o.now().Unix() / OffchainBlockSeconds
	if b < 1 {
		b = 1
	}
	return big.NewInt(b)
}

// CreationRound returns the fixed round and block hash.
func (o *OffchainBlocks) CreationRound() (int64, common.Hash) { return o.round, o.blockHash }

// StaticBlocks is a BlockSource with fixed values, for tests and tools.
type StaticBlocks struct {
	Block     *big.Int
	Round     int64
	BlockHash common.Hash
}

// LastSeenL1Block returns a copy of Block.
func (s *StaticBlocks) LastSeenL1Block() *big.Int { return new(big.Int).Set(s.Block) }

// CreationRound returns Round and BlockHash.
func (s *StaticBlocks) CreationRound() (int64, common.Hash) { return s.Round, s.BlockHash }
