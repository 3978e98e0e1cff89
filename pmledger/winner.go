package pmledger

import (
	"encoding/json"
	"fmt"
	"math/big"

	"byoc/pm"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// WinningTicket is how a winning ticket is kept in the ledger's queue:
// everything TicketBroker.redeemWinningTicket needs, as JSON a person can
// read in `byoc ledger winners`.
type WinningTicket struct {
	Recipient              common.Address `json:"recipient"`
	Sender                 common.Address `json:"sender"`
	FaceValue              *hexutil.Big   `json:"face_value"`
	WinProb                *hexutil.Big   `json:"win_prob"`
	SenderNonce            uint32         `json:"sender_nonce"`
	RecipientRandHash      common.Hash    `json:"recipient_rand_hash"`
	CreationRound          int64          `json:"creation_round"`
	CreationRoundBlockHash common.Hash    `json:"creation_round_block_hash"`
	ParamsExpirationBlock  *hexutil.Big   `json:"params_expiration_block"`
	Price                  string         `json:"price"`
	Sig                    hexutil.Bytes  `json:"sig"`
	RecipientRand          hexutil.Bytes  `json:"recipient_rand"`
	Hash                   common.Hash    `json:"ticket_hash"`
}

// NewWinningTicket converts a pm.SignedTicket.
func NewWinningTicket(s *pm.SignedTicket) WinningTicket {
	t := s.Ticket
	price := ""
	if t.PricePerPixel != nil {
		price = t.PricePerPixel.RatString()
	}
	return WinningTicket{
		Recipient: t.Recipient, Sender: t.Sender,
		FaceValue: big0(t.FaceValue), WinProb: big0(t.WinProb), SenderNonce: t.SenderNonce,
		RecipientRandHash: t.RecipientRandHash, CreationRound: t.CreationRound,
		CreationRoundBlockHash: t.CreationRoundBlockHash, ParamsExpirationBlock: big0(t.ParamsExpirationBlock),
		Price: price, Sig: append([]byte(nil), s.Sig...), RecipientRand: append([]byte(nil), s.RecipientRand[:]...),
		Hash: s.Hash,
	}
}

func big0(b *big.Int) *hexutil.Big {
	if b == nil {
		b = new(big.Int)
	}
	return (*hexutil.Big)(new(big.Int).Set(b))
}

// DecodeWinningTicket reads a queued winner's payload back into a
// pm.SignedTicket and checks that it hashes to what it claims.
func DecodeWinningTicket(payload []byte) (*pm.SignedTicket, error) {
	var w WinningTicket
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("pmledger: winning ticket: %w", err)
	}
	s := &pm.SignedTicket{
		Ticket: pm.Ticket{Recipient: w.Recipient, Sender: w.Sender, FaceValue: w.FaceValue.ToInt(),
			WinProb: w.WinProb.ToInt(), SenderNonce: w.SenderNonce, RecipientRandHash: w.RecipientRandHash,
			CreationRound: w.CreationRound, CreationRoundBlockHash: w.CreationRoundBlockHash,
			ParamsExpirationBlock: w.ParamsExpirationBlock.ToInt()},
		Hash: w.Hash, Sig: w.Sig,
	}
	if w.Price != "" {
		if p, ok := new(big.Rat).SetString(w.Price); ok {
			s.Ticket.PricePerPixel = p
		}
	}
	copy(s.RecipientRand[:], w.RecipientRand)
	h, err := s.Ticket.Hash()
	if err != nil || h != w.Hash {
		return nil, fmt.Errorf("pmledger: winning ticket does not hash to %s", w.Hash.Hex())
	}
	return s, nil
}
