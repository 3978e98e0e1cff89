package orchestrator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	"byoc/chain"
	"byoc/chain/testchain"
	"byoc/ethsig"
	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/orchestrator"
	"byoc/pm"
	"byoc/pmledger"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestOnChainNode: an orchestrator on chain issues ticket params of the
// chain's last initialized round, and its operator lists, pauses, redeems
// and prunes winning tickets through the admin API.
func TestOnChainNode(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			dsn := ""
			if store == "postgres" {
				dsn = ledgertest.PostgresSchema(t, ledgertest.PostgresDSN(t))
			}
			testOnChainNode(t, dsn)
		})
	}
}

func testOnChainNode(t *testing.T, dsn string) {
	ctx := context.Background()
	okey, _ := crypto.GenerateKey()
	skey, _ := crypto.GenerateKey()
	orch, _ := ethsig.NewKeySigner(okey)
	snd, _ := ethsig.NewKeySigner(skey)
	tc, err := testchain.New(testchain.Options{RoundLength: 100, Funded: []common.Address{orch.Address(), snd.Address()}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tc.Hook(ctx, "setTranscoder", orch.Address(), true))
	must(tc.Hook(ctx, "setPoolSize", big.NewInt(1)))
	eth := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	must(tc.AsSender(ctx, skey, new(big.Int).Mul(eth, big.NewInt(2)), "fundDepositAndReserve", eth, eth))
	client := &chain.Client{Backend: tc.Client, Broker: tc.Broker, Rounds: tc.Rounds}
	n, err := orchestrator.StartNode(ctx, orchestrator.NodeConfig{
		Listen: "https://127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(), LedgerDSN: dsn,
		Orchestrator: orchestrator.Config{Secret: "s"},
		// Poll an hour: the test drives the redeemer through the admin API.
		Chain: &orchestrator.OnChain{Client: client, Signer: orch, Poll: time.Hour, Manual: true},
	})
	must(err)
	defer n.Close()
	if n.Address != orch.Address() {
		t.Fatalf("node address %s, want the chain key's %s", n.Address.Hex(), orch.Address().Hex())
	}
	round, err := client.LastInitializedRound(ctx)
	must(err)
	hash, err := client.BlockHashForRound(ctx, round)
	must(err)
	if r, h := n.Chain.CreationRound(); r != round.Int64() || h != hash {
		t.Fatalf("params round %d %s, want %s %s", r, h.Hex(), round, hash.Hex())
	}

	// A winning ticket, queued as a payment would queue it.
	var rr [32]byte
	rand.Read(rr[:])
	head, err := tc.Block(ctx)
	must(err)
	face := new(big.Int).Div(eth, big.NewInt(10))
	tk := pm.Ticket{Recipient: orch.Address(), Sender: snd.Address(), FaceValue: face, WinProb: pm.MaxWinProb(), SenderNonce: 1,
		RecipientRandHash: crypto.Keccak256Hash(rr[:]), CreationRound: round.Int64(), CreationRoundBlockHash: hash,
		ParamsExpirationBlock: new(big.Int).SetUint64(head + 1)}
	h, err := tk.Hash()
	must(err)
	sig, err := snd.SignPersonal(h[:])
	must(err)
	st := &pm.SignedTicket{Ticket: tk, Hash: h, Sig: sig, RecipientRand: rr}
	payload, _ := json.Marshal(pmledger.NewWinningTicket(st))
	key := pmledger.TicketKey(h)
	_, err = n.Ledger.ReceivePayment(ctx, ledger.PaymentRequest{To: ledger.PoolKey{Sender: snd.Address().Hex(), Capability: "echo"}.Ref(),
		Session: tk.RecipientRandHash.Hex(), SessionExpiry: int64(head + 1),
		Tickets: []ledger.PaymentTicket{{Nonce: 1, Credit: ledger.PaymentCredit{Key: key, Amount: ledger.Wei(1)}}},
		Winners: []ledger.Winner{{Key: key, Sender: snd.Address().Hex(), FaceValue: ledger.AmountFromBig(face),
			RedeemAfter: int64(head + 1), Payload: payload}}})
	must(err)
	tc.Mine(2)

	admin := func(method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, n.AdminURL+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+n.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		must(err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode == http.StatusOK {
			must(json.Unmarshal(b, out))
		}
		return resp.StatusCode
	}
	var auto map[string]bool
	if admin("GET", "/admin/tickets/auto", "", &auto) != 200 || auto["on"] {
		t.Fatalf("auto %v: want off (Manual)", auto)
	}
	if code := admin("POST", "/admin/tickets/auto", `{"on":"yes"}`, nil); code != http.StatusBadRequest {
		t.Fatalf("bad auto body: %d", code)
	}
	var ws []chain.TicketView
	// Prune follows and prunes but sends nothing while automatic is off.
	if admin("POST", "/admin/tickets/prune", "", &ws) != 200 || len(ws) != 0 {
		t.Fatalf("prune: %+v", ws)
	}
	if code := admin("GET", "/admin/tickets?state=won", "", nil); code != http.StatusBadRequest {
		t.Fatalf("tickets of an unknown state: %d, want 400", code)
	}
	if admin("GET", "/admin/tickets?state=queued", "", &ws) != 200 || len(ws) != 1 || ws[0].Key != key ||
		ws[0].CreationRound != round.Int64() || ws[0].LastValidRound != round.Int64()+1 {
		t.Fatalf("list: %+v", ws)
	}
	if admin("POST", "/admin/tickets/redeem", `{}`, &ws) != 200 || len(ws) != 1 || ws[0].State != ledger.WinnerSubmitted {
		t.Fatalf("redeem: %+v", ws)
	}
	tc.Backend.Commit()
	admin("POST", "/admin/tickets/prune", "", nil) // follows the sent redemption
	if admin("GET", "/admin/tickets?state=redeemed", "", &ws) != 200 || len(ws) != 1 || ws[0].Payout == nil ||
		ws[0].Payout.Cmp(ledger.AmountFromBig(face)) != 0 {
		t.Fatalf("after mining: %+v", ws)
	}
	if code := admin("GET", "/admin/tickets", "", nil); code != 200 {
		t.Fatalf("list all: %d", code)
	}
	req, _ := http.NewRequest("GET", n.AdminURL+"/admin/tickets", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
