package wire

import (
	"errors"
	"fmt"
)

// MaxTicketsPerPayment bounds the number of tickets (ticket_sender_params)
// Payment.Unmarshal accepts. go-livepeer's BYOC gateway sends at most 600 in
// one payment and its remote signer at most 100.
const MaxTicketsPerPayment = 1000

// ErrTooManyTickets is returned (wrapped) by Payment.Unmarshal, and so by
// DecodePaymentHeader, when a payment carries more than MaxTicketsPerPayment
// tickets.
var ErrTooManyTickets = errors.New("wire: too many tickets in payment")

// Payment is net.Payment, the message carried base64-encoded in the
// Livepeer-Payment header: a batch of tickets that share one set of ticket
// parameters.
type Payment struct {
	// TicketParams (field 1) are the recipient's parameters the tickets were
	// made from; absent when the payment carries no tickets.
	TicketParams *TicketParams `json:"ticket_params,omitempty"`
	// Sender (field 2) is the payer's 20-byte ETH address.
	Sender []byte `json:"sender,omitempty"`
	// ExpirationParams (field 3) are the creation round and its block hash;
	// required whenever TicketParams is set.
	ExpirationParams *TicketExpirationParams `json:"expiration_params,omitempty"`
	// TicketSenderParams (field 4) holds one nonce and signature per ticket.
	TicketSenderParams []*TicketSenderParams `json:"ticket_sender_params,omitempty"`
	// ExpectedPrice (field 5) echoes the price the recipient quoted.
	ExpectedPrice *PriceInfo `json:"expected_price,omitempty"`
}

// TicketParams is net.TicketParams: the recipient's parameters for a ticket
// session. Integers are big-endian without leading zeros (big.Int.Bytes()),
// so zero is absent.
type TicketParams struct {
	Recipient         []byte `json:"recipient,omitempty"`           // field 1, 20 bytes
	FaceValue         []byte `json:"face_value,omitempty"`          // field 2, wei
	WinProb           []byte `json:"win_prob,omitempty"`            // field 3, numerator over 2^256-1
	RecipientRandHash []byte `json:"recipient_rand_hash,omitempty"` // field 4, 32 bytes
	Seed              []byte `json:"seed,omitempty"`                // field 5
	ExpirationBlock   []byte `json:"expiration_block,omitempty"`    // field 6, L1 block number
	// ExpirationParams (field 7) is set by the recipient when it issues the
	// parameters. Segment payments leave it out of Payment.TicketParams;
	// BYOC payments echo it.
	ExpirationParams *TicketExpirationParams `json:"expiration_params,omitempty"`
}

// TicketSenderParams is net.TicketSenderParams: what differs per ticket.
type TicketSenderParams struct {
	SenderNonce uint32 `json:"sender_nonce,omitempty"` // field 1
	Sig         []byte `json:"sig,omitempty"`          // field 2, 65 bytes r||s||v, v = 27/28
}

// TicketExpirationParams is net.TicketExpirationParams.
type TicketExpirationParams struct {
	CreationRound          int64  `json:"creation_round,omitempty"`            // field 1
	CreationRoundBlockHash []byte `json:"creation_round_block_hash,omitempty"` // field 2, 32 bytes
}

// PriceInfo is net.PriceInfo: a price of PricePerUnit wei per PixelsPerUnit
// units of work. The JSON keys are camelCase because the proto names are.
type PriceInfo struct {
	PricePerUnit  int64  `json:"pricePerUnit,omitempty"`  // field 1
	PixelsPerUnit int64  `json:"pixelsPerUnit,omitempty"` // field 2
	Capability    uint32 `json:"capability,omitempty"`    // field 3
	Constraint    string `json:"constraint,omitempty"`    // field 4
}

// ---- Payment ----

// Marshal returns the proto3 encoding of m, byte-identical to go-livepeer's.
// A nil or empty Payment encodes to no bytes.
func (m *Payment) Marshal() []byte {
	if m == nil {
		return nil
	}
	return m.appendTo(make([]byte, 0, m.size()))
}

func (m *Payment) size() int {
	n := 0
	if m.TicketParams != nil {
		n += sizeMessage(1, m.TicketParams.size())
	}
	n += sizeBytes(2, m.Sender)
	if m.ExpirationParams != nil {
		n += sizeMessage(3, m.ExpirationParams.size())
	}
	for _, t := range m.TicketSenderParams {
		n += sizeMessage(4, t.size())
	}
	if m.ExpectedPrice != nil {
		n += sizeMessage(5, m.ExpectedPrice.size())
	}
	return n
}

func (m *Payment) appendTo(b []byte) []byte {
	if m.TicketParams != nil {
		b = appendMessageHeader(b, 1, m.TicketParams.size())
		b = m.TicketParams.appendTo(b)
	}
	b = appendBytes(b, 2, m.Sender)
	if m.ExpirationParams != nil {
		b = appendMessageHeader(b, 3, m.ExpirationParams.size())
		b = m.ExpirationParams.appendTo(b)
	}
	for _, t := range m.TicketSenderParams {
		// A nil element is written as an empty message.
		b = appendMessageHeader(b, 4, t.size())
		b = t.appendTo(b)
	}
	if m.ExpectedPrice != nil {
		b = appendMessageHeader(b, 5, m.ExpectedPrice.size())
		b = m.ExpectedPrice.appendTo(b)
	}
	return b
}

// Unmarshal replaces m with the message decoded from b. It returns an error
// wrapping ErrMalformed for invalid input and ErrTooManyTickets for more than
// MaxTicketsPerPayment tickets. Unknown fields are skipped.
func (m *Payment) Unmarshal(b []byte) error {
	*m = Payment{}
	return m.merge(b)
}

func (m *Payment) merge(b []byte) error {
	return walk(b, "Payment", func(f *field) error {
		switch f.num {
		case 1:
			if m.TicketParams == nil {
				m.TicketParams = new(TicketParams)
			}
			return f.message(m.TicketParams.merge)
		case 2:
			return f.bytes(&m.Sender)
		case 3:
			if m.ExpirationParams == nil {
				m.ExpirationParams = new(TicketExpirationParams)
			}
			return f.message(m.ExpirationParams.merge)
		case 4:
			if len(m.TicketSenderParams) >= MaxTicketsPerPayment {
				return fmt.Errorf("%w: more than %d", ErrTooManyTickets, MaxTicketsPerPayment)
			}
			t := new(TicketSenderParams)
			if err := f.message(t.merge); err != nil {
				return err
			}
			m.TicketSenderParams = append(m.TicketSenderParams, t)
			return nil
		case 5:
			if m.ExpectedPrice == nil {
				m.ExpectedPrice = new(PriceInfo)
			}
			return f.message(m.ExpectedPrice.merge)
		}
		return f.skip()
	})
}

// Clone returns a deep copy of m.
func (m *Payment) Clone() *Payment {
	if m == nil {
		return nil
	}
	c := &Payment{
		TicketParams:     m.TicketParams.Clone(),
		Sender:           clone(m.Sender),
		ExpirationParams: m.ExpirationParams.Clone(),
		ExpectedPrice:    m.ExpectedPrice.Clone(),
	}
	if m.TicketSenderParams != nil {
		c.TicketSenderParams = make([]*TicketSenderParams, len(m.TicketSenderParams))
		for i, t := range m.TicketSenderParams {
			c.TicketSenderParams[i] = t.Clone()
		}
	}
	return c
}

// ---- TicketParams ----

// Marshal returns the proto3 encoding of m.
func (m *TicketParams) Marshal() []byte {
	if m == nil {
		return nil
	}
	return m.appendTo(make([]byte, 0, m.size()))
}

func (m *TicketParams) size() int {
	if m == nil {
		return 0
	}
	n := sizeBytes(1, m.Recipient) + sizeBytes(2, m.FaceValue) + sizeBytes(3, m.WinProb) +
		sizeBytes(4, m.RecipientRandHash) + sizeBytes(5, m.Seed) + sizeBytes(6, m.ExpirationBlock)
	if m.ExpirationParams != nil {
		n += sizeMessage(7, m.ExpirationParams.size())
	}
	return n
}

func (m *TicketParams) appendTo(b []byte) []byte {
	if m == nil {
		return b
	}
	b = appendBytes(b, 1, m.Recipient)
	b = appendBytes(b, 2, m.FaceValue)
	b = appendBytes(b, 3, m.WinProb)
	b = appendBytes(b, 4, m.RecipientRandHash)
	b = appendBytes(b, 5, m.Seed)
	b = appendBytes(b, 6, m.ExpirationBlock)
	if m.ExpirationParams != nil {
		b = appendMessageHeader(b, 7, m.ExpirationParams.size())
		b = m.ExpirationParams.appendTo(b)
	}
	return b
}

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *TicketParams) Unmarshal(b []byte) error {
	*m = TicketParams{}
	return m.merge(b)
}

func (m *TicketParams) merge(b []byte) error {
	return walk(b, "TicketParams", func(f *field) error {
		switch f.num {
		case 1:
			return f.bytes(&m.Recipient)
		case 2:
			return f.bytes(&m.FaceValue)
		case 3:
			return f.bytes(&m.WinProb)
		case 4:
			return f.bytes(&m.RecipientRandHash)
		case 5:
			return f.bytes(&m.Seed)
		case 6:
			return f.bytes(&m.ExpirationBlock)
		case 7:
			if m.ExpirationParams == nil {
				m.ExpirationParams = new(TicketExpirationParams)
			}
			return f.message(m.ExpirationParams.merge)
		}
		return f.skip()
	})
}

// Clone returns a deep copy of m.
func (m *TicketParams) Clone() *TicketParams {
	if m == nil {
		return nil
	}
	return &TicketParams{
		Recipient:         clone(m.Recipient),
		FaceValue:         clone(m.FaceValue),
		WinProb:           clone(m.WinProb),
		RecipientRandHash: clone(m.RecipientRandHash),
		Seed:              clone(m.Seed),
		ExpirationBlock:   clone(m.ExpirationBlock),
		ExpirationParams:  m.ExpirationParams.Clone(),
	}
}

// ---- TicketSenderParams ----

// Marshal returns the proto3 encoding of m.
func (m *TicketSenderParams) Marshal() []byte {
	if m == nil {
		return nil
	}
	return m.appendTo(make([]byte, 0, m.size()))
}

func (m *TicketSenderParams) size() int {
	if m == nil {
		return 0
	}
	return sizeVarint(1, uint64(m.SenderNonce)) + sizeBytes(2, m.Sig)
}

func (m *TicketSenderParams) appendTo(b []byte) []byte {
	if m == nil {
		return b
	}
	b = appendVarint(b, 1, uint64(m.SenderNonce))
	return appendBytes(b, 2, m.Sig)
}

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed. A nonce above 2^32-1 is rejected.
func (m *TicketSenderParams) Unmarshal(b []byte) error {
	*m = TicketSenderParams{}
	return m.merge(b)
}

func (m *TicketSenderParams) merge(b []byte) error {
	return walk(b, "TicketSenderParams", func(f *field) error {
		switch f.num {
		case 1:
			return f.uint32(&m.SenderNonce)
		case 2:
			return f.bytes(&m.Sig)
		}
		return f.skip()
	})
}

// Clone returns a deep copy of m.
func (m *TicketSenderParams) Clone() *TicketSenderParams {
	if m == nil {
		return nil
	}
	return &TicketSenderParams{SenderNonce: m.SenderNonce, Sig: clone(m.Sig)}
}

// ---- TicketExpirationParams ----

// Marshal returns the proto3 encoding of m.
func (m *TicketExpirationParams) Marshal() []byte {
	if m == nil {
		return nil
	}
	return m.appendTo(make([]byte, 0, m.size()))
}

func (m *TicketExpirationParams) size() int {
	if m == nil {
		return 0
	}
	return sizeVarint(1, uint64(m.CreationRound)) + sizeBytes(2, m.CreationRoundBlockHash)
}

func (m *TicketExpirationParams) appendTo(b []byte) []byte {
	if m == nil {
		return b
	}
	b = appendVarint(b, 1, uint64(m.CreationRound))
	return appendBytes(b, 2, m.CreationRoundBlockHash)
}

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *TicketExpirationParams) Unmarshal(b []byte) error {
	*m = TicketExpirationParams{}
	return m.merge(b)
}

func (m *TicketExpirationParams) merge(b []byte) error {
	return walk(b, "TicketExpirationParams", func(f *field) error {
		switch f.num {
		case 1:
			return f.int64(&m.CreationRound)
		case 2:
			return f.bytes(&m.CreationRoundBlockHash)
		}
		return f.skip()
	})
}

// Clone returns a deep copy of m.
func (m *TicketExpirationParams) Clone() *TicketExpirationParams {
	if m == nil {
		return nil
	}
	return &TicketExpirationParams{CreationRound: m.CreationRound, CreationRoundBlockHash: clone(m.CreationRoundBlockHash)}
}

// ---- PriceInfo ----

// Marshal returns the proto3 encoding of m.
func (m *PriceInfo) Marshal() []byte {
	if m == nil {
		return nil
	}
	return m.appendTo(make([]byte, 0, m.size()))
}

func (m *PriceInfo) size() int {
	if m == nil {
		return 0
	}
	return sizeVarint(1, uint64(m.PricePerUnit)) + sizeVarint(2, uint64(m.PixelsPerUnit)) +
		sizeVarint(3, uint64(m.Capability)) + sizeBytes(4, []byte(m.Constraint))
}

func (m *PriceInfo) appendTo(b []byte) []byte {
	if m == nil {
		return b
	}
	b = appendVarint(b, 1, uint64(m.PricePerUnit))
	b = appendVarint(b, 2, uint64(m.PixelsPerUnit))
	b = appendVarint(b, 3, uint64(m.Capability))
	return appendBytes(b, 4, []byte(m.Constraint))
}

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *PriceInfo) Unmarshal(b []byte) error {
	*m = PriceInfo{}
	return m.merge(b)
}

func (m *PriceInfo) merge(b []byte) error {
	return walk(b, "PriceInfo", func(f *field) error {
		switch f.num {
		case 1:
			return f.int64(&m.PricePerUnit)
		case 2:
			return f.int64(&m.PixelsPerUnit)
		case 3:
			return f.uint32(&m.Capability)
		case 4:
			return f.string(&m.Constraint)
		}
		return f.skip()
	})
}

// Clone returns a copy of m.
func (m *PriceInfo) Clone() *PriceInfo {
	if m == nil {
		return nil
	}
	c := *m
	return &c
}
