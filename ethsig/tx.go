package ethsig

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/core/types"
)

// SignTx signs an Ethereum transaction for chainID (the latest signer: EIP-1559
// and legacy alike), for the on-chain redeemer and the sender's funding
// commands.
func (s *KeySigner) SignTx(tx *types.Transaction, chainID *big.Int) (*types.Transaction, error) {
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(chainID), s.key)
	if err != nil {
		return nil, fmt.Errorf("ethsig: signing transaction: %w", err)
	}
	return signed, nil
}
