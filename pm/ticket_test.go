package pm

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

func TestAuxData(t *testing.T) {
	h := common.HexToHash("0x73bccf9932a241e56f23297bc423a0982621c4dd3193d8aba4f417136bc5ef2a")
	if a, _ := AuxData(0, common.Hash{}); len(a) != 0 {
		t.Error("round 0 with zero hash must give empty auxData")
	}
	if a, _ := AuxData(0, h); len(a) != 64 || !bytes.Equal(a[32:], h[:]) || a[31] != 0 {
		t.Error("round 0 with a hash gives 64 bytes")
	}
	if a, _ := AuxData(3500, common.Hash{}); len(a) != 64 || a[30] != 0x0d || a[31] != 0xac {
		t.Errorf("round 3500 zero hash = %x", a)
	}
	if _, err := AuxData(-1, h); !errors.Is(err, ErrValueOutOfRange) {
		t.Error("negative round accepted")
	}
}

func TestTicketHashRanges(t *testing.T) {
	tk := Ticket{FaceValue: big.NewInt(1), WinProb: MaxWinProb(), SenderNonce: 7}
	pre, err := tk.Preimage()
	if err != nil || len(pre) != PreimageLenNoAux {
		t.Fatalf("no-aux preimage: %d %v", len(pre), err)
	}
	tk.CreationRound = 1
	if pre, _ := tk.Preimage(); len(pre) != PreimageLen {
		t.Fatal("aux preimage length")
	}
	for name, mut := range map[string]func(*Ticket){
		"face value 2^256": func(t *Ticket) { t.FaceValue = new(big.Int).Lsh(big.NewInt(1), 256) },
		"win prob 2^256":   func(t *Ticket) { t.WinProb = new(big.Int).Lsh(big.NewInt(1), 256) },
		"negative fv":      func(t *Ticket) { t.FaceValue = big.NewInt(-1) },
		"negative round":   func(t *Ticket) { t.CreationRound = -5 },
	} {
		c := tk
		mut(&c)
		if _, err := c.Hash(); !errors.Is(err, ErrValueOutOfRange) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Nil numbers count as zero.
	if _, err := (&Ticket{}).Hash(); err != nil {
		t.Fatal(err)
	}
	if (&Ticket{}).EV().Sign() != 0 {
		t.Fatal("nil EV")
	}
	if _, err := uint256FromBytes(append([]byte{0, 0}, bytes.Repeat([]byte{0xff}, 32)...), "x"); err != nil {
		t.Fatal("leading zeros rejected")
	}
	if _, err := uint256FromBytes(append([]byte{1}, make([]byte, 32)...), "x"); !errors.Is(err, ErrValueOutOfRange) {
		t.Fatal("2^256 accepted")
	}
}

func TestIsWinningTicketEdges(t *testing.T) {
	sig := bytes.Repeat([]byte{7}, 65)
	var rr [32]byte
	if IsWinningTicket(sig, rr, nil) || IsWinningTicket(sig, rr, new(big.Int)) {
		t.Error("zero win prob won")
	}
	if !IsWinningTicket(sig, rr, MaxWinProb()) {
		t.Error("max win prob lost")
	}
}

func TestRecipientRandMessageZeroValues(t *testing.T) {
	var sender common.Address
	msg := RecipientRandMessage(nil, sender, nil, nil, nil, nil, nil)
	// Only the sender and the zero price's denominator 0x01.
	if len(msg) != 21 || msg[20] != 1 {
		t.Fatalf("msg = %x", msg)
	}
	if !bytes.Equal(RecipientRandMessage(big.NewInt(0), sender, nil, nil, nil, big.NewRat(4000, 6), nil)[20:], []byte{0x07, 0xd0, 0x03}) {
		t.Fatal("price not reduced")
	}
}

func TestOffchainBlocks(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	o, err := NewOffchainBlocks(func() time.Time { return now }, 0, common.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.LastSeenL1Block().Int64(); got != 1_800_000_000/12 {
		t.Fatalf("block %d", got)
	}
	if r, h := o.CreationRound(); r != DefaultOffchainRound || h != DefaultOffchainBlockHash || h == (common.Hash{}) {
		t.Fatal("defaults")
	}
	now = time.Unix(0, 0)
	if o.LastSeenL1Block().Int64() != 1 {
		t.Fatal("block 0")
	}
	now = time.Unix(-100000, 0)
	if o.LastSeenL1Block().Int64() != 1 {
		t.Fatal("negative block")
	}
	if _, err := NewOffchainBlocks(nil, 0, common.Hash{}); err == nil {
		t.Fatal("nil clock")
	}
	if _, err := NewOffchainBlocks(time.Now, -1, common.Hash{}); err == nil {
		t.Fatal("negative round")
	}

	// Params issued offchain expire 40 blocks (8 minutes) later.
	v := loadVectors(t)
	now = time.Unix(1_800_000_000, 0)
	r, err := NewRecipient(RecipientConfig{Address: common.HexToAddress(v.Keys.RecipientAddress), Secret: secretOf(t, v), Blocks: o})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.TicketParams(common.HexToAddress(v.Keys.SenderAddress), big.NewRat(1000, 1))
	if err != nil {
		t.Fatal(err)
	}
	if p.ExpirationBlock.Int64() != 1_800_000_000/12+ParamsValidityBlocks || p.ExpirationParams.CreationRound != 1 {
		t.Fatalf("offchain params %+v", p)
	}
}
