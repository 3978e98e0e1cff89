package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Vector payments from pm-vectors.json (go-livepeer segment payments).
const (
	vectorAHeader   = "CokBChRj+skgFJTwvRe5iSufrk1S/jvTdxIHBENkxbsAABoeb9kdhLzaWBdf36s9d6Fo4ok+SViAO2tXroTvy/AAIiBZpS7PzyFu4V2IdxTE9vvO6apJ6By5XaEIbAXDCm0NhyogQh6OdgIMcliQSI1fReOwNRYrSsUetdEk/lZf8Gzva/EyBAExLSgSFCx1NuNgXZwWp6PXsYmOUpOWplwjGiUIrBsSIHO8z5kyokHlbyMpe8QjoJgmIcTdMZPYq6T0FxNrxe8qIkUIARJB3EP5oQ1q/adH3q1Vo1YVbNhsc+Pn32YjgorJmSNAUzZoGuA/tGOJ2qtxdNM6HeRhmC4IzL/8ADT3k02o20igQBwiRQgCEkE8EmTvnlS1B+Id3oVK9uYJp+3s7MRo+27UMxeDn872Bib0x2mJrRry78oOk6lCRiZKxjlyoYoMPUBdvfT11OC7HCJFCAMSQdzfzREUuWZDz+zorTLM9Ysmb4cMyMmWl9bbrORIl3qoGkT4qzk3+aP39coTo9XLExPMMM1s0wSqH5YHHSgvLtUbKgUI0A8QAw=="
	zeroPriceHeader = "EhQsdTbjYF2cFqej17GJjlKTlqZcIyoCEAE="
	zeroPriceHex    = "12142c7536e3605d9c16a7a3d7b1898e529396a65c232a021001"
	senderHex       = "2c7536e3605d9c16a7a3d7b1898e529396a65c23"
	recipientHex    = "63fac9201494f0bd17b9892b9fae4d52fe3bd377"
	roundBlockHash  = "73bccf9932a241e56f23297bc423a0982621c4dd3193d8aba4f417136bc5ef2a"
	// OrchestratorInfo ticket params of scenario A (fields 1-7).
	vectorAParamsHex = "0a1463fac9201494f0bd17b9892b9fae4d52fe3bd3771207044364c5bb00001a1e6fd91d84bcda58175fdfab3d77a168e2893e4958803b6b57ae84efcbf000222059a52ecfcf216ee15d887714c4f6fbcee9aa49e81cb95da1086c05c30a6d0d872a20421e8e76020c725890488d5f45e3b035162b4ac51eb5d124fe565ff06cef6bf1320401312d283a2508ac1b122073bccf9932a241e56f23297bc423a0982621c4dd3193d8aba4f417136bc5ef2a"
	// OrchestratorRequest{address, sig} from the signing vectors.
	orchRequestHex = "0a142c7536e3605d9c16a7a3d7b1898e529396a65c231241662f6ce6e23e70c7db9bdcc7b0d91bdf58d8743ba347ab0b9aa060154644c55122dd6afcc20a6cba9cab1d565a6b1dc36be9a9314e0317b943f8b0f1a726e2971b"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type transcriptPayment struct {
	Name          string   `json:"name"`
	Header        string   `json:"header"`
	ProtobufHex   string   `json:"protobuf_hex"`
	Sender        string   `json:"sender"`
	PricePerUnit  int64    `json:"price_per_unit"`
	PixelsPerUnit int64    `json:"pixels_per_unit"`
	Nonces        []uint32 `json:"nonces"`
}

func loadTranscriptPayments(t testing.TB) []transcriptPayment {
	t.Helper()
	b, err := os.ReadFile("testdata/transcript-payments.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Payments []transcriptPayment `json:"payments"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Payments) == 0 {
		t.Fatal("no transcript payments")
	}
	return doc.Payments
}

func TestDecodeVectorAPayment(t *testing.T) {
	p, err := DecodePaymentHeader(vectorAHeader)
	if err != nil {
		t.Fatal(err)
	}
	tp := p.TicketParams
	if tp == nil {
		t.Fatal("no ticket params")
	}
	check := func(name string, got []byte, want string) {
		t.Helper()
		if !bytes.Equal(got, unhex(t, want)) {
			t.Errorf("%s = %x, want %s", name, got, want)
		}
	}
	check("recipient", tp.Recipient, recipientHex)
	check("face_value", tp.FaceValue, "044364c5bb0000")
	check("win_prob", tp.WinProb, "6fd91d84bcda58175fdfab3d77a168e2893e4958803b6b57ae84efcbf000")
	check("recipient_rand_hash", tp.RecipientRandHash, "59a52ecfcf216ee15d887714c4f6fbcee9aa49e81cb95da1086c05c30a6d0d87")
	check("seed", tp.Seed, "421e8e76020c725890488d5f45e3b035162b4ac51eb5d124fe565ff06cef6bf1")
	check("expiration_block", tp.ExpirationBlock, "01312d28")
	if tp.ExpirationParams != nil {
		t.Error("segment payment should not carry ticket_params.expiration_params")
	}
	check("sender", p.Sender, senderHex)
	if p.ExpirationParams == nil || p.ExpirationParams.CreationRound != 3500 {
		t.Fatalf("expiration params = %+v", p.ExpirationParams)
	}
	check("creation_round_block_hash", p.ExpirationParams.CreationRoundBlockHash, roundBlockHash)
	if len(p.TicketSenderParams) != 3 {
		t.Fatalf("tickets = %d", len(p.TicketSenderParams))
	}
	for i, ts := range p.TicketSenderParams {
		if ts.SenderNonce != uint32(i+1) || len(ts.Sig) != 65 {
			t.Errorf("ticket %d: nonce %d sig len %d", i, ts.SenderNonce, len(ts.Sig))
		}
	}
	check("sig1", p.TicketSenderParams[0].Sig, "dc43f9a10d6afda747dead55a356156cd86c73e3e7df6623828ac99923405336681ae03fb46389daab7174d33a1de461982e08ccbffc0034f7934da8db48a0401c")
	if !proto.Equal(p.ExpectedPrice, &PriceInfo{PricePerUnit: 2000, PixelsPerUnit: 3}) {
		t.Errorf("expected price = %+v", p.ExpectedPrice)
	}
	if got := EncodePaymentHeader(p); got != vectorAHeader {
		t.Errorf("re-encoded header differs:\n got %s\nwant %s", got, vectorAHeader)
	}
	raw, _ := base64.StdEncoding.DecodeString(vectorAHeader)
	if len(raw) != 421 {
		t.Errorf("vector A payment is %d bytes, docs/protocol.md §7.6 says 421", len(raw))
	}
}

func TestZeroPricePayment(t *testing.T) {
	p, err := DecodePaymentHeader(zeroPriceHeader)
	if err != nil {
		t.Fatal(err)
	}
	want := &Payment{Sender: unhex(t, senderHex), ExpectedPrice: &PriceInfo{PixelsPerUnit: 1}}
	if !proto.Equal(p, want) {
		t.Fatalf("decoded %+v, want %+v", p, want)
	}
	if got := hex.EncodeToString(want.Marshal()); got != zeroPriceHex {
		t.Errorf("marshal = %s, want %s", got, zeroPriceHex)
	}
	if got := EncodePaymentHeader(want); got != zeroPriceHeader {
		t.Errorf("header = %s, want %s", got, zeroPriceHeader)
	}
}

func TestTranscriptPaymentsRoundTrip(t *testing.T) {
	for _, tc := range loadTranscriptPayments(t) {
		t.Run(tc.Name, func(t *testing.T) {
			p, err := DecodePaymentHeader(tc.Header)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(p.Marshal()); got != strings.TrimPrefix(tc.ProtobufHex, "0x") {
				t.Errorf("marshal differs from recorded protobuf")
			}
			if got := EncodePaymentHeader(p); got != tc.Header {
				t.Errorf("re-encoded header differs")
			}
			if hex.EncodeToString(p.Sender) != strings.TrimPrefix(tc.Sender, "0x") {
				t.Errorf("sender = %x", p.Sender)
			}
			if p.ExpectedPrice.PricePerUnit != tc.PricePerUnit || p.ExpectedPrice.PixelsPerUnit != tc.PixelsPerUnit {
				t.Errorf("price = %+v", p.ExpectedPrice)
			}
			// The BYOC gateway echoes field 7 inside ticket_params.
			if p.TicketParams.ExpirationParams == nil || p.TicketParams.ExpirationParams.CreationRound != 3500 {
				t.Errorf("ticket_params.expiration_params = %+v", p.TicketParams.ExpirationParams)
			}
			var nonces []uint32
			for _, ts := range p.TicketSenderParams {
				nonces = append(nonces, ts.SenderNonce)
			}
			if !reflect.DeepEqual(nonces, tc.Nonces) {
				t.Errorf("nonces = %v, want %v", nonces, tc.Nonces)
			}
		})
	}
}

func TestEmptyHeader(t *testing.T) {
	p, err := DecodePaymentHeader("")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(p, &Payment{}) {
		t.Fatalf("got %+v", p)
	}
	if EncodePaymentHeader(nil) != "" || EncodePaymentHeader(&Payment{}) != "" {
		t.Fatal("empty payment should encode to an empty header")
	}
}

func TestHeaderLimits(t *testing.T) {
	if _, err := DecodePaymentHeader(strings.Repeat("A", MaxPaymentHeaderLen+4)); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("oversized header: %v", err)
	}
	for _, bad := range []string{"!!!!", "EhQsdTbjYF2cFqej17GJjlKTlqZcIyoCEAE", "EhQsdTbjYF2cFqej17GJjlKTlqZcIyoCEAE=="} {
		if _, err := DecodePaymentHeader(bad); !errors.Is(err, ErrBadBase64) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	sig := bytes.Repeat([]byte{1}, 65)
	p := &Payment{Sender: unhex(t, senderHex)}
	for i := 0; i < MaxTicketsPerPayment; i++ {
		p.TicketSenderParams = append(p.TicketSenderParams, &TicketSenderParams{SenderNonce: uint32(i + 1), Sig: sig})
	}
	h := EncodePaymentHeader(p)
	if len(h) > MaxPaymentHeaderLen {
		t.Fatalf("a payment of MaxTicketsPerPayment tickets (%d bytes) does not fit the header limit", len(h))
	}
	if got, err := DecodePaymentHeader(h); err != nil || len(got.TicketSenderParams) != MaxTicketsPerPayment {
		t.Fatalf("max tickets: %v", err)
	}
	p.TicketSenderParams = append(p.TicketSenderParams, &TicketSenderParams{SenderNonce: 9999, Sig: sig})
	if _, err := DecodePaymentHeader(EncodePaymentHeader(p)); !errors.Is(err, ErrTooManyTickets) {
		t.Fatalf("too many tickets: %v", err)
	}
}

func TestUnmarshalStrictness(t *testing.T) {
	tag := func(num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(nil, num, typ)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name string
		in   []byte
	}{
		{"nonce truncated", cat(tag(4, protowire.BytesType), []byte{3}, tag(1, protowire.BytesType), []byte{0})},
		{"constraint not utf8", cat(tag(5, protowire.BytesType), []byte{3}, tag(4, protowire.BytesType), []byte{1, 0xff})},
		{"truncated length", cat(tag(2, protowire.BytesType), []byte{20, 1, 2})},
		{"truncated varint", []byte{0x08, 0x80}},
		{"field number zero", []byte{0x02, 0x00}},
		{"field number too large", protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3|2)},
		{"end group without start", tag(9, protowire.EndGroupType)},
		{"reserved wire type", []byte{0x0e}},
		{"bad nested", cat(tag(1, protowire.BytesType), []byte{2, 0x0a, 0x05})},
	}
	for _, tc := range cases {
		var p Payment
		if err := p.Unmarshal(tc.in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
		}
	}
}

// TestWireTypeAndRangeLikeGoLivepeer: a known field sent with another wire
// type is dropped like an unknown field, and a nonce above 2^32-1 keeps its
// low 32 bits, as go-livepeer's generated decoder does. Neither can credit
// anything: the field is gone, and a ticket's hash covers the nonce as
// decoded.
func TestWireTypeAndRangeLikeGoLivepeer(t *testing.T) {
	tag := func(num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(nil, num, typ)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for name, in := range map[string][]byte{
		"sender as varint":        cat(tag(2, protowire.VarintType), []byte{1}),
		"ticket_params as varint": cat(tag(1, protowire.VarintType), []byte{1}),
		"ticket as fixed32":       cat(tag(4, protowire.Fixed32Type), []byte{1, 2, 3, 4}),
		"price as bytes":          cat(tag(5, protowire.BytesType), []byte{2}, tag(1, protowire.BytesType), []byte{0}),
	} {
		var p Payment
		if err := p.Unmarshal(in); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if name == "price as bytes" {
			if !proto.Equal(&p, &Payment{ExpectedPrice: &PriceInfo{}}) {
				t.Errorf("%s: decoded %v", name, &p)
			}
		} else if !proto.Equal(&p, &Payment{}) {
			t.Errorf("%s: decoded %v", name, &p)
		}
	}
	in := cat(tag(4, protowire.BytesType), []byte{6}, tag(1, protowire.VarintType), protowire.AppendVarint(nil, 1<<32|7))
	var p Payment
	if err := p.Unmarshal(in); err != nil || len(p.TicketSenderParams) != 1 || p.TicketSenderParams[0].SenderNonce != 7 {
		t.Fatalf("nonce 2^32+7: %v %v", err, &p)
	}
}

func TestUnmarshalTolerance(t *testing.T) {
	want, err := DecodePaymentHeader(zeroPriceHeader)
	if err != nil {
		t.Fatal(err)
	}
	in := unhex(t, zeroPriceHex)
	// Unknown fields of every wire type, including a group, are skipped.
	in = protowire.AppendTag(in, 99, protowire.VarintType)
	in = protowire.AppendVarint(in, 12345)
	in = protowire.AppendTag(in, 100, protowire.Fixed64Type)
	in = protowire.AppendFixed64(in, 7)
	in = protowire.AppendTag(in, 101, protowire.BytesType)
	in = protowire.AppendBytes(in, []byte("hello"))
	in = protowire.AppendTag(in, 102, protowire.StartGroupType)
	in = protowire.AppendTag(in, 1, protowire.VarintType)
	in = protowire.AppendVarint(in, 1)
	in = protowire.AppendTag(in, 102, protowire.EndGroupType)
	in = protowire.AppendTag(in, 103, protowire.Fixed32Type)
	in = protowire.AppendFixed32(in, 7)
	var got Payment
	if err := got.Unmarshal(in); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, want) {
		t.Fatalf("got %v, want %v", &got, want)
	}
	if hex.EncodeToString(got.Marshal()) != zeroPriceHex {
		t.Fatal("unknown fields must not be re-encoded")
	}
}

func TestMergeAndPresence(t *testing.T) {
	// An empty sub-message is present and re-encoded as such.
	p := &Payment{ExpectedPrice: &PriceInfo{}}
	if got := hex.EncodeToString(p.Marshal()); got != "2a00" {
		t.Fatalf("empty price = %s", got)
	}
	var q Payment
	if err := q.Unmarshal(unhex(t, "2a00")); err != nil || q.ExpectedPrice == nil {
		t.Fatalf("empty price not present after decode: %v", err)
	}
	// A message field that occurs twice is merged; a scalar takes the last value.
	in := unhex(t, "2a0308d00f"+"2a021003"+"1201aa"+"1201bb")
	if err := q.Unmarshal(in); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(q.ExpectedPrice, &PriceInfo{PricePerUnit: 2000, PixelsPerUnit: 3}) || !bytes.Equal(q.Sender, []byte{0xbb}) {
		t.Fatalf("merge: %+v sender %x", q.ExpectedPrice, q.Sender)
	}
	// A nil ticket in the list is written as an empty message.
	p = &Payment{TicketSenderParams: []*TicketSenderParams{nil}}
	if got := hex.EncodeToString(p.Marshal()); got != "2200" {
		t.Fatalf("nil ticket = %s", got)
	}
	// Negative int64 uses ten bytes, as proto3 does.
	e := &TicketExpirationParams{CreationRound: -1}
	if got := hex.EncodeToString(e.Marshal()); got != "08ffffffffffffffffff01" {
		t.Fatalf("negative round = %s", got)
	}
	var e2 TicketExpirationParams
	if err := e2.Unmarshal(e.Marshal()); err != nil || e2.CreationRound != -1 {
		t.Fatalf("negative round decode: %v %d", err, e2.CreationRound)
	}
}

func TestDecodedBytesDoNotAliasInput(t *testing.T) {
	in := unhex(t, zeroPriceHex)
	var p Payment
	if err := p.Unmarshal(in); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 0
	}
	if hex.EncodeToString(p.Sender) != senderHex {
		t.Fatal("decoded sender aliases the input buffer")
	}
}

func TestTicketParamsVector(t *testing.T) {
	var tp TicketParams
	if err := tp.Unmarshal(unhex(t, vectorAParamsHex)); err != nil {
		t.Fatal(err)
	}
	if tp.ExpirationParams == nil || tp.ExpirationParams.CreationRound != 3500 {
		t.Fatalf("expiration params = %+v", tp.ExpirationParams)
	}
	if got := hex.EncodeToString(tp.Marshal()); got != vectorAParamsHex {
		t.Fatalf("re-encoded params differ: %s", got)
	}
	if c := tp.Clone(); !proto.Equal(c, &tp) || &c.Seed[0] == &tp.Seed[0] {
		t.Fatal("Clone is not a deep copy")
	}
}

// TestTicketParamsJSON checks the encoding/json shape BYOC job tokens use
// (docs/protocol.md §4.5): proto field names, base64 bytes, omitempty.
func TestTicketParamsJSON(t *testing.T) {
	const token = `{"ticket_params":{"recipient":"Y/rJIBSU8L0XuYkrn65NUv4703c=","face_value":"AapTXT0MAAA=","win_prob":"AR5UxnKHTa5QUZjAnVs2zxC7gLvD16JaehDud4AA","recipient_rand_hash":"krLNkY3S0uu9ghHfdDsfmruDYiaVYtW0OZGpYzh5pko=","seed":"899nbROb0tx3oNMyCQv83w1e+kbslfhemA9Hvw2lj5Y=","expiration_block":"ATEtKA==","expiration_params":{"creation_round":3500,"creation_round_block_hash":"c7zPmTKiQeVvIyl7xCOgmCYhxN0xk9irpPQXE2vF7yo="}},"price":{"pricePerUnit":1000,"pixelsPerUnit":1}}`
	var tok struct {
		TicketParams *TicketParams `json:"ticket_params,omitempty"`
		Price        *PriceInfo    `json:"price,omitempty"`
	}
	if err := json.Unmarshal([]byte(token), &tok); err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(tok.TicketParams.Recipient) != recipientHex || hex.EncodeToString(tok.TicketParams.ExpirationBlock) != "01312d28" {
		t.Fatalf("decoded %+v", tok.TicketParams)
	}
	out, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != token {
		t.Fatalf("JSON round trip:\n got %s\nwant %s", out, token)
	}
	out, _ = json.Marshal(&PriceInfo{PixelsPerUnit: 1})
	if string(out) != `{"pixelsPerUnit":1}` {
		t.Fatalf("offchain price JSON = %s", out)
	}
}

func TestOrchestratorRequestVector(t *testing.T) {
	var r OrchestratorRequest
	if err := r.Unmarshal(unhex(t, orchRequestHex)); err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(r.Address) != senderHex || len(r.Sig) != 65 || r.Capabilities != nil {
		t.Fatalf("decoded %v", &r)
	}
	if hex.EncodeToString(r.Marshal()) != orchRequestHex {
		t.Fatal("re-encoded request differs")
	}
	r.Capabilities = &Capabilities{}
	r.IgnoreCapacityCheck = true
	var r2 OrchestratorRequest
	if err := r2.Unmarshal(r.Marshal()); err != nil || !proto.Equal(&r, &r2) || r2.Capabilities == nil {
		t.Fatalf("round trip with empty capabilities: %v %v", err, &r2)
	}
}

func TestOrchestratorInfoRoundTrip(t *testing.T) {
	var tp TicketParams
	if err := tp.Unmarshal(unhex(t, vectorAParamsHex)); err != nil {
		t.Fatal(err)
	}
	info := &OrchestratorInfo{
		Transcoder:   "https://127.0.0.1:8935",
		TicketParams: &tp,
		PriceInfo:    &PriceInfo{PricePerUnit: 2000, PixelsPerUnit: 3},
		Address:      unhex(t, recipientHex),
		Capabilities: &Capabilities{Bitstring: []uint64{1}, Capacities: map[uint32]uint32{3: 1, 1: 2, 2: 4},
			Constraints: &Capabilities_Constraints{MinVersion: "0.8", PerCapability: map[uint32]*Capabilities_CapabilityConstraints{
				37: {Models: map[string]*Capabilities_CapabilityConstraints_ModelConstraint{"b": {Warm: true}, "a": {Capacity: 2}}},
			}}},
		AuthToken: &AuthToken{Token: []byte("tok"), SessionId: "abcd", Expiration: 1700000000},
		Hardware: []*HardwareInformation{{}, {Pipeline: "x", GpuInfo: map[string]*GPUComputeInfo{
			"1": {Name: "b"}, "0": {Name: "a", MemoryTotal: 1 << 34}}}},
		Storage:            []*OSInfo{{StorageType: OSInfo_S3, S3Info: &S3OSInfo{Host: "h"}}},
		CapabilitiesPrices: []*PriceInfo{{PricePerUnit: 1, PixelsPerUnit: 1, Capability: 37, Constraint: "model"}},
		Nodes:              []string{"", "https://a"},
	}
	b := info.Marshal()
	var got OrchestratorInfo
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, info) {
		t.Fatalf("round trip:\n got %v\nwant %v", &got, info)
	}
	// Maps are written in key order, so the encoding is stable.
	for range 20 {
		if !bytes.Equal(got.Marshal(), b) {
			t.Fatal("re-encoding differs")
		}
	}
	res := &PaymentResult{Info: info}
	var res2 PaymentResult
	if err := res2.Unmarshal(res.Marshal()); err != nil || !proto.Equal(res2.Info, info) {
		t.Fatalf("PaymentResult round trip: %v", err)
	}
}

// TestTruncationNeverPanics decodes every prefix of real payments.
func TestTruncationNeverPanics(t *testing.T) {
	inputs := [][]byte{unhex(t, vectorAParamsHex)}
	raw, _ := base64.StdEncoding.DecodeString(vectorAHeader)
	inputs = append(inputs, raw)
	for _, in := range inputs {
		for i := 0; i <= len(in); i++ {
			var p Payment
			_ = p.Unmarshal(in[:i])
			var tp TicketParams
			_ = tp.Unmarshal(in[:i])
			var oi OrchestratorInfo
			_ = oi.Unmarshal(in[:i])
		}
	}
}

func TestPaymentClone(t *testing.T) {
	p, err := DecodePaymentHeader(vectorAHeader)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Clone()
	if !proto.Equal(c, p) {
		t.Fatal("clone differs")
	}
	c.TicketSenderParams[0].Sig[0] ^= 1
	c.TicketParams.Seed[0] ^= 1
	if EncodePaymentHeader(p) != vectorAHeader {
		t.Fatal("mutating the clone changed the original")
	}
}
