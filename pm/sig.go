package pm

import (
	"sync"

	"byoc/ethsig"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// scratch holds the buffers of one payment validation, recycled through
// scratchPool so that the hot path does not allocate them. Signatures are
// made and checked by package ethsig.
type scratch struct {
	kh             crypto.KeccakState
	rec            *ethsig.Recoverer
	pre            [PreimageLen]byte
	msg            [256]byte
	rand           [32]byte
	h, digest, win common.Hash
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{kh: crypto.NewKeccakState(), rec: ethsig.NewRecoverer()}
}}
