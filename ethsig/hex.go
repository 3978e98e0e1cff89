package ethsig

import (
	"sync"

	"github.com/ethereum/go-ethereum/common"
)

// hexCacheSize bounds Hex's cache; past it the cache starts again.
const hexCacheSize = 4096

var hexCache struct {
	sync.RWMutex
	m map[common.Address]string
}

// Hex returns a's EIP-55 form, as a.Hex() does, from a bounded cache: the
// checksum is a keccak hash, and hot paths name the same few senders and
// orchestrators in ledger keys and logs on every job.
func Hex(a common.Address) string {
	hexCache.RLock()
	s, ok := hexCache.m[a]
	hexCache.RUnlock()
	if ok {
		return s
	}
	s = a.Hex()
	hexCache.Lock()
	if hexCache.m == nil || len(hexCache.m) >= hexCacheSize {
		hexCache.m = make(map[common.Address]string)
	}
	hexCache.m[a] = s
	hexCache.Unlock()
	return s
}
