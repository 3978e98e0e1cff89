package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"
)

// Transact sends a TicketBroker call from s (a sender's funding, unlock,
// withdraw) and waits until it is mined, checking for a receipt at every
// tick of poll. It pre-flights the call first, so a call the contract
// refuses fails with its reason and sends nothing. Gas is estimated with a
// 25 % margin; fees are EIP-1559 (twice the base fee plus the suggested tip).
func (c *Client) Transact(ctx context.Context, s TxSigner, poll <-chan time.Time, value *big.Int, method string, args ...any) (*types.Receipt, error) {
	data, err := TicketBrokerABI.Pack(method, args...)
	if err != nil {
		return nil, err
	}
	if value == nil {
		value = new(big.Int)
	}
	msg := ethereum.CallMsg{From: s.Address(), To: &c.Broker, Value: value, Data: data}
	if _, err := c.Backend.CallContract(ctx, msg, nil); err != nil {
		return nil, fmt.Errorf("chain: %s: %w", method, asRevert(err))
	}
	gas, err := c.Backend.EstimateGas(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("chain: %s: estimating gas: %w", method, asRevert(err))
	}
	chainID, err := c.Backend.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	head, err := c.Backend.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	tip, err := c.Backend.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, err
	}
	feeCap := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	nonce, err := c.Backend.PendingNonceAt(ctx, s.Address())
	if err != nil {
		return nil, err
	}
	tx, err := s.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap,
		Gas: gas + gas/4, To: &c.Broker, Value: value, Data: data}), chainID)
	if err != nil {
		return nil, err
	}
	if err := c.Backend.SendTransaction(ctx, tx); err != nil {
		return nil, fmt.Errorf("chain: %s: %w", method, err)
	}
	for {
		r, err := c.Backend.TransactionReceipt(ctx, tx.Hash())
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				return r, fmt.Errorf("chain: %s: transaction %s reverted", method, tx.Hash().Hex())
			}
			return r, nil
		}
		if !errors.Is(err, ethereum.NotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("chain: %s: transaction %s not mined yet: %w", method, tx.Hash().Hex(), ctx.Err())
		case <-poll:
		}
	}
}
