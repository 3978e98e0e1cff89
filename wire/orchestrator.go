package wire

// OrchestratorRequest is net.OrchestratorRequest, the GetOrchestrator gRPC
// request. Sig is the sender's personal-sign signature over
// keccak256(EIP-55 hex of Address).
type OrchestratorRequest struct {
	Address []byte // field 1, 20 bytes
	Sig     []byte // field 2, 65 bytes
	// Capabilities (field 3) is the encoded net.Capabilities message, kept
	// as bytes; nil when absent.
	Capabilities        []byte
	IgnoreCapacityCheck bool // field 4
}

// Marshal returns the proto3 encoding of m.
func (m *OrchestratorRequest) Marshal() []byte {
	if m == nil {
		return nil
	}
	n := sizeBytes(1, m.Address) + sizeBytes(2, m.Sig) + sizeRaw(3, m.Capabilities) +
		sizeVarint(4, boolVarint(m.IgnoreCapacityCheck))
	b := make([]byte, 0, n)
	b = appendBytes(b, 1, m.Address)
	b = appendBytes(b, 2, m.Sig)
	b = appendRaw(b, 3, m.Capabilities)
	return appendVarint(b, 4, boolVarint(m.IgnoreCapacityCheck))
}

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *OrchestratorRequest) Unmarshal(b []byte) error {
	*m = OrchestratorRequest{}
	return walk(b, "OrchestratorRequest", func(f *field) error {
		switch f.num {
		case 1:
			return f.bytes(&m.Address)
		case 2:
			return f.bytes(&m.Sig)
		case 3:
			return f.rawMessage(&m.Capabilities)
		case 4:
			return f.bool(&m.IgnoreCapacityCheck)
		}
		return f.skip()
	})
}

// AuthToken is net.AuthToken: an orchestrator's segment credential.
type AuthToken struct {
	Token      []byte // field 1
	SessionID  string // field 2
	Expiration int64  // field 3, unix seconds
}

func (m *AuthToken) size() int {
	if m == nil {
		return 0
	}
	return sizeBytes(1, m.Token) + sizeBytes(2, []byte(m.SessionID)) + sizeVarint(3, uint64(m.Expiration))
}

func (m *AuthToken) appendTo(b []byte) []byte {
	if m == nil {
		return b
	}
	b = appendBytes(b, 1, m.Token)
	b = appendBytes(b, 2, []byte(m.SessionID))
	return appendVarint(b, 3, uint64(m.Expiration))
}

func (m *AuthToken) merge(b []byte) error {
	return walk(b, "AuthToken", func(f *field) error {
		switch f.num {
		case 1:
			return f.bytes(&m.Token)
		case 2:
			return f.string(&m.SessionID)
		case 3:
			return f.int64(&m.Expiration)
		}
		return f.skip()
	})
}

// OrchestratorInfo is net.OrchestratorInfo, the orchestrator's answer to
// GetOrchestrator (and the info attached to segment and payment results).
// Sub-messages byoc does not interpret are kept as their encoded bytes so
// that they survive a decode/encode round trip.
type OrchestratorInfo struct {
	Transcoder   string        // field 1, service URI
	TicketParams *TicketParams // field 2
	PriceInfo    *PriceInfo    // field 3
	Address      []byte        // field 4, the orchestrator's ETH address
	// Capabilities (field 5) is the encoded net.Capabilities; nil when absent.
	Capabilities []byte
	AuthToken    *AuthToken // field 6
	// Hardware (field 7) and Storage (field 32) hold encoded
	// net.HardwareInformation and net.OSInfo messages.
	Hardware           [][]byte
	Storage            [][]byte
	CapabilitiesPrices []*PriceInfo // field 33
	Nodes              []string     // field 34
}

func (m *OrchestratorInfo) size() int {
	n := sizeBytes(1, []byte(m.Transcoder))
	if m.TicketParams != nil {
		n += sizeMessage(2, m.TicketParams.size())
	}
	if m.PriceInfo != nil {
		n += sizeMessage(3, m.PriceInfo.size())
	}
	n += sizeBytes(4, m.Address) + sizeRaw(5, m.Capabilities)
	if m.AuthToken != nil {
		n += sizeMessage(6, m.AuthToken.size())
	}
	for _, h := range m.Hardware {
		n += sizeMessage(7, len(h))
	}
	for _, s := range m.Storage {
		n += sizeMessage(32, len(s))
	}
	for _, p := range m.CapabilitiesPrices {
		n += sizeMessage(33, p.size())
	}
	for _, s := range m.Nodes {
		n += sizeMessage(34, len(s)) // strings are written even when empty
	}
	return n
}

// Marshal returns the proto3 encoding of m.
func (m *OrchestratorInfo) Marshal() []byte {
	if m == nil {
		return nil
	}
	b := make([]byte, 0, m.size())
	b = appendBytes(b, 1, []byte(m.Transcoder))
	if m.TicketParams != nil {
		b = appendMessageHeader(b, 2, m.TicketParams.size())
		b = m.TicketParams.appendTo(b)
	}
	if m.PriceInfo != nil {
		b = appendMessageHeader(b, 3, m.PriceInfo.size())
		b = m.PriceInfo.appendTo(b)
	}
	b = appendBytes(b, 4, m.Address)
	b = appendRaw(b, 5, m.Capabilities)
	if m.AuthToken != nil {
		b = appendMessageHeader(b, 6, m.AuthToken.size())
		b = m.AuthToken.appendTo(b)
	}
	for _, h := range m.Hardware {
		b = appendMessageHeader(b, 7, len(h))
		b = append(b, h...)
	}
	for _, s := range m.Storage {
		b = appendMessageHeader(b, 32, len(s))
		b = append(b, s...)
	}
	for _, p := range m.CapabilitiesPrices {
		b = appendMessageHeader(b, 33, p.size())
		b = p.appendTo(b)
	}
	for _, s := range m.Nodes {
		b = appendMessageHeader(b, 34, len(s))
		b = append(b, s...)
	}
	return b
}

// maxRepeated bounds each repeated field of OrchestratorInfo.
const maxRepeated = 10000

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed. Each repeated field is limited to 10000 elements.
func (m *OrchestratorInfo) Unmarshal(b []byte) error {
	*m = OrchestratorInfo{}
	return walk(b, "OrchestratorInfo", func(f *field) error {
		switch f.num {
		case 1:
			return f.string(&m.Transcoder)
		case 2:
			if m.TicketParams == nil {
				m.TicketParams = new(TicketParams)
			}
			return f.message(m.TicketParams.merge)
		case 3:
			if m.PriceInfo == nil {
				m.PriceInfo = new(PriceInfo)
			}
			return f.message(m.PriceInfo.merge)
		case 4:
			return f.bytes(&m.Address)
		case 5:
			return f.rawMessage(&m.Capabilities)
		case 6:
			if m.AuthToken == nil {
				m.AuthToken = new(AuthToken)
			}
			return f.message(m.AuthToken.merge)
		case 7:
			if len(m.Hardware) >= maxRepeated {
				return f.fail("too many elements")
			}
			return f.appendBytes(&m.Hardware)
		case 32:
			if len(m.Storage) >= maxRepeated {
				return f.fail("too many elements")
			}
			return f.appendBytes(&m.Storage)
		case 33:
			if len(m.CapabilitiesPrices) >= maxRepeated {
				return f.fail("too many elements")
			}
			p := new(PriceInfo)
			if err := f.message(p.merge); err != nil {
				return err
			}
			m.CapabilitiesPrices = append(m.CapabilitiesPrices, p)
			return nil
		case 34:
			if len(m.Nodes) >= maxRepeated {
				return f.fail("too many elements")
			}
			return f.appendString(&m.Nodes)
		}
		return f.skip()
	})
}

// PaymentResult is net.PaymentResult, the body of a POST /payment answer.
type PaymentResult struct {
	Info *OrchestratorInfo // field 16
}

// Marshal returns the proto3 encoding of m.
func (m *PaymentResult) Marshal() []byte {
	if m == nil || m.Info == nil {
		return nil
	}
	info := m.Info.Marshal()
	b := appendMessageHeader(make([]byte, 0, sizeMessage(16, len(info))), 16, len(info))
	return append(b, info...)
}

// Unmarshal replaces m with the message decoded from b; errors wrap
// ErrMalformed.
func (m *PaymentResult) Unmarshal(b []byte) error {
	*m = PaymentResult{}
	return walk(b, "PaymentResult", func(f *field) error {
		if f.num != 16 {
			return f.skip()
		}
		v, err := f.raw()
		if err != nil {
			return err
		}
		if m.Info == nil {
			m.Info = new(OrchestratorInfo)
			return m.Info.Unmarshal(v)
		}
		// A repeated message field merges: decode the concatenation.
		prev := m.Info.Marshal()
		return m.Info.Unmarshal(append(prev, v...))
	})
}
