package main

import (
	"context"
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
		{[]string{"list"}, "TICKET STATE SENDER FACE VALUE PAYOUT TX LAST ERROR"},
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
