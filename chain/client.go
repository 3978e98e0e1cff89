// Package chain is byoc's on-chain side of probabilistic micropayments: a
// client of Livepeer's TicketBroker and RoundsManager (the ABI subset, calls,
// revert reasons, events) and the Redeemer, which turns the ledger's queue
// of winning tickets into redemptions that are never lost (docs/chain.md).
package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"byoc/pm"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// Backend is the JSON-RPC surface the client uses; go-ethereum's
// ethclient.Client and its simulated backend's client both have it.
type Backend interface {
	ethereum.ContractCaller
	ethereum.GasEstimator
	ethereum.TransactionSender
	ethereum.LogFilterer
	ethereum.BlockNumberReader
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	NonceAt(ctx context.Context, account common.Address, block *big.Int) (uint64, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	ChainID(ctx context.Context) (*big.Int, error)
}

// Client reads and calls the TicketBroker and the RoundsManager.
type Client struct {
	Backend Backend
	Broker  common.Address
	Rounds  common.Address
}

// SenderInfo is a sender's funds on the TicketBroker (getSenderInfo).
type SenderInfo struct {
	Deposit               *big.Int `json:"deposit"`
	WithdrawRound         *big.Int `json:"withdraw_round"` // 0: no unlock
	Reserve               *big.Int `json:"reserve"`        // fundsRemaining
	ClaimedInCurrentRound *big.Int `json:"claimed_in_current_round"`
}

// Covers reports whether deposit + reserve ≥ faceValue, the contract's
// funds check (a ticket it fails is not consumed).
func (s SenderInfo) Covers(faceValue *big.Int) bool {
	return new(big.Int).Add(s.Deposit, s.Reserve).Cmp(faceValue) >= 0
}

// Unlocked reports whether the sender's unlock has completed by round
// (redemptions then revert with "sender is unlocked").
func (s SenderInfo) Unlocked(round *big.Int) bool {
	return s.WithdrawRound.Sign() > 0 && round.Cmp(s.WithdrawRound) >= 0
}

// Unlocking reports whether an unlock was started (complete or not).
func (s SenderInfo) Unlocking() bool { return s.WithdrawRound.Sign() > 0 }

// abiTicket is the contract's Ticket struct.
type abiTicket struct {
	Recipient         common.Address
	Sender            common.Address
	FaceValue         *big.Int
	WinProb           *big.Int
	SenderNonce       *big.Int
	RecipientRandHash [32]byte
	AuxData           []byte
}

func toABITicket(t *pm.Ticket) (abiTicket, error) {
	aux, err := t.AuxData()
	if err != nil {
		return abiTicket{}, err
	}
	nz := func(b *big.Int) *big.Int {
		if b == nil {
			return new(big.Int)
		}
		return b
	}
	return abiTicket{Recipient: t.Recipient, Sender: t.Sender, FaceValue: nz(t.FaceValue), WinProb: nz(t.WinProb),
		SenderNonce: new(big.Int).SetUint64(uint64(t.SenderNonce)), RecipientRandHash: t.RecipientRandHash, AuxData: aux}, nil
}

// RedeemCalldata is the calldata of redeemWinningTicket(ticket, sig,
// recipientRand).
func RedeemCalldata(s *pm.SignedTicket) ([]byte, error) {
	t, err := toABITicket(&s.Ticket)
	if err != nil {
		return nil, err
	}
	return TicketBrokerABI.Pack("redeemWinningTicket", t, s.Sig, new(big.Int).SetBytes(s.RecipientRand[:]))
}

// TicketHashCalldata is the calldata of getTicketHash(ticket).
func TicketHashCalldata(t *pm.Ticket) ([]byte, error) {
	at, err := toABITicket(t)
	if err != nil {
		return nil, err
	}
	return TicketBrokerABI.Pack("getTicketHash", at)
}

func (c *Client) call(ctx context.Context, to common.Address, a abi.ABI, method string, args ...any) ([]any, error) {
	data, err := a.Pack(method, args...)
	if err != nil {
		return nil, err
	}
	out, err := c.Backend.CallContract(ctx, ethereum.CallMsg{To: &to, Data: data}, nil)
	if err != nil {
		return nil, fmt.Errorf("chain: %s: %w", method, asRevert(err))
	}
	v, err := a.Unpack(method, out)
	if err != nil {
		return nil, fmt.Errorf("chain: %s: %w", method, err)
	}
	return v, nil
}

func (c *Client) broker(ctx context.Context, method string, args ...any) ([]any, error) {
	return c.call(ctx, c.Broker, TicketBrokerABI, method, args...)
}

func (c *Client) rounds(ctx context.Context, method string, args ...any) ([]any, error) {
	return c.call(ctx, c.Rounds, RoundsManagerABI, method, args...)
}

func (c *Client) uint(ctx context.Context, rounds bool, method string, args ...any) (*big.Int, error) {
	var v []any
	var err error
	if rounds {
		v, err = c.rounds(ctx, method, args...)
	} else {
		v, err = c.broker(ctx, method, args...)
	}
	if err != nil {
		return nil, err
	}
	return v[0].(*big.Int), nil
}

// SenderInfo reads getSenderInfo(sender).
func (c *Client) SenderInfo(ctx context.Context, sender common.Address) (SenderInfo, error) {
	v, err := c.broker(ctx, "getSenderInfo", sender)
	if err != nil {
		return SenderInfo{}, err
	}
	s := v[0].(struct {
		Deposit       *big.Int `json:"deposit"`
		WithdrawRound *big.Int `json:"withdrawRound"`
	})
	r := v[1].(struct {
		FundsRemaining        *big.Int `json:"fundsRemaining"`
		ClaimedInCurrentRound *big.Int `json:"claimedInCurrentRound"`
	})
	return SenderInfo{Deposit: s.Deposit, WithdrawRound: s.WithdrawRound, Reserve: r.FundsRemaining,
		ClaimedInCurrentRound: r.ClaimedInCurrentRound}, nil
}

// ClaimableReserve reads claimableReserve(holder, claimant): what claimant
// may still take from holder's reserve this round.
func (c *Client) ClaimableReserve(ctx context.Context, holder, claimant common.Address) (*big.Int, error) {
	return c.uint(ctx, false, "claimableReserve", holder, claimant)
}

// UsedTicket reads usedTickets(hash).
func (c *Client) UsedTicket(ctx context.Context, hash common.Hash) (bool, error) {
	v, err := c.broker(ctx, "usedTickets", hash)
	if err != nil {
		return false, err
	}
	return v[0].(bool), nil
}

// TicketHash asks the contract for a ticket's hash (getTicketHash).
func (c *Client) TicketHash(ctx context.Context, t *pm.Ticket) (common.Hash, error) {
	at, err := toABITicket(t)
	if err != nil {
		return common.Hash{}, err
	}
	v, err := c.broker(ctx, "getTicketHash", at)
	if err != nil {
		return common.Hash{}, err
	}
	return common.Hash(v[0].([32]byte)), nil
}

// TicketValidityPeriod reads ticketValidityPeriod (rounds).
func (c *Client) TicketValidityPeriod(ctx context.Context) (*big.Int, error) {
	return c.uint(ctx, false, "ticketValidityPeriod")
}

// CurrentRound reads the RoundsManager's current round.
func (c *Client) CurrentRound(ctx context.Context) (*big.Int, error) {
	return c.uint(ctx, true, "currentRound")
}

// LastInitializedRound reads the last initialized round.
func (c *Client) LastInitializedRound(ctx context.Context) (*big.Int, error) {
	return c.uint(ctx, true, "lastInitializedRound")
}

// BlockNum reads the RoundsManager's blockNum: the L1 block number (on
// Arbitrum the L1 block the sequencer reports, not the L2 head), the clock
// of ticket params' expiry.
func (c *Client) BlockNum(ctx context.Context) (*big.Int, error) {
	return c.uint(ctx, true, "blockNum")
}

// BlockHashForRound reads the block hash stored for round.
func (c *Client) BlockHashForRound(ctx context.Context, round *big.Int) (common.Hash, error) {
	v, err := c.rounds(ctx, "blockHashForRound", round)
	if err != nil {
		return common.Hash{}, err
	}
	return common.Hash(v[0].([32]byte)), nil
}

// RevertError is a call that the contract reverted, with its reason ("" when
// it gave none, as for a mined revert).
type RevertError struct {
	Reason string
}

func (e *RevertError) Error() string {
	if e.Reason == "" {
		return "execution reverted"
	}
	return "execution reverted: " + e.Reason
}

// asRevert turns a JSON-RPC revert into a *RevertError and leaves other
// errors (transport, timeouts) as they are.
func asRevert(err error) error {
	if err == nil {
		return nil
	}
	var de interface{ ErrorData() any }
	if errors.As(err, &de) {
		if s, ok := de.ErrorData().(string); ok {
			if b, herr := hexutil.Decode(s); herr == nil {
				if reason, uerr := abi.UnpackRevert(b); uerr == nil {
					return &RevertError{Reason: reason}
				}
			}
		}
	}
	msg := err.Error()
	if i := strings.Index(msg, "execution reverted"); i >= 0 {
		rest := strings.TrimPrefix(msg[i+len("execution reverted"):], ":")
		return &RevertError{Reason: strings.TrimSpace(rest)}
	}
	return err
}

// Preflight runs a redemption as eth_call from from against the latest
// block: nil when it would succeed, a *RevertError with the contract's
// reason when it would revert, another error when the call failed.
func (c *Client) Preflight(ctx context.Context, from common.Address, data []byte) error {
	_, err := c.Backend.CallContract(ctx, ethereum.CallMsg{From: from, To: &c.Broker, Data: data}, nil)
	return asRevert(err)
}

// Events' topics.
var (
	topicTransfer = TicketBrokerABI.Events["WinningTicketTransfer"].ID
	topicRedeemed = TicketBrokerABI.Events["WinningTicketRedeemed"].ID
)

// Redemption is what a mined redemption's logs say.
type Redemption struct {
	Redeemed bool     // a WinningTicketRedeemed log for the ticket
	Paid     *big.Int // WinningTicketTransfer's amount; 0 when none was logged
}

// RedemptionIn reads the broker's logs in a receipt for the ticket.
func (c *Client) RedemptionIn(r *types.Receipt, t *pm.SignedTicket) (Redemption, error) {
	out := Redemption{Paid: new(big.Int)}
	for _, l := range r.Logs {
		if l.Address != c.Broker || len(l.Topics) < 3 {
			continue
		}
		if common.BytesToAddress(l.Topics[1].Bytes()) != t.Ticket.Sender ||
			common.BytesToAddress(l.Topics[2].Bytes()) != t.Ticket.Recipient {
			continue
		}
		switch l.Topics[0] {
		case topicTransfer:
			v, err := TicketBrokerABI.Unpack("WinningTicketTransfer", l.Data)
			if err != nil {
				return out, err
			}
			out.Paid = new(big.Int).Add(out.Paid, v[0].(*big.Int))
		case topicRedeemed:
			v, err := TicketBrokerABI.Unpack("WinningTicketRedeemed", l.Data)
			if err != nil {
				return out, err
			}
			if v[2].(*big.Int).Uint64() == uint64(t.Ticket.SenderNonce) &&
				v[3].(*big.Int).Cmp(new(big.Int).SetBytes(t.RecipientRand[:])) == 0 {
				out.Redeemed = true
			}
		}
	}
	return out, nil
}

// FindRedemption looks for the transaction that redeemed a ticket, from
// block from on: its hash and what it paid. ok is false when none was found.
func (c *Client) FindRedemption(ctx context.Context, t *pm.SignedTicket, from uint64) (tx common.Hash, paid *big.Int, ok bool, err error) {
	logs, err := c.Backend.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(from), Addresses: []common.Address{c.Broker},
		Topics: [][]common.Hash{{topicRedeemed}, {common.BytesToHash(t.Ticket.Sender.Bytes())}, {common.BytesToHash(t.Ticket.Recipient.Bytes())}},
	})
	if err != nil {
		return common.Hash{}, nil, false, err
	}
	for _, l := range logs {
		if l.Removed {
			continue
		}
		r, err := c.Backend.TransactionReceipt(ctx, l.TxHash)
		if err != nil {
			return common.Hash{}, nil, false, err
		}
		red, err := c.RedemptionIn(r, t)
		if err != nil {
			return common.Hash{}, nil, false, err
		}
		if red.Redeemed {
			return l.TxHash, red.Paid, true, nil
		}
	}
	return common.Hash{}, nil, false, nil
}

// controllerABI is the Controller's registry lookup.
var controllerABI = mustABI(`[{"type":"function","name":"getContract","stateMutability":"view","inputs":[{"name":"_id","type":"bytes32"}],"outputs":[{"name":"","type":"address"}]}]`)

// ResolveController finds the TicketBroker and RoundsManager registered in
// a Livepeer Controller (getContract(keccak256(name))).
func ResolveController(ctx context.Context, b Backend, controller common.Address) (broker, rounds common.Address, err error) {
	c := &Client{Backend: b}
	get := func(name string) (common.Address, error) {
		v, err := c.call(ctx, controller, controllerABI, "getContract", crypto.Keccak256Hash([]byte(name)))
		if err != nil {
			return common.Address{}, err
		}
		a := v[0].(common.Address)
		if a == (common.Address{}) {
			return a, fmt.Errorf("chain: controller %s has no %s", controller.Hex(), name)
		}
		return a, nil
	}
	if broker, err = get("TicketBroker"); err != nil {
		return
	}
	rounds, err = get("RoundsManager")
	return
}
