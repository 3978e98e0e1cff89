package chain

import (
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
)

// ticketBrokerABI is the subset of Livepeer's TicketBroker ABI that an
// orchestrator and a sender use (docs/protocol.md §12.1). It is written
// here, not taken from the test contract, so that the test contract is
// checked against it (selectors in abi_test.go).
const ticketBrokerABI = `[
{"type":"function","name":"redeemWinningTicket","stateMutability":"nonpayable","inputs":[
  {"name":"_ticket","type":"tuple","components":[
    {"name":"recipient","type":"address"},{"name":"sender","type":"address"},
    {"name":"faceValue","type":"uint256"},{"name":"winProb","type":"uint256"},
    {"name":"senderNonce","type":"uint256"},{"name":"recipientRandHash","type":"bytes32"},
    {"name":"auxData","type":"bytes"}]},
  {"name":"_sig","type":"bytes"},{"name":"_recipientRand","type":"uint256"}],"outputs":[]},
{"type":"function","name":"getTicketHash","stateMutability":"pure","inputs":[
  {"name":"_ticket","type":"tuple","components":[
    {"name":"recipient","type":"address"},{"name":"sender","type":"address"},
    {"name":"faceValue","type":"uint256"},{"name":"winProb","type":"uint256"},
    {"name":"senderNonce","type":"uint256"},{"name":"recipientRandHash","type":"bytes32"},
    {"name":"auxData","type":"bytes"}]}],"outputs":[{"name":"","type":"bytes32"}]},
{"type":"function","name":"getSenderInfo","stateMutability":"view","inputs":[{"name":"_sender","type":"address"}],"outputs":[
  {"name":"sender","type":"tuple","components":[{"name":"deposit","type":"uint256"},{"name":"withdrawRound","type":"uint256"}]},
  {"name":"reserve","type":"tuple","components":[{"name":"fundsRemaining","type":"uint256"},{"name":"claimedInCurrentRound","type":"uint256"}]}]},
{"type":"function","name":"claimableReserve","stateMutability":"view","inputs":[{"name":"_reserveHolder","type":"address"},{"name":"_claimant","type":"address"}],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"claimedReserve","stateMutability":"view","inputs":[{"name":"_reserveHolder","type":"address"},{"name":"_claimant","type":"address"}],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"usedTickets","stateMutability":"view","inputs":[{"name":"","type":"bytes32"}],"outputs":[{"name":"","type":"bool"}]},
{"type":"function","name":"isUnlockInProgress","stateMutability":"view","inputs":[{"name":"_sender","type":"address"}],"outputs":[{"name":"","type":"bool"}]},
{"type":"function","name":"unlockPeriod","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"ticketValidityPeriod","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"fundDeposit","stateMutability":"payable","inputs":[],"outputs":[]},
{"type":"function","name":"fundReserve","stateMutability":"payable","inputs":[],"outputs":[]},
{"type":"function","name":"fundDepositAndReserve","stateMutability":"payable","inputs":[{"name":"_depositAmount","type":"uint256"},{"name":"_reserveAmount","type":"uint256"}],"outputs":[]},
{"type":"function","name":"fundDepositAndReserveFor","stateMutability":"payable","inputs":[{"name":"_addr","type":"address"},{"name":"_depositAmount","type":"uint256"},{"name":"_reserveAmount","type":"uint256"}],"outputs":[]},
{"type":"function","name":"unlock","stateMutability":"nonpayable","inputs":[],"outputs":[]},
{"type":"function","name":"cancelUnlock","stateMutability":"nonpayable","inputs":[],"outputs":[]},
{"type":"function","name":"withdraw","stateMutability":"nonpayable","inputs":[],"outputs":[]},
{"type":"event","name":"DepositFunded","anonymous":false,"inputs":[{"name":"sender","type":"address","indexed":true},{"name":"amount","type":"uint256","indexed":false}]},
{"type":"event","name":"ReserveFunded","anonymous":false,"inputs":[{"name":"reserveHolder","type":"address","indexed":true},{"name":"amount","type":"uint256","indexed":false}]},
{"type":"event","name":"ReserveClaimed","anonymous":false,"inputs":[{"name":"reserveHolder","type":"address","indexed":true},{"name":"claimant","type":"address","indexed":false},{"name":"amount","type":"uint256","indexed":false}]},
{"type":"event","name":"WinningTicketRedeemed","anonymous":false,"inputs":[{"name":"sender","type":"address","indexed":true},{"name":"recipient","type":"address","indexed":true},{"name":"faceValue","type":"uint256","indexed":false},{"name":"winProb","type":"uint256","indexed":false},{"name":"senderNonce","type":"uint256","indexed":false},{"name":"recipientRand","type":"uint256","indexed":false},{"name":"auxData","type":"bytes","indexed":false}]},
{"type":"event","name":"WinningTicketTransfer","anonymous":false,"inputs":[{"name":"sender","type":"address","indexed":true},{"name":"recipient","type":"address","indexed":true},{"name":"amount","type":"uint256","indexed":false}]},
{"type":"event","name":"Unlock","anonymous":false,"inputs":[{"name":"sender","type":"address","indexed":true},{"name":"startRound","type":"uint256","indexed":false},{"name":"endRound","type":"uint256","indexed":false}]},
{"type":"event","name":"UnlockCancelled","anonymous":false,"inputs":[{"name":"sender","type":"address","indexed":true}]},
{"type":"event","name":"Withdrawal","anonymous":false,"inputs":[{"name":"sender","type":"address","indexed":true},{"name":"deposit","type":"uint256","indexed":false},{"name":"reserve","type":"uint256","indexed":false}]}
]`

// roundsManagerABI is the subset of the RoundsManager an orchestrator reads.
const roundsManagerABI = `[
{"type":"function","name":"currentRound","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"currentRoundInitialized","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"bool"}]},
{"type":"function","name":"lastInitializedRound","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"blockHashForRound","stateMutability":"view","inputs":[{"name":"_round","type":"uint256"}],"outputs":[{"name":"","type":"bytes32"}]},
{"type":"function","name":"blockNum","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"roundLength","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"initializeRound","stateMutability":"nonpayable","inputs":[],"outputs":[]},
{"type":"event","name":"NewRound","anonymous":false,"inputs":[{"name":"round","type":"uint256","indexed":true},{"name":"blockHash","type":"bytes32","indexed":false}]}
]`

// TicketBrokerABI and RoundsManagerABI are the parsed subsets.
var (
	TicketBrokerABI  = mustABI(ticketBrokerABI)
	RoundsManagerABI = mustABI(roundsManagerABI)
)

func mustABI(s string) abi.ABI {
	a, err := abi.JSON(strings.NewReader(s))
	if err != nil {
		panic("chain: bad ABI: " + err.Error())
	}
	return a
}
