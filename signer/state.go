package signer

import (
	"encoding/json"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ethsig"
)

// State is the signed session state a client carries from one
// /generate-live-payment call to the next. Its fields, their names and
// their order are go-livepeer's (docs/signer.md, "State"), so a state made
// by either signer parses in the other; the signature covers the exact
// bytes sent, never a re-encoding.
type State struct {
	StateID              string
	PMSessionID          string
	LastUpdate           time.Time
	OrchestratorAddress  common.Address
	App                  string
	AuthExpiry           int64
	SenderNonce          uint32
	Balance              string
	InitialPricePerUnit  int64
	InitialPixelsPerUnit int64
	Type                 string
	SequenceNumber       uint64
	AuthID               string
}

// StateSig is a state's bytes and the signer's personal-sign signature over
// them, as they travel (base64 in JSON).
type StateSig struct {
	State []byte
	Sig   []byte
}

// RemotePaymentStateSig is StateSig under go-livepeer's type name, which
// shows in JSON decoding errors.
type RemotePaymentStateSig = StateSig

// seal encodes st and signs the bytes with key.
func seal(key ethsig.Signer, st *State) (StateSig, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return StateSig{}, err
	}
	sig, err := key.SignPersonal(b)
	if err != nil {
		return StateSig{}, err
	}
	return StateSig{State: b, Sig: sig}, nil
}
