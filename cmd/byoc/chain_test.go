package main

import (
	"bufio"
	"context"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"byoc/chain"
	"byoc/chain/testchain"
	"byoc/ethsig"
	"byoc/orchestrator"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestChainFlagsRefuse: bad chain flags are refused with a message, before
// anything starts.
func TestChainFlagsRefuse(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sender", "info"}, "--eth-url is required"},
		{[]string{"sender", "fund-deposit", "12", "13"}, "unexpected arguments"},
		{[]string{"sender", "info", "--eth-url", "http://127.0.0.1:1", "--ticket-broker", "nope", "--rounds-manager", "0x0000000000000000000000000000000000000001"}, `--ticket-broker "nope"`},
		{[]string{"sender", "info", "--eth-url", "http://127.0.0.1:1", "--controller", "0x0000000000000000000000000000000000000001", "--ticket-broker", "0x0000000000000000000000000000000000000002"}, "not both"},
		{[]string{"tickets", "frobnicate"}, "unknown action"},
		{[]string{"tickets", "auto", "maybe"}, "want on or off"},
	} {
		code, _, stderr := byoc(t, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("byoc %v: code %d, stderr %q; want %q", c.args, code, stderr, c.want)
		}
	}
}

// TestTicketsCommand: `byoc tickets` drives a running orchestrator on a
// local chain through its admin API.
func TestTicketsCommand(t *testing.T) {
	ctx := context.Background()
	okey, _ := crypto.GenerateKey()
	orch, _ := ethsig.NewKeySigner(okey)
	tc, err := testchain.New(testchain.Options{Funded: []common.Address{orch.Address()}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	n, err := orchestrator.StartNode(ctx, orchestrator.NodeConfig{
		Listen: "https://127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(),
		Orchestrator: orchestrator.Config{Secret: "s"},
		Chain: &orchestrator.OnChain{Client: &chain.Client{Backend: tc.Client, Broker: tc.Broker, Rounds: tc.Rounds},
			Signer: orch, Poll: time.Hour, MaxFloatPerSender: big.NewInt(1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	flags := []string{"--admin", n.AdminURL, "--admin-token", n.AdminToken}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"auto"}, "automatic redemption: on"},
		{[]string{"auto", "off"}, "automatic redemption: off"},
		{[]string{"auto"}, "automatic redemption: off"},
		{[]string{"list"}, "TICKET STATE SENDER FACE VALUE PAYOUT LAST VALID ROUND TX LAST ERROR"},
		{[]string{"redeem"}, "TICKET STATE"},
		{[]string{"prune"}, "TICKET STATE"},
	} {
		args := append(append([]string{"tickets"}, c.args...), flags...)
		code, out, stderr := byoc(t, args...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("byoc %v: code %d, out %q, stderr %q; want %q", args, code, out, stderr, c.want)
		}
	}
	if code, _, stderr := byoc(t, "tickets", "list", "--admin", n.AdminURL, "--admin-token", "wrong"); code == 0 || !strings.Contains(stderr, "401") {
		t.Errorf("a wrong token: code %d, %q", code, stderr)
	}
}

// TestSenderCommandOverRPC: `byoc sender` against a chain's JSON-RPC: a
// deposit funded by a key, then read back; a refused call sends nothing.
func TestSenderCommandOverRPC(t *testing.T) {
	skey, _ := crypto.GenerateKey()
	addr := crypto.PubkeyToAddress(skey.PublicKey)
	tc, err := testchain.New(testchain.Options{HTTP: true, Funded: []common.Address{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	flags := []string{"--eth-url", tc.URL, "--ticket-broker", tc.Broker.Hex(), "--rounds-manager", tc.Rounds.Hex()}
	key := common.Bytes2Hex(crypto.FromECDSA(skey))
	// The command waits for its transaction: mine while it runs, as a
	// chain does.
	done := make(chan struct{})
	var code int
	var stdout, stderr string
	go func() {
		defer close(done)
		code, stdout, stderr = byoc(t, append(append([]string{"sender", "fund-deposit", "5000"}, flags...), "--dev-key", key)...)
	}()
	for mining := true; mining; {
		tc.Backend.Commit()
		select {
		case <-done:
			mining = false
		case <-time.After(100 * time.Millisecond):
		}
	}
	if code != 0 || !strings.Contains(stdout, "fundDeposit mined in block") {
		t.Fatalf("fund-deposit: code %d, %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = byoc(t, append([]string{"sender", "info", addr.Hex()}, flags...)...)
	if code != 0 || !strings.Contains(stdout, "deposit 5000 wei") || !strings.Contains(stdout, "locked (usable)") {
		t.Fatalf("info: code %d, %q %q", code, stdout, stderr)
	}
	code, _, stderr = byoc(t, append(append([]string{"sender", "cancel-unlock"}, flags...), "--dev-key", key)...)
	if code == 0 || !strings.Contains(stderr, "no unlock request in progress") {
		t.Fatalf("cancel-unlock without an unlock: code %d, %q", code, stderr)
	}
}

// TestOrchestratorOnChainStart: `byoc orchestrator --eth-url …` starts on a
// chain's JSON-RPC with the key's address as recipient, and refuses in one
// line a chain it cannot read.
func TestOrchestratorOnChainStart(t *testing.T) {
	okey, _ := crypto.GenerateKey()
	tc, err := testchain.New(testchain.Options{HTTP: true, Funded: []common.Address{crypto.PubkeyToAddress(okey.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	key := common.Bytes2Hex(crypto.FromECDSA(okey))
	wantFailedStart(t, "reading the chain", orchArgs(t.TempDir(), "--eth-url", tc.URL, "--dev-key", key,
		"--ticket-broker", tc.Rounds.Hex(), "--rounds-manager", tc.Broker.Hex())...) // swapped: the calls revert

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		var errb strings.Builder
		done <- run(ctx, orchArgs(t.TempDir(), "--eth-url", tc.URL, "--dev-key", key, "--manual-redemption",
			"--ticket-broker", tc.Broker.Hex(), "--rounds-manager", tc.Rounds.Hex()), pw, &errb)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 || err != nil {
		t.Fatalf("exit %d, %v", code, err)
	}
	if want := "orchestrator " + crypto.PubkeyToAddress(okey.PublicKey).Hex() + " serving"; !strings.HasPrefix(line, want) {
		t.Fatalf("first line %q, want %q…", line, want)
	}
}
