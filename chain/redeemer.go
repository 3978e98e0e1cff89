package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"byoc/ledger"
	"byoc/pm"
	"byoc/pmledger"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// TxSigner signs the redeemer's transactions (ethsig.KeySigner is one).
type TxSigner interface {
	Address() common.Address
	SignTx(tx *types.Transaction, chainID *big.Int) (*types.Transaction, error)
}

// GasPolicy is how the redeemer prices its transactions (docs/chain.md,
// "Gas").
type GasPolicy struct {
	// MaxFeePerGas caps a transaction's fee per gas (EIP-1559 maxFeePerGas);
	// while the base fee plus tip is above it, redemptions wait. Nil: no cap.
	MaxFeePerGas *big.Int
	// GasMarginPercent is added to eth_estimateGas's figure for the gas
	// limit; 0 means 25.
	GasMarginPercent uint64
	// MaxFeeShare: a ticket is redeemed only when its expected gas cost is
	// at most this share of what it will pay, except in its last valid
	// round, when the payout must only exceed the cost. Nil means 1/2.
	MaxFeeShare *big.Rat
	// ReplaceAfter is how long (on the ledger's clock) a transaction may stay
	// unmined before it is replaced at the same nonce with fees raised by
	// BumpPercent; 0 means 5 minutes.
	ReplaceAfter time.Duration
	// BumpPercent raises both fee fields of a replacement; below 10 a node
	// refuses it; 0 means 12.
	BumpPercent uint64
}

func (g GasPolicy) margin() uint64 {
	if g.GasMarginPercent == 0 {
		return 25
	}
	return g.GasMarginPercent
}

func (g GasPolicy) share() *big.Rat {
	if g.MaxFeeShare == nil {
		return big.NewRat(1, 2)
	}
	return g.MaxFeeShare
}

func (g GasPolicy) replaceAfter() time.Duration {
	if g.ReplaceAfter == 0 {
		return 5 * time.Minute
	}
	return g.ReplaceAfter
}

func (g GasPolicy) bump() uint64 {
	if g.BumpPercent < 10 {
		return 12
	}
	return g.BumpPercent
}

// Redeemer redeems the ledger's queued winning tickets on the TicketBroker.
// Each ticket's state lives in the ledger (queued → submitted → redeemed, or
// dead), and the transaction for it is written there before it is
// broadcast, so a crash at any point leaves at most one redemption in
// flight, which the next Tick finds. Call Tick once per new block (Run does).
type Redeemer struct {
	Ledger *ledger.Ledger
	Client *Client
	Signer TxSigner // the recipient's key: tickets name it, fees go to it
	Gas    GasPolicy
	// Confirmations is how many blocks must follow a redemption's block
	// before it is recorded as redeemed; until then a reorg that drops it
	// sends the ticket back to the queue.
	Confirmations uint64
	// LogLookback is how many blocks back FindRedemption searches for
	// another account's redemption of a used ticket; 0 means 100,000.
	LogLookback uint64
	Log         *slog.Logger

	// beforeBroadcast, when set, runs after a transaction is recorded and
	// before it is sent; an error stops the Tick there (tests: a crash).
	beforeBroadcast func(*types.Transaction) error
	// afterBroadcast: the same after it was sent.
	afterBroadcast func(*types.Transaction) error

	mu       sync.Mutex // one Tick or manual redemption at a time
	manual   atomic.Bool
	validity *big.Int
	chainID  *big.Int
}

// Tick outcomes per ticket, for tests and the admin API.
const (
	reasonNotYet = "params not expired yet"
)

// SetAuto turns automatic redemption on (the default) or off. Off, Tick
// still follows transactions already sent, prunes expired tickets and
// refreshes why tickets wait, but sends nothing new; RedeemNow still works.
func (r *Redeemer) SetAuto(on bool) { r.manual.Store(!on) }

// Auto reports whether automatic redemption is on.
func (r *Redeemer) Auto() bool { return !r.manual.Load() }

func (r *Redeemer) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// chainView is what one pass reads from the chain once.
type chainView struct {
	head     uint64 // the chain's head (receipts, confirmations, logs)
	l1       uint64 // RoundsManager.blockNum (params' expiry)
	header   *types.Header
	round    *big.Int
	senders  map[common.Address]*senderView
	nonceAt  *uint64
	validity *big.Int
}

type senderView struct {
	info      SenderInfo
	claimable *big.Int
	err       error
}

func (r *Redeemer) view(ctx context.Context) (*chainView, error) {
	if r.validity == nil {
		v, err := r.Client.TicketValidityPeriod(ctx)
		if err != nil {
			return nil, err
		}
		r.validity = v
	}
	if r.chainID == nil {
		id, err := r.Client.Backend.ChainID(ctx)
		if err != nil {
			return nil, err
		}
		r.chainID = id
	}
	header, err := r.Client.Backend.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	round, err := r.Client.CurrentRound(ctx)
	if err != nil {
		return nil, err
	}
	l1, err := r.Client.BlockNum(ctx)
	if err != nil {
		return nil, err
	}
	return &chainView{head: header.Number.Uint64(), l1: l1.Uint64(), header: header, round: round,
		senders: map[common.Address]*senderView{}, validity: r.validity}, nil
}

func (v *chainView) sender(ctx context.Context, c *Client, sender, me common.Address) *senderView {
	if s, ok := v.senders[sender]; ok {
		return s
	}
	s := &senderView{}
	s.info, s.err = c.SenderInfo(ctx, sender)
	if s.err == nil {
		s.claimable, s.err = c.ClaimableReserve(ctx, sender, me)
	}
	v.senders[sender] = s
	return s
}

// Tick runs one pass: it follows every submitted redemption (receipts,
// mined reverts, reorgs, crashes, replacements), prunes tickets past their
// validity, and, when automatic redemption is on, sends at most one new
// redemption per sender that has none in flight.
func (r *Redeemer) Tick(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pass(ctx, !r.manual.Load(), nil, false)
}

// Prune marks the tickets past their validity dead and follows the
// transactions already sent, sending nothing new.
func (r *Redeemer) Prune(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pass(ctx, false, nil, false)
}

// RedeemNow tries to redeem the given winning tickets (all queued ones when
// keys is empty) now, whether automatic redemption is on or not, and
// regardless of the gas share (every other check still applies). It
// returns the tickets' states after the attempt.
func (r *Redeemer) RedeemNow(ctx context.Context, keys []string) ([]ledger.Winner, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	only := map[string]bool{}
	for _, k := range keys {
		only[k] = true
	}
	if err := r.pass(ctx, true, only, true); err != nil {
		return nil, err
	}
	var out []ledger.Winner
	for _, k := range keys {
		w, err := r.Ledger.Winner(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

func (r *Redeemer) pass(ctx context.Context, send bool, only map[string]bool, force bool) error {
	v, err := r.view(ctx)
	if err != nil {
		return fmt.Errorf("chain: reading the chain: %w", err)
	}
	submitted, err := r.Ledger.Winners(ctx, ledger.WinnerSubmitted, 0)
	if err != nil {
		return err
	}
	for _, w := range submitted {
		if err := r.follow(ctx, v, w); err != nil {
			return err
		}
	}
	// A sender whose redemption is still in flight, or was sent back to
	// the queue in this pass, waits: the next pass sees the chain anew.
	busy := map[string]bool{}
	for _, w := range submitted {
		now, err := r.Ledger.Winner(ctx, w.Key)
		if err != nil {
			return err
		}
		if now.State != ledger.WinnerRedeemed && now.State != ledger.WinnerDead {
			busy[w.Sender] = true
		}
	}
	queued, err := r.Ledger.Winners(ctx, ledger.WinnerQueued, 0)
	if err != nil {
		return err
	}
	for _, w := range queued {
		if len(only) > 0 && !only[w.Key] {
			continue
		}
		if err := r.consider(ctx, v, w, send && !busy[w.Sender], force, busy); err != nil {
			return err
		}
	}
	return nil
}

// note records why a queued ticket waits, unless that is already recorded.
func (r *Redeemer) note(ctx context.Context, w ledger.Winner, reason string) error {
	if w.LastError == reason {
		return nil
	}
	return r.update(ctx, w, ledger.WinnerUpdate{State: w.State, LastError: reason, KeepTx: true})
}

func (r *Redeemer) update(ctx context.Context, w ledger.Winner, u ledger.WinnerUpdate) error {
	err := r.Ledger.UpdateWinner(ctx, w.Key, w.State, u)
	if errors.Is(err, ledger.ErrWinnerState) {
		// Moved meanwhile (an operator's command): the next pass sees it.
		return nil
	}
	return err
}

// lastValidRound is creationRound + validity − 1: the ticket expires when
// the current round reaches creationRound + validity.
func lastValidRound(t *pm.SignedTicket, validity *big.Int) *big.Int {
	lv := new(big.Int).Add(big.NewInt(t.Ticket.CreationRound), validity)
	return lv.Sub(lv, big.NewInt(1))
}

// consider decides about one queued ticket and sends its redemption when
// send is true and every check passes.
func (r *Redeemer) consider(ctx context.Context, v *chainView, w ledger.Winner, send, force bool, busy map[string]bool) error {
	t, err := pmledger.DecodeWinningTicket(w.Payload)
	if err != nil {
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerDead, LastError: "undecodable: " + err.Error(), TxNonce: -1})
	}
	last := lastValidRound(t, v.validity)
	if v.round.Cmp(last) > 0 {
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerDead, TxNonce: -1,
			LastError: fmt.Sprintf("expired: last valid round %s passed (round %s)", last, v.round)})
	}
	if w.RedeemAfter >= 0 && v.l1 <= uint64(w.RedeemAfter) {
		return r.note(ctx, w, reasonNotYet)
	}
	if t.Ticket.Recipient != r.Signer.Address() {
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerDead, TxNonce: -1,
			LastError: fmt.Sprintf("ticket names recipient %s, not this redeemer's %s", t.Ticket.Recipient.Hex(), r.Signer.Address().Hex())})
	}
	s := v.sender(ctx, r.Client, t.Ticket.Sender, r.Signer.Address())
	if s.err != nil {
		return r.note(ctx, w, "reading sender: "+s.err.Error())
	}
	face := t.Ticket.FaceValue
	if s.info.Unlocked(v.round) {
		return r.note(ctx, w, fmt.Sprintf("sender is unlocked (withdraw round %s): waiting for a new deposit or expiry", s.info.WithdrawRound))
	}
	if !s.info.Covers(face) {
		return r.note(ctx, w, fmt.Sprintf("sender funds short: deposit %s + reserve %s < face value %s", s.info.Deposit, s.info.Reserve, face))
	}
	// What the contract would pay: the deposit first, then up to this
	// recipient's claimable share of the reserve (protocol #663).
	payout := new(big.Int).Add(s.info.Deposit, s.claimable)
	if payout.Cmp(face) >= 0 {
		payout.Set(face)
	} else if v.round.Cmp(last) < 0 {
		return r.note(ctx, w, fmt.Sprintf("would pay %s of face value %s (claimable reserve short): waiting for the next round", payout, face))
	}
	if !send {
		return nil
	}
	data, err := RedeemCalldata(t)
	if err != nil {
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerDead, TxNonce: -1, LastError: "encoding: " + err.Error()})
	}
	me := r.Signer.Address()
	if err := r.Client.Preflight(ctx, me, data); err != nil {
		var rev *RevertError
		if !errors.As(err, &rev) {
			return r.note(ctx, w, "pre-flight: "+err.Error())
		}
		switch classify(rev.Reason) {
		case revertUsed:
			return r.resolveUsed(ctx, v, w, t, "pre-flight: ticket is used")
		case revertFinal:
			return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerDead, TxNonce: -1, LastError: "pre-flight: " + rev.Error()})
		default:
			return r.note(ctx, w, "pre-flight: "+rev.Error())
		}
	}
	gas, err := r.Client.Backend.EstimateGas(ctx, ethereum.CallMsg{From: me, To: &r.Client.Broker, Data: data})
	if err != nil {
		return r.note(ctx, w, "estimating gas: "+asRevert(err).Error())
	}
	limit := gas + gas*r.Gas.margin()/100
	tip, err := r.Client.Backend.SuggestGasTipCap(ctx)
	if err != nil {
		return r.note(ctx, w, "gas tip: "+err.Error())
	}
	base := v.header.BaseFee
	if base == nil {
		base = new(big.Int)
	}
	feeCap := new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), tip)
	if c := r.Gas.MaxFeePerGas; c != nil {
		if feeCap.Cmp(c) > 0 {
			feeCap.Set(c)
		}
		if tip.Cmp(feeCap) > 0 {
			tip = new(big.Int).Set(feeCap)
		}
		if new(big.Int).Add(base, tip).Cmp(c) > 0 {
			return r.note(ctx, w, fmt.Sprintf("gas: base fee %s + tip %s above the cap %s", base, tip, c))
		}
	}
	// Expected cost: the estimate at base fee plus tip.
	cost := new(big.Int).Mul(new(big.Int).SetUint64(gas), new(big.Int).Add(base, tip))
	if v.round.Cmp(last) == 0 || force {
		if cost.Cmp(payout) >= 0 {
			return r.note(ctx, w, fmt.Sprintf("gas: cost %s not below payout %s", cost, payout))
		}
	} else if new(big.Rat).SetFrac(cost, payout).Cmp(r.Gas.share()) > 0 {
		return r.note(ctx, w, fmt.Sprintf("gas: cost %s above %s of payout %s (redeemed anyway in round %s)", cost, r.Gas.share().RatString(), payout, last))
	}
	nonce, err := r.Client.Backend.PendingNonceAt(ctx, me)
	if err != nil {
		return r.note(ctx, w, "nonce: "+err.Error())
	}
	tx, err := r.Signer.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: r.chainID, Nonce: nonce, GasTipCap: tip,
		GasFeeCap: feeCap, Gas: limit, To: &r.Client.Broker, Data: data}), r.chainID)
	if err != nil {
		return err
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return err
	}
	// Recorded before it is broadcast: after a crash, Tick finds it.
	if err := r.Ledger.UpdateWinner(ctx, w.Key, ledger.WinnerQueued, ledger.WinnerUpdate{State: ledger.WinnerSubmitted,
		TxHash: tx.Hash().Hex(), TxNonce: int64(nonce), TxRaw: raw, Attempt: true}); err != nil {
		if errors.Is(err, ledger.ErrWinnerState) {
			return nil
		}
		return err
	}
	busy[w.Sender] = true
	r.log().Info("redeeming winning ticket", "ticket", w.Key, "tx", tx.Hash().Hex(), "nonce", nonce, "gas", limit)
	if r.beforeBroadcast != nil {
		if err := r.beforeBroadcast(tx); err != nil {
			return err
		}
	}
	if err := r.Client.Backend.SendTransaction(ctx, tx); err != nil && !alreadyKnown(err) {
		// Not accepted: nothing is in flight (if it was, the next
		// pre-flight says "ticket is used" and the redemption is found).
		w.State, w.TxHash = ledger.WinnerSubmitted, tx.Hash().Hex()
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerQueued, TxNonce: -1, LastError: "broadcast: " + err.Error()})
	}
	if r.afterBroadcast != nil {
		return r.afterBroadcast(tx)
	}
	return nil
}

func alreadyKnown(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "already known") || strings.Contains(m, "known transaction")
}

// follow checks a submitted ticket's transactions.
func (r *Redeemer) follow(ctx context.Context, v *chainView, w ledger.Winner) error {
	t, err := pmledger.DecodeWinningTicket(w.Payload)
	if err != nil {
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerDead, TxNonce: -1, LastError: "undecodable: " + err.Error()})
	}
	hashes := strings.Split(w.TxHash, ",")
	for _, h := range hashes {
		rc, err := r.Client.Backend.TransactionReceipt(ctx, common.HexToHash(h))
		if errors.Is(err, ethereum.NotFound) {
			continue
		}
		if err != nil {
			return r.note(ctx, w, "receipt: "+err.Error())
		}
		if v.head < rc.BlockNumber.Uint64()+r.Confirmations {
			return nil // mined; not final yet
		}
		if rc.Status == types.ReceiptStatusSuccessful {
			red, err := r.Client.RedemptionIn(rc, t)
			if err != nil {
				return r.note(ctx, w, "reading logs: "+err.Error())
			}
			if red.Redeemed {
				paid := ledger.AmountFromBig(red.Paid)
				r.log().Info("winning ticket redeemed", "ticket", w.Key, "tx", h, "paid", red.Paid, "gas", rc.GasUsed)
				return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerRedeemed, Payout: &paid, TxHash: h,
					TxNonce: w.TxNonce, LastError: ""})
			}
		}
		// A mined revert gives no reason: keep the ticket unless the
		// contract says it is used (#4013).
		used, err := r.Client.UsedTicket(ctx, t.Hash)
		if err != nil {
			return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerQueued, TxNonce: -1,
				LastError: fmt.Sprintf("transaction %s reverted; usedTickets check failed (%v): kept", h, err)})
		}
		if !used {
			return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerQueued, TxNonce: -1,
				LastError: fmt.Sprintf("transaction %s reverted; ticket unused: kept", h)})
		}
		return r.resolveUsed(ctx, v, w, t, fmt.Sprintf("transaction %s reverted: ticket is used", h))
	}
	// No receipt for any of its transactions.
	if v.nonceAt == nil {
		n, err := r.Client.Backend.NonceAt(ctx, r.Signer.Address(), nil)
		if err != nil {
			return r.note(ctx, w, "nonce: "+err.Error())
		}
		v.nonceAt = &n
	}
	if *v.nonceAt > uint64(w.TxNonce) {
		// Its nonce was used by a transaction that is not one of its own:
		// it was dropped (a reorg, or a replacement by another program).
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerQueued, TxNonce: -1,
			LastError: fmt.Sprintf("transaction %s gone (nonce %d used by another transaction): queued again", hashes[len(hashes)-1], w.TxNonce)})
	}
	var tx types.Transaction
	if err := tx.UnmarshalBinary(w.TxRaw); err != nil {
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerQueued, TxNonce: -1, LastError: "stored transaction unreadable: " + err.Error()})
	}
	if r.Ledger.Now().Sub(w.UpdatedAt) >= r.Gas.replaceAfter() {
		return r.replace(ctx, v, w, &tx)
	}
	// Pending, or lost (a crash before it was sent, a node that forgot it):
	// the same bytes again, which can be mined at most once.
	if err := r.Client.Backend.SendTransaction(ctx, &tx); err != nil && !alreadyKnown(err) {
		return r.note(ctx, w, "broadcast again: "+err.Error())
	}
	return nil
}

// replace sends tx again at its nonce with both fees raised. The ticket
// stays submitted: either transaction may be mined, and follow checks both.
func (r *Redeemer) replace(ctx context.Context, v *chainView, w ledger.Winner, old *types.Transaction) error {
	bump := func(x *big.Int) *big.Int {
		y := new(big.Int).Mul(x, new(big.Int).SetUint64(100+r.Gas.bump()))
		return y.Div(y, big.NewInt(100))
	}
	tip, feeCap := bump(old.GasTipCap()), bump(old.GasFeeCap())
	if base := v.header.BaseFee; base != nil {
		if floor := new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), tip); feeCap.Cmp(floor) < 0 {
			feeCap = floor
		}
	}
	if c := r.Gas.MaxFeePerGas; c != nil && feeCap.Cmp(c) > 0 {
		// At the cap: the same transaction again, and wait.
		if err := r.Client.Backend.SendTransaction(ctx, old); err != nil && !alreadyKnown(err) {
			return r.note(ctx, w, "broadcast again: "+err.Error())
		}
		return r.note(ctx, w, fmt.Sprintf("unmined; a replacement would exceed the fee cap %s", c))
	}
	tx, err := r.Signer.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: r.chainID, Nonce: old.Nonce(), GasTipCap: tip,
		GasFeeCap: feeCap, Gas: old.Gas(), To: old.To(), Data: old.Data()}), r.chainID)
	if err != nil {
		return err
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return err
	}
	if err := r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerSubmitted, TxHash: w.TxHash + "," + tx.Hash().Hex(),
		TxNonce: w.TxNonce, TxRaw: raw, Attempt: true, LastError: "replaced " + old.Hash().Hex() + " (unmined)"}); err != nil {
		return err
	}
	r.log().Info("replacing redemption", "ticket", w.Key, "old", old.Hash().Hex(), "new", tx.Hash().Hex())
	if err := r.Client.Backend.SendTransaction(ctx, tx); err != nil && !alreadyKnown(err) {
		return r.note(ctx, ledger.Winner{Key: w.Key, State: ledger.WinnerSubmitted}, "broadcast replacement: "+err.Error())
	}
	return nil
}

// resolveUsed settles a ticket the contract says is used: by whom, and
// what it paid, from the chain's logs.
func (r *Redeemer) resolveUsed(ctx context.Context, v *chainView, w ledger.Winner, t *pm.SignedTicket, why string) error {
	lookback := r.LogLookback
	if lookback == 0 {
		lookback = 100_000
	}
	from := uint64(0)
	if v.head > lookback {
		from = v.head - lookback
	}
	h, paid, ok, err := r.Client.FindRedemption(ctx, t, from)
	if err != nil {
		return r.note(ctx, w, why+"; finding its redemption: "+err.Error())
	}
	if !ok {
		return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerRedeemed, TxNonce: -1,
			LastError: why + "; redeemed by a transaction not found in the logs: payout unknown"})
	}
	amt := ledger.AmountFromBig(paid)
	return r.update(ctx, w, ledger.WinnerUpdate{State: ledger.WinnerRedeemed, Payout: &amt, TxHash: h.Hex(), TxNonce: -1,
		LastError: why + "; redeemed by transaction " + h.Hex()})
}

// Revert classes.
const (
	revertRetry = iota
	revertFinal
	revertUsed
)

// classify sorts redeemWinningTicket's revert reasons (docs/chain.md): a
// final one can never pass for this ticket; a retryable one can (a round
// initialized, a top-up, a registration, an unpause). Unknown reasons are
// retryable: the ticket is kept until it expires.
func classify(reason string) int {
	switch reason {
	case "ticket is used":
		return revertUsed
	case "ticket is expired", "ticket recipient is null address", "ticket sender is null address",
		"invalid length for ticket auxData: must be 64 bytes", "ticket creationRound does not have a block hash",
		"ticket creationRoundBlockHash invalid for creationRound", "recipientRand does not match recipientRandHash",
		"INVALID_SIGNATURE_LENGTH", "invalid signature over ticket hash", "ticket did not win":
		return revertFinal
	}
	return revertRetry
}

// Run calls Tick whenever the chain's head changes, checking every poll
// (from the caller's ticker), until ctx ends.
func (r *Redeemer) Run(ctx context.Context, poll <-chan time.Time) error {
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll:
		}
		head, err := r.Client.Backend.BlockNumber(ctx)
		if err != nil {
			r.log().Warn("redeemer: reading the head", "err", err)
			continue
		}
		if head == last {
			continue
		}
		if err := r.Tick(ctx); err != nil {
			r.log().Warn("redeemer: pass failed", "err", err)
			continue
		}
		last = head
	}
}

// TicketView is a winning ticket as an operator sees it: its row, and the
// rounds it can be redeemed in.
type TicketView struct {
	ledger.Winner
	CreationRound  int64 `json:"creation_round"`
	LastValidRound int64 `json:"last_valid_round"`
}

// Views adds the rounds to winning tickets (ticketValidityPeriod is read
// from the chain).
func (r *Redeemer) Views(ctx context.Context, ws []ledger.Winner) ([]TicketView, error) {
	out := make([]TicketView, 0, len(ws))
	if len(ws) == 0 {
		return out, nil
	}
	validity, err := r.Client.TicketValidityPeriod(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		v := TicketView{Winner: w, CreationRound: -1, LastValidRound: -1}
		if t, err := pmledger.DecodeWinningTicket(w.Payload); err == nil {
			v.CreationRound, v.LastValidRound = t.Ticket.CreationRound, lastValidRound(t, validity).Int64()
		}
		out = append(out, v)
	}
	return out, nil
}
