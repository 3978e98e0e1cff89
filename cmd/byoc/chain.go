package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"byoc/chain"
	"byoc/ethsig"
	"byoc/orchestrator"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
)

// chainFlags are the flags that put a node or a command on chain
// (docs/chain.md).
type chainFlags struct {
	url, broker, rounds, controller *string
}

func registerChainFlags(fs *flag.FlagSet) *chainFlags {
	return &chainFlags{
		url:        fs.String("eth-url", os.Getenv("BYOC_ETH_URL"), "Ethereum JSON-RPC URL (on chain; empty: offchain); env BYOC_ETH_URL"),
		broker:     fs.String("ticket-broker", "", "TicketBroker address (with --rounds-manager; or give --controller)"),
		rounds:     fs.String("rounds-manager", "", "RoundsManager address"),
		controller: fs.String("controller", "", "Livepeer Controller address: finds the TicketBroker and RoundsManager"),
	}
}

func (c *chainFlags) on() bool { return *c.url != "" }

// client dials the node and resolves the contracts.
func (c *chainFlags) client(ctx context.Context) (*chain.Client, error) {
	if *c.url == "" {
		return nil, errors.New("--eth-url is required")
	}
	addr := func(flag, v string) (common.Address, error) {
		if !common.IsHexAddress(v) {
			return common.Address{}, fmt.Errorf("--%s %q: want a 0x-prefixed address", flag, v)
		}
		return common.HexToAddress(v), nil
	}
	ec, err := ethclient.DialContext(ctx, *c.url)
	if err != nil {
		return nil, fmt.Errorf("--eth-url: %w", err)
	}
	cl := &chain.Client{Backend: ec}
	switch {
	case *c.controller != "" && (*c.broker != "" || *c.rounds != ""):
		return nil, errors.New("give --controller or --ticket-broker and --rounds-manager, not both")
	case *c.controller != "":
		ctl, err := addr("controller", *c.controller)
		if err != nil {
			return nil, err
		}
		if cl.Broker, cl.Rounds, err = chain.ResolveController(ctx, ec, ctl); err != nil {
			return nil, err
		}
	default:
		if cl.Broker, err = addr("ticket-broker", *c.broker); err != nil {
			return nil, err
		}
		if cl.Rounds, err = addr("rounds-manager", *c.rounds); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// redeemFlags shape an orchestrator's redemptions.
type redeemFlags struct {
	maxFee, maxFloat, feeShare *string
	margin                     *uint64
	replaceAfter               *time.Duration
	confirmations              *uint64
	manual                     *bool
}

func registerRedeemFlags(fs *flag.FlagSet) *redeemFlags {
	return &redeemFlags{
		maxFee:        fs.String("max-fee-per-gas", "", "on chain: cap on a redemption's fee per gas in wei (empty: none)"),
		maxFloat:      fs.String("max-float-per-sender", "", "on chain: most unredeemed winning value one sender may have, in wei (empty: its funds)"),
		feeShare:      fs.String("max-fee-share", "1/2", "on chain: redeem only while the gas cost is at most this share of the payout, except in a ticket's last valid round"),
		margin:        fs.Uint64("gas-margin-percent", 25, "on chain: added to the estimated gas for the gas limit"),
		replaceAfter:  fs.Duration("replace-after", 5*time.Minute, "on chain: replace an unmined redemption after this long, at the same nonce with higher fees"),
		confirmations: fs.Uint64("confirmations", 3, "on chain: blocks after a redemption's block before it is final (a reorg before that requeues it)"),
		manual:        fs.Bool("manual-redemption", false, "on chain: start with automatic redemption off (redeem with `byoc tickets redeem`)"),
	}
}

func weiFlag(name, v string) (*big.Int, error) {
	if v == "" {
		return nil, nil
	}
	b, ok := new(big.Int).SetString(v, 10)
	if !ok || b.Sign() <= 0 {
		return nil, fmt.Errorf("--%s %q: want a positive integer number of wei", name, v)
	}
	return b, nil
}

// onChain builds the orchestrator's chain settings.
func (c *chainFlags) onChain(ctx context.Context, r *redeemFlags, signer *ethsig.KeySigner) (*orchestrator.OnChain, error) {
	cl, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	oc := &orchestrator.OnChain{Client: cl, Confirmations: *r.confirmations, Manual: *r.manual,
		Gas: chain.GasPolicy{GasMarginPercent: *r.margin, ReplaceAfter: *r.replaceAfter}}
	if signer != nil {
		oc.Signer = signer
	}
	if oc.Gas.MaxFeePerGas, err = weiFlag("max-fee-per-gas", *r.maxFee); err != nil {
		return nil, err
	}
	if oc.MaxFloatPerSender, err = weiFlag("max-float-per-sender", *r.maxFloat); err != nil {
		return nil, err
	}
	share, ok := new(big.Rat).SetString(*r.feeShare)
	if !ok || share.Sign() <= 0 {
		return nil, fmt.Errorf("--max-fee-share %q: want a positive fraction such as 1/2", *r.feeShare)
	}
	oc.Gas.MaxFeeShare = share
	return oc, nil
}

// leading returns the arguments before the first flag: an action's own
// arguments (`byoc tickets auto off --admin …`).
func leading(args []string) []string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			return args[:i]
		}
	}
	return args
}

const ticketsUsage = `Usage: byoc tickets <action> [ARGS] [flags]

Operates a running orchestrator's winning tickets on chain through its admin
API (docs/chain.md):

  list                 winning tickets: state, face value, payout, tx, last error
  redeem [KEY...]      redeem the named tickets now (none: every queued one)
  auto on|off          turn automatic redemption on or off
  prune                mark tickets past their validity dead, follow sent ones

Flags:
`

func runTickets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc tickets", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:8936", "the orchestrator's admin API")
	token := fs.String("admin-token", os.Getenv("BYOC_ADMIN_TOKEN"), "its bearer token; env BYOC_ADMIN_TOKEN")
	state := fs.String("state", "", "list: only tickets in this state (queued, submitted, redeemed, dead)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := actionUsage(fs, ticketsUsage, args, stdout); err != nil {
		return err
	}
	action, pos, rest := args[0], leading(args[1:]), args[1:]
	if err := parseFlags(fs, rest[len(pos):], stdout); err != nil {
		return err
	}
	call := func(method, path string, body any, out any) error {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(*admin, "/")+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+*token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return json.Unmarshal(b, out)
	}
	var ws []chain.TicketView
	switch action {
	case "list":
		path := "/admin/tickets"
		if *state != "" {
			path += "?state=" + *state
		}
		if err := call(http.MethodGet, path, nil, &ws); err != nil {
			return err
		}
	case "redeem":
		if err := call(http.MethodPost, "/admin/tickets/redeem", map[string]any{"keys": pos}, &ws); err != nil {
			return err
		}
	case "prune":
		if err := call(http.MethodPost, "/admin/tickets/prune", nil, &ws); err != nil {
			return err
		}
	case "auto":
		var on map[string]bool
		switch strings.Join(pos, " ") {
		case "on", "off":
			if err := call(http.MethodPost, "/admin/tickets/auto", map[string]bool{"on": pos[0] == "on"}, &on); err != nil {
				return err
			}
		case "":
			if err := call(http.MethodGet, "/admin/tickets/auto", nil, &on); err != nil {
				return err
			}
		default:
			return fmt.Errorf("auto %q: want on or off", strings.Join(pos, " "))
		}
		fmt.Fprintf(stdout, "automatic redemption: %v\n", map[bool]string{true: "on", false: "off"}[on["on"]])
		return nil
	default:
		return fmt.Errorf("unknown action %q (list, redeem, auto, prune)", action)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ws)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TICKET\tSTATE\tSENDER\tFACE VALUE\tPAYOUT\tLAST VALID ROUND\tTX\tLAST ERROR")
	for _, w := range ws {
		payout := "-"
		if w.Payout != nil {
			payout = w.Payout.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", w.Key, w.State, w.Sender, w.FaceValue, payout, w.LastValidRound, w.TxHash, w.LastError)
	}
	return tw.Flush()
}

const senderUsage = `Usage: byoc sender <action> [ARG] [flags]

A sender's (gateway's, signer's) funds on the TicketBroker (docs/chain.md):

  info [ADDRESS]          deposit, reserve and unlock state (default: the key's address)
  fund-deposit WEI        add to the deposit
  fund-reserve WEI        add to the reserve
  unlock                  start withdrawing (orchestrators refuse an unlocking sender)
  cancel-unlock           stop it
  withdraw                take deposit and reserve out once unlocked

Flags:
`

func runSender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("byoc sender", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := registerChainFlags(fs)
	keyFlags := registerKeyFlags(fs)
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for a transaction to be mined")
	if err := actionUsage(fs, senderUsage, args, stdout); err != nil {
		return err
	}
	action, pos, rest := args[0], leading(args[1:]), args[1:]
	if err := parseFlags(fs, rest[len(pos):], stdout); err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%s: unexpected arguments %q", action, pos[1:])
	}
	arg := ""
	if len(pos) == 1 {
		arg = pos[0]
	}
	cl, err := cf.client(ctx)
	if err != nil {
		return err
	}
	signer, err := keyFlags.signer()
	if err != nil {
		return err
	}
	if action == "info" {
		var who common.Address
		switch {
		case arg != "":
			if !common.IsHexAddress(arg) {
				return fmt.Errorf("info %q: want an address", arg)
			}
			who = common.HexToAddress(arg)
		case signer != nil:
			who = signer.Address()
		default:
			return errors.New("info: give an address or a key (--eth-keystore or --dev-key)")
		}
		info, err := cl.SenderInfo(ctx, who)
		if err != nil {
			return err
		}
		round, err := cl.CurrentRound(ctx)
		if err != nil {
			return err
		}
		state := "locked (usable)"
		switch {
		case info.Unlocked(round):
			state = fmt.Sprintf("unlocked since round %s: withdraw, or fund again after withdrawing", info.WithdrawRound)
		case info.Unlocking():
			state = fmt.Sprintf("unlocking until round %s (orchestrators refuse it)", info.WithdrawRound)
		}
		fmt.Fprintf(stdout, "sender   %s\ndeposit  %s wei\nreserve  %s wei (claimed this round %s)\nround    %s\nstate    %s\n",
			who.Hex(), info.Deposit, info.Reserve, info.ClaimedInCurrentRound, round, state)
		return nil
	}
	if signer == nil {
		return fmt.Errorf("%s: a key is required (--eth-keystore with --eth-password-file, or --dev-key)", action)
	}
	var value *big.Int
	var method string
	switch action {
	case "fund-deposit", "fund-reserve":
		if value, err = weiFlag(action, arg); err != nil || value == nil {
			return fmt.Errorf("%s: want an amount in wei", action)
		}
		method = map[string]string{"fund-deposit": "fundDeposit", "fund-reserve": "fundReserve"}[action]
	case "unlock", "withdraw":
		method = action
	case "cancel-unlock":
		method = "cancelUnlock"
	default:
		return fmt.Errorf("unknown action %q", action)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	r, err := cl.Transact(ctx, signer, t.C, value, method)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s mined in block %s (tx %s, gas %d)\n", method, r.BlockNumber, r.TxHash.Hex(), r.GasUsed)
	return nil
}
