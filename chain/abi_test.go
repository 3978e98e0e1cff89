package chain

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"strings"
	"testing"

	"byoc/chain/testchain"
	"byoc/pm"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
)

// The selectors docs/protocol.md §12.1 lists (Livepeer's deployed ABI).
var wantSelectors = map[string]string{
	"redeemWinningTicket":   "ec8b3cb6",
	"getSenderInfo":         "e1a589da",
	"claimableReserve":      "81779f38",
	"usedTickets":           "59a515ba",
	"getTicketHash":         "b03fa864",
	"fundDepositAndReserve": "511f4073",
}

func TestSelectors(t *testing.T) {
	for name, want := range wantSelectors {
		m, ok := TicketBrokerABI.Methods[name]
		if !ok {
			t.Fatalf("%s missing from the ABI subset", name)
		}
		if got := hex.EncodeToString(m.ID); got != want {
			t.Errorf("%s: selector %s, want %s (%s)", name, got, want, m.Sig)
		}
	}
}

// TestContractsImplementSubset checks that the test contracts have every
// function and event of the ABI subset with the same selector or topic, so
// tests against them exercise the real ABI.
func TestContractsImplementSubset(t *testing.T) {
	for _, c := range []struct {
		name     string
		subset   abi.ABI
		contract string
	}{{"TicketBroker", TicketBrokerABI, testchain.TicketBrokerABI}, {"RoundsManager", RoundsManagerABI, testchain.RoundsManagerABI}} {
		got, err := abi.JSON(strings.NewReader(c.contract))
		if err != nil {
			t.Fatal(err)
		}
		for name, m := range c.subset.Methods {
			gm, ok := got.Methods[name]
			if !ok || string(gm.ID) != string(m.ID) || len(gm.Outputs) != len(m.Outputs) {
				t.Errorf("%s: test contract lacks %s", c.name, m.Sig)
			}
		}
		for name, e := range c.subset.Events {
			ge, ok := got.Events[name]
			if !ok || ge.ID != e.ID {
				t.Errorf("%s: test contract lacks event %s", c.name, e.Sig)
			}
		}
	}
}

type vectorFile struct {
	Scenarios []struct {
		Name   string `json:"name"`
		Params struct {
			FaceValue         string `json:"face_value"`
			WinProb           string `json:"win_prob"`
			Recipient         string `json:"recipient"`
			RecipientRandHash string `json:"recipient_rand_hash"`
			ExpirationParams  struct {
				CreationRound          int64  `json:"creation_round"`
				CreationRoundBlockHash string `json:"creation_round_block_hash"`
			} `json:"expiration_params"`
		} `json:"orchestrator_ticket_params"`
		Tickets []struct {
			Nonce uint32 `json:"sender_nonce"`
			Hash  string `json:"ticket_hash"`
		} `json:"tickets"`
	} `json:"scenarios"`
	Keys struct {
		Sender string `json:"sender_address"`
	} `json:"keys"`
}

// vectorTickets returns the vectors' tickets with the hashes go-livepeer
// computed for them.
func vectorTickets(t *testing.T) (tickets []pm.Ticket, hashes []common.Hash) {
	t.Helper()
	b, err := os.ReadFile("../pm/testdata/pm-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, s := range v.Scenarios {
		for _, tk := range s.Tickets {
			p := s.Params
			tickets = append(tickets, pm.Ticket{
				Recipient: common.HexToAddress(p.Recipient), Sender: common.HexToAddress(v.Keys.Sender),
				FaceValue: new(big.Int).SetBytes(common.FromHex(p.FaceValue)), WinProb: new(big.Int).SetBytes(common.FromHex(p.WinProb)),
				SenderNonce: tk.Nonce, RecipientRandHash: common.HexToHash(p.RecipientRandHash),
				CreationRound: p.ExpirationParams.CreationRound, CreationRoundBlockHash: common.HexToHash(p.ExpirationParams.CreationRoundBlockHash),
			})
			hashes = append(hashes, common.HexToHash(tk.Hash))
		}
	}
	if len(tickets) == 0 {
		t.Fatal("no tickets in the vectors")
	}
	return tickets, hashes
}

// TestTicketHashParity: byoc's ticket hash, the vectors' (go-livepeer's)
// and the test contract's getTicketHash agree for every vector ticket.
func TestTicketHashParity(t *testing.T) {
	tc := newTestChain(t)
	c := &Client{Backend: tc.Client, Broker: tc.Broker, Rounds: tc.Rounds}
	tickets, hashes := vectorTickets(t)
	for i := range tickets {
		goHash, err := tickets[i].Hash()
		if err != nil {
			t.Fatal(err)
		}
		onChain, err := c.TicketHash(context.Background(), &tickets[i])
		if err != nil {
			t.Fatal(err)
		}
		if goHash != hashes[i] || onChain != hashes[i] {
			t.Errorf("ticket %d: byoc %s, contract %s, vectors %s", i, goHash.Hex(), onChain.Hex(), hashes[i].Hex())
		}
	}
}

func newTestChain(t *testing.T, funded ...common.Address) *testchain.Chain {
	t.Helper()
	tc, err := testchain.New(testchain.Options{Funded: funded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}
