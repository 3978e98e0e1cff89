package orchestrator

import (
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"byoc/wire"
)

// anonymous is the sender of unsigned requests. An unsigned request is
// never attributed to the address it claims: it could be anyone's. It may
// only use capabilities that cost nothing.
var anonymous = common.Address{}

// senderCache remembers Livepeer-Eth-Address headers already verified: a
// sender's signature over its own address never changes (docs/protocol.md §5.2), so
// a gateway sends the same header with every token request, and recovering
// the key each time would cost a signature check per token.
type senderCache struct {
	mu sync.Mutex
	m  map[string]common.Address
}

const senderCacheSize = 4096

func (c *senderCache) sender(header string) (common.Address, bool, error) {
	c.mu.Lock()
	addr, ok := c.m[header]
	c.mu.Unlock()
	if ok {
		return addr, true, nil
	}
	addr, signed, err := tokenSender(header)
	if err == nil && signed {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= senderCacheSize {
			c.m = map[string]common.Address{} // bounded: start again
		}
		c.m[header] = addr
		c.mu.Unlock()
	}
	return addr, signed, err
}

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
