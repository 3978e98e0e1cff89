package journal

import (
	"time"

	"byoc/ledger"
)

// record is what one Update wrote: the payload of one journal record and
// one step of the projection. Its parts are applied in this order.
type record struct {
	seq     uint64
	Created []jAccount             `json:"c,omitempty"`
	Updated []jAccount             `json:"u,omitempty"`
	Entries []ledger.Entry         `json:"e,omitempty"`
	Nonces  []ledger.SessionNonces `json:"n,omitempty"`
	Winners []ledger.WinnerRow     `json:"w,omitempty"`
	// Outbox are events written with the record's money moves, with the
	// IDs the store assigned; Delivered marks undelivered ones delivered.
	Outbox    []ledger.OutboxEvent `json:"o,omitempty"`
	Delivered []delivery           `json:"d,omitempty"`
	// Forget is ForgetSessions' expiry; Archive an archive batch. A record
	// with either carries nothing else and is projected on its own.
	Forget  *int64               `json:"f,omitempty"`
	Archive *ledger.ArchiveBatch `json:"a,omitempty"`
	// WinnerUpdates are winning tickets' redemption changes, applied after
	// Winners in order (each from the state it names).
	WinnerUpdates []winnerUpdate `json:"wu,omitempty"`
}

// winnerUpdate is one ledger.Tx.UpdateWinner.
type winnerUpdate struct {
	Key  string              `json:"k"`
	From string              `json:"f"`
	U    ledger.WinnerUpdate `json:"u"`
	Now  time.Time           `json:"t"`
}

// delivery is one MarkDelivered: the events' IDs (each undelivered when
// the record was written) and the time.
type delivery struct {
	At  time.Time `json:"at"`
	IDs []int64   `json:"ids"`
}

// jAccount carries an account's TTL exactly (Account's JSON has it in
// seconds).
type jAccount struct {
	A   ledger.Account `json:"a"`
	TTL int64          `json:"t"`
}

func wrap(a *ledger.Account) jAccount {
	j := jAccount{A: *a, TTL: int64(a.TTL)}
	j.A.TTL = 0 // one place for it: TTL
	return j
}

func (j *jAccount) account() ledger.Account {
	a := j.A
	a.TTL = time.Duration(j.TTL)
	return a
}

func (r *record) empty() bool {
	return len(r.Created) == 0 && len(r.Updated) == 0 && len(r.Entries) == 0 && len(r.Nonces) == 0 &&
		len(r.Winners) == 0 && len(r.WinnerUpdates) == 0 && len(r.Outbox) == 0 && len(r.Delivered) == 0 && r.Forget == nil && r.Archive == nil
}

func (r *record) special() bool { return r.Forget != nil || r.Archive != nil }
