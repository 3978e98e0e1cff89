// Package testchain is a local Ethereum chain for tests and `byoc demo`:
// go-ethereum's simulated backend with byoc's own TicketBroker-compatible
// test contract and a minimal RoundsManager deployed (contracts/, compiled
// by scripts/gen-contracts into build/, embedded here). docs/chain.md
// describes the contracts and their test hooks.
package testchain

//go:generate ../../scripts/gen-contracts

import (
	"context"
	"crypto/ecdsa"
	_ "embed"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/params"
)

var (
	//go:embed build/TestTicketBroker.abi.json
	TicketBrokerABI string
	//go:embed build/TestTicketBroker.bin
	ticketBrokerBin string
	//go:embed build/TestRoundsManager.abi.json
	RoundsManagerABI string
	//go:embed build/TestRoundsManager.bin
	roundsManagerBin string
)

// TicketBrokerBytecode and RoundsManagerBytecode are the contracts'
// creation code.
func TicketBrokerBytecode() []byte  { return mustHex(ticketBrokerBin) }
func RoundsManagerBytecode() []byte { return mustHex(roundsManagerBin) }

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		panic("testchain: embedded bytecode is not hex: " + err.Error())
	}
	return b
}

// Options shape a chain.
type Options struct {
	RoundLength          uint64 // blocks per round; 0 means 10
	UnlockPeriod         uint64 // rounds; 0 means 2
	TicketValidityPeriod uint64 // rounds; 0 means 2 (every deployment's value)
	// Funded accounts get 1000 ETH each in the genesis block.
	Funded []common.Address
	// HTTP serves the chain's JSON-RPC on a free 127.0.0.1 port (Chain.URL),
	// for a process or command that dials it.
	HTTP bool
}

// Chain is a simulated chain with the contracts deployed, the current round
// initialized, and a deployer account that also calls the test hooks.
type Chain struct {
	Backend              *simulated.Backend
	Client               simulated.Client
	Deployer             *ecdsa.PrivateKey
	Broker               common.Address // TestTicketBroker
	Rounds               common.Address // TestRoundsManager
	BrokerABI, RoundsABI abi.ABI
	ChainID              *big.Int
	URL                  string // the JSON-RPC URL with Options.HTTP, else ""
}

// Ether is 10^18 wei.
var Ether = big.NewInt(params.Ether)

// New starts a chain and deploys the contracts. Close it when done.
func New(opts Options) (*Chain, error) {
	if opts.RoundLength == 0 {
		opts.RoundLength = 10
	}
	if opts.UnlockPeriod == 0 {
		opts.UnlockPeriod = 2
	}
	if opts.TicketValidityPeriod == 0 {
		opts.TicketValidityPeriod = 2
	}
	deployer, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	alloc := types.GenesisAlloc{}
	grant := new(big.Int).Mul(big.NewInt(1000), Ether)
	alloc[crypto.PubkeyToAddress(deployer.PublicKey)] = types.Account{Balance: grant}
	for _, a := range opts.Funded {
		alloc[a] = types.Account{Balance: grant}
	}
	c := &Chain{Deployer: deployer}
	var nodeOpts []func(*node.Config, *ethconfig.Config)
	if opts.HTTP {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		c.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		nodeOpts = append(nodeOpts, func(nc *node.Config, _ *ethconfig.Config) {
			nc.HTTPHost, nc.HTTPPort, nc.HTTPModules = "127.0.0.1", port, []string{"eth", "net", "web3"}
		})
	}
	c.Backend = simulated.NewBackend(alloc, nodeOpts...)
	c.Client = c.Backend.Client()
	fail := func(err error) (*Chain, error) { c.Close(); return nil, err }
	if c.BrokerABI, err = abi.JSON(strings.NewReader(TicketBrokerABI)); err != nil {
		return fail(err)
	}
	if c.RoundsABI, err = abi.JSON(strings.NewReader(RoundsManagerABI)); err != nil {
		return fail(err)
	}
	ctx := context.Background()
	if c.ChainID, err = c.Client.ChainID(ctx); err != nil {
		return fail(err)
	}
	args, _ := c.RoundsABI.Pack("", new(big.Int).SetUint64(opts.RoundLength))
	if c.Rounds, err = c.deploy(ctx, append(RoundsManagerBytecode(), args...)); err != nil {
		return fail(fmt.Errorf("deploy rounds manager: %w", err))
	}
	args, err = c.BrokerABI.Pack("", c.Rounds, new(big.Int).SetUint64(opts.UnlockPeriod), new(big.Int).SetUint64(opts.TicketValidityPeriod))
	if err != nil {
		return fail(err)
	}
	if c.Broker, err = c.deploy(ctx, append(TicketBrokerBytecode(), args...)); err != nil {
		return fail(fmt.Errorf("deploy ticket broker: %w", err))
	}
	if err := c.NextRound(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// Close stops the chain.
func (c *Chain) Close() error {
	if c.Backend == nil {
		return nil
	}
	return c.Backend.Close()
}

func (c *Chain) deploy(ctx context.Context, code []byte) (common.Address, error) {
	r, err := c.Send(ctx, c.Deployer, nil, nil, code, 0)
	if err != nil {
		return common.Address{}, err
	}
	return r.ContractAddress, nil
}

// Send signs and sends a transaction from key (gas estimated unless gas is
// set), mines a block and returns its receipt, reverted or not.
func (c *Chain) Send(ctx context.Context, key *ecdsa.PrivateKey, to *common.Address, value *big.Int, data []byte, gas uint64) (*types.Receipt, error) {
	tx, err := c.SignTx(ctx, key, to, value, data, gas)
	if err != nil {
		return nil, err
	}
	if err := c.Client.SendTransaction(ctx, tx); err != nil {
		return nil, err
	}
	c.Backend.Commit()
	return c.Client.TransactionReceipt(ctx, tx.Hash())
}

// SignTx builds and signs a dynamic-fee transaction at key's pending nonce.
func (c *Chain) SignTx(ctx context.Context, key *ecdsa.PrivateKey, to *common.Address, value *big.Int, data []byte, gas uint64) (*types.Transaction, error) {
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := c.Client.PendingNonceAt(ctx, from)
	if err != nil {
		return nil, err
	}
	if value == nil {
		value = new(big.Int)
	}
	if gas == 0 {
		if gas, err = c.Client.EstimateGas(ctx, ethereum.CallMsg{From: from, To: to, Value: value, Data: data}); err != nil {
			return nil, err
		}
	}
	head, err := c.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	tip := big.NewInt(params.GWei)
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	tx := types.NewTx(&types.DynamicFeeTx{ChainID: c.ChainID, Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap,
		Gas: gas, To: to, Value: value, Data: data})
	return types.SignTx(tx, types.LatestSignerForChainID(c.ChainID), key)
}

// Hook calls a test hook or any TicketBroker function as the deployer.
func (c *Chain) Hook(ctx context.Context, method string, args ...any) error {
	return c.call(ctx, c.Deployer, c.Broker, c.BrokerABI, nil, method, args...)
}

// AsSender calls a TicketBroker function from key with value attached.
func (c *Chain) AsSender(ctx context.Context, key *ecdsa.PrivateKey, value *big.Int, method string, args ...any) error {
	return c.call(ctx, key, c.Broker, c.BrokerABI, value, method, args...)
}

func (c *Chain) call(ctx context.Context, key *ecdsa.PrivateKey, to common.Address, a abi.ABI, value *big.Int, method string, args ...any) error {
	data, err := a.Pack(method, args...)
	if err != nil {
		return err
	}
	r, err := c.Send(ctx, key, &to, value, data, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("%s: transaction reverted", method)
	}
	return nil
}

// Block returns the head block's number.
func (c *Chain) Block(ctx context.Context) (uint64, error) { return c.Client.BlockNumber(ctx) }

// Mine commits n empty blocks.
func (c *Chain) Mine(n int) {
	for range n {
		c.Backend.Commit()
	}
}

// CurrentRound reads the RoundsManager's current round.
func (c *Chain) CurrentRound(ctx context.Context) (uint64, error) {
	data, _ := c.RoundsABI.Pack("currentRound")
	out, err := c.Client.CallContract(ctx, ethereum.CallMsg{To: &c.Rounds, Data: data}, nil)
	if err != nil {
		return 0, err
	}
	v, err := c.RoundsABI.Unpack("currentRound", out)
	if err != nil {
		return 0, err
	}
	return v[0].(*big.Int).Uint64(), nil
}

// InitializeRound initializes the current round if it is not yet, as a
// keeper does on a live chain; it mines a block when it does.
func (c *Chain) InitializeRound(ctx context.Context) error {
	data, _ := c.RoundsABI.Pack("currentRoundInitialized")
	out, err := c.Client.CallContract(ctx, ethereum.CallMsg{To: &c.Rounds, Data: data}, nil)
	if err != nil {
		return err
	}
	if len(out) == 32 && out[31] == 1 {
		return nil
	}
	data, _ = c.RoundsABI.Pack("initializeRound")
	_, err = c.Send(ctx, c.Deployer, &c.Rounds, nil, data, 1_000_000)
	return err
}

// NextRound mines to the first block of the next round whose
// initializeRound transaction lands in it, and initializes that round.
func (c *Chain) NextRound(ctx context.Context) error {
	start, err := c.CurrentRound(ctx)
	if err != nil {
		return err
	}
	for {
		// The initializing transaction is mined in the next block.
		head, err := c.Block(ctx)
		if err != nil {
			return err
		}
		data, _ := c.RoundsABI.Pack("roundLength")
		out, err := c.Client.CallContract(ctx, ethereum.CallMsg{To: &c.Rounds, Data: data}, nil)
		if err != nil {
			return err
		}
		length := new(big.Int).SetBytes(out).Uint64()
		if (head+1)/length > start {
			break
		}
		c.Backend.Commit()
	}
	// Not estimated: eth_estimateGas runs against the head block, still in
	// the previous round, where initializeRound reverts.
	data, _ := c.RoundsABI.Pack("initializeRound")
	r, err := c.Send(ctx, c.Deployer, &c.Rounds, nil, data, 1_000_000)
	if err != nil {
		return fmt.Errorf("initializeRound: %w", err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("initializeRound: transaction reverted")
	}
	return nil
}
