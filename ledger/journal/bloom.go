package journal

import "hash/maphash"

// bloom remembers, in a fixed amount of memory, every account reference,
// idempotency key and outbox event key the ledger ever held, so that a name memory does not
// hold is known to be new without asking the tables (a new job, a new
// ticket's key: nearly every operation names one). It may answer "maybe"
// for a new name (then the tables are asked); it never answers "no" for an
// old one. Its size does not grow with history; past some tens of millions
// of names its "maybe" grows common and lookups fall back to the tables.
type bloom struct {
	bits []uint64
	mask uint64
	seed maphash.Seed
}

const bloomHashes = 4

func newBloom(bytes int) *bloom {
	n := uint64(64)
	for n*8 < uint64(bytes)*8 && n < 1<<36 {
		n <<= 1
	}
	// n is a power of two of bits
	return &bloom{bits: make([]uint64, n/64), mask: n - 1, seed: maphash.MakeSeed()}
}

func (b *bloom) hashes(kind byte, s string) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteByte(kind)
	h.WriteString(s)
	h1 := h.Sum64()
	h.WriteByte(0xff)
	return h1, h.Sum64() | 1
}

func (b *bloom) add(kind byte, s string) {
	h1, h2 := b.hashes(kind, s)
	for i := uint64(0); i < bloomHashes; i++ {
		bit := (h1 + i*h2) & b.mask
		b.bits[bit/64] |= 1 << (bit % 64)
	}
}

func (b *bloom) mayHave(kind byte, s string) bool {
	h1, h2 := b.hashes(kind, s)
	for i := uint64(0); i < bloomHashes; i++ {
		bit := (h1 + i*h2) & b.mask
		if b.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

const (
	nameRef = 'r'
	nameKey = 'k'
	// nameOutbox: an outbox event's key (unique among events, apart from
	// entries' keys).
	nameOutbox = 'o'
)
