package orchestrator

import (
	"github.com/ethereum/go-ethereum/common"

	"byoc/wire"
)

// anonymous is the sender of unsigned requests. An unsigned request is
// never attributed to the address it claims: it could be anyone's. It may
// only use capabilities that cost nothing.
var anonymous = common.Address{}

// tokenSender authenticates a token request's Livepeer-Eth-Address header.
// signed is false for an unsigned (offchain) sender.
func tokenSender(header string) (sender common.Address, signed bool, err error) {
	js, err := wire.DecodeJobSenderHeader(header)
	if err != nil {
		return anonymous, false, err
	}
	sig, err := wire.ParseSigText(js.Sig)
	if err != nil {
		return anonymous, false, err
	}
	if len(sig) == 0 {
		return anonymous, false, nil
	}
	addr, err := wire.VerifySenderSig(*js)
	return addr, err == nil, err
}

// jobSender authenticates a job request's signature over request‖parameters.
func jobSender(req *wire.JobRequest) (sender common.Address, signed bool, err error) {
	sig, err := wire.ParseSigText(req.Sig)
	if err != nil {
		return anonymous, false, err
	}
	if len(sig) == 0 {
		return anonymous, false, nil
	}
	addr, err := wire.VerifyJobSig(req.Sender, req)
	return addr, err == nil, err
}
