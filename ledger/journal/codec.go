package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"byoc/ledger"
)

// A record's payload: a version byte (2), then its parts, each a count
// and its items; integers are varints, strings and bytes a length and
// their bytes, amounts an int64 varint or a sign and big-endian bytes,
// times unix microseconds (0 for the zero time). An archive batch, rare
// and large, is JSON. Version 2 adds, at the end, the outbox events and
// their deliveries; a version 1 record (written before the outbox) has
// neither and still decodes. encode and decode are each other's inverse;
// docs/ledger.md has the layout.

const codecVersion = 2

type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }

func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.varint(t.UnixMicro())
}

func (e *enc) amount(a ledger.Amount) {
	if v, ok := a.Int64(); ok {
		e.b = append(e.b, 0)
		e.varint(v)
		return
	}
	b := a.Big()
	if b.Sign() < 0 {
		e.b = append(e.b, 2)
	} else {
		e.b = append(e.b, 1)
	}
	e.bytes(b.Bytes())
}

func (e *enc) ref(r ledger.Ref) {
	e.str(string(r.Kind))
	e.str(r.Sender)
	e.str(r.Name)
	e.str(r.Customer)
}

func (e *enc) account(a *jAccount) {
	e.varint(a.A.ID)
	e.ref(a.A.Ref)
	e.ref(a.A.PoolRef)
	e.varint(a.A.PoolID)
	e.str(string(a.A.State))
	for _, v := range []ledger.Amount{a.A.Balance, a.A.Credited, a.A.Charged, a.A.MovedIn, a.A.MovedOut} {
		e.amount(v)
	}
	e.varint(a.TTL)
	e.time(a.A.OpenedAt)
	e.time(a.A.UpdatedAt)
	e.time(a.A.ExpiresAt)
	e.time(a.A.ClosedAt)
}

// appendEncoded appends the record's payload to b.
func (r *record) appendEncoded(b []byte) ([]byte, error) {
	e := &enc{b: b}
	e.b = append(e.b, codecVersion)
	e.uvarint(uint64(len(r.Created)))
	for i := range r.Created {
		e.account(&r.Created[i])
	}
	e.uvarint(uint64(len(r.Updated)))
	for i := range r.Updated {
		e.account(&r.Updated[i])
	}
	e.uvarint(uint64(len(r.Entries)))
	for i := range r.Entries {
		x := &r.Entries[i]
		e.varint(x.ID)
		e.time(x.At)
		e.str(string(x.Kind))
		e.varint(x.From)
		e.varint(x.To)
		e.amount(x.Amount)
		e.str(x.Key)
		e.str(x.InputHash)
		e.amount(x.BalanceAfter)
	}
	e.uvarint(uint64(len(r.Nonces)))
	for _, s := range r.Nonces {
		e.str(s.Session)
		e.varint(s.Expiry)
		e.varint(int64(s.Count))
		e.varint(s.Read)
		e.uvarint(uint64(len(s.Nonces)))
		for _, n := range s.Nonces {
			e.uvarint(uint64(n))
		}
	}
	e.uvarint(uint64(len(r.Winners)))
	for i := range r.Winners {
		w := &r.Winners[i]
		e.str(w.Key)
		e.str(w.Sender)
		e.str(w.Session)
		e.amount(w.FaceValue)
		e.varint(w.RedeemAfter)
		e.bytes(w.Payload)
		e.ref(w.Account)
		e.time(w.QueuedAt)
		e.str(w.State)
		e.varint(w.AccountID)
	}
	if r.Forget != nil {
		e.b = append(e.b, 1)
		e.varint(*r.Forget)
	} else {
		e.b = append(e.b, 0)
	}
	if r.Archive != nil {
		j, err := json.Marshal(r.Archive)
		if err != nil {
			return nil, err
		}
		e.b = append(e.b, 1)
		e.bytes(j)
	} else {
		e.b = append(e.b, 0)
	}
	e.uvarint(uint64(len(r.Outbox)))
	for i := range r.Outbox {
		x := &r.Outbox[i]
		e.varint(x.ID)
		e.str(x.Key)
		e.str(x.Topic)
		e.str(x.Subject)
		e.time(x.At)
		e.bytes(x.Body)
	}
	e.uvarint(uint64(len(r.Delivered)))
	for _, d := range r.Delivered {
		e.time(d.At)
		e.uvarint(uint64(len(d.IDs)))
		for _, id := range d.IDs {
			e.varint(id)
		}
	}
	// Winner updates come last and only when there are some, so that a
	// record without them is encoded as before they existed (after the
	// outbox, which format 2 always writes).
	if len(r.WinnerUpdates) > 0 {
		j, err := json.Marshal(r.WinnerUpdates)
		if err != nil {
			return nil, err
		}
		e.b = append(e.b, 1)
		e.bytes(j)
	}
	return e.b, nil
}

var errShort = errors.New("record ends early")

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *dec) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that cannot exceed what is left.
func (d *dec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return 0
	}
	return int(n)
}

func (d *dec) raw() []byte {
	n := d.count()
	if d.err != nil {
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str() string { return string(d.raw()) }

func (d *dec) time() time.Time {
	if d.byte() == 0 {
		return time.Time{}
	}
	return time.UnixMicro(d.varint()).UTC()
}

func (d *dec) amount() ledger.Amount {
	switch d.byte() {
	case 0:
		return ledger.Wei(d.varint())
	case 1:
		return ledger.AmountFromBig(new(big.Int).SetBytes(d.raw()))
	case 2:
		return ledger.AmountFromBig(new(big.Int).Neg(new(big.Int).SetBytes(d.raw())))
	}
	d.fail(errors.New("bad amount"))
	return ledger.Amount{}
}

func (d *dec) ref() ledger.Ref {
	return ledger.Ref{Kind: ledger.Kind(d.str()), Sender: d.str(), Name: d.str(), Customer: d.str()}
}

func (d *dec) account() jAccount {
	var a jAccount
	a.A.ID = d.varint()
	a.A.Ref = d.ref()
	a.A.PoolRef = d.ref()
	a.A.PoolID = d.varint()
	a.A.State = ledger.State(d.str())
	for _, p := range []*ledger.Amount{&a.A.Balance, &a.A.Credited, &a.A.Charged, &a.A.MovedIn, &a.A.MovedOut} {
		*p = d.amount()
	}
	a.TTL = d.varint()
	a.A.OpenedAt = d.time()
	a.A.UpdatedAt = d.time()
	a.A.ExpiresAt = d.time()
	a.A.ClosedAt = d.time()
	return a
}

func decode(seq uint64, b []byte) (*record, error) {
	d := &dec{b: b}
	v := d.byte()
	if v != 1 && v != codecVersion {
		return nil, fmt.Errorf("record format %d, this byoc reads 1 to %d", v, codecVersion)
	}
	r := &record{seq: seq}
	for range d.count() {
		r.Created = append(r.Created, d.account())
	}
	for range d.count() {
		r.Updated = append(r.Updated, d.account())
	}
	for range d.count() {
		var x ledger.Entry
		x.ID = d.varint()
		x.At = d.time()
		x.Kind = ledger.EntryKind(d.str())
		x.From = d.varint()
		x.To = d.varint()
		x.Amount = d.amount()
		x.Key = d.str()
		x.InputHash = d.str()
		x.BalanceAfter = d.amount()
		r.Entries = append(r.Entries, x)
	}
	for range d.count() {
		var s ledger.SessionNonces
		s.Session = d.str()
		s.Expiry = d.varint()
		s.Count = int(d.varint())
		s.Read = d.varint()
		for range d.count() {
			s.Nonces = append(s.Nonces, uint32(d.uvarint()))
		}
		r.Nonces = append(r.Nonces, s)
	}
	for range d.count() {
		var w ledger.WinnerRow
		w.Key = d.str()
		w.Sender = d.str()
		w.Session = d.str()
		w.FaceValue = d.amount()
		w.RedeemAfter = d.varint()
		w.Payload = append([]byte{}, d.raw()...)
		w.Account = d.ref()
		w.QueuedAt = d.time()
		w.State = d.str()
		w.AccountID = d.varint()
		r.Winners = append(r.Winners, w)
	}
	if d.byte() == 1 {
		f := d.varint()
		r.Forget = &f
	}
	if d.byte() == 1 {
		var a ledger.ArchiveBatch
		if err := json.Unmarshal(d.raw(), &a); err != nil {
			d.fail(err)
		}
		r.Archive = &a
	}
	if v >= 2 {
		for range d.count() {
			var x ledger.OutboxEvent
			x.ID = d.varint()
			x.Key = d.str()
			x.Topic = d.str()
			x.Subject = d.str()
			x.At = d.time()
			x.Body = append([]byte{}, d.raw()...)
			r.Outbox = append(r.Outbox, x)
		}
		for range d.count() {
			var x delivery
			x.At = d.time()
			for range d.count() {
				x.IDs = append(x.IDs, d.varint())
			}
			r.Delivered = append(r.Delivered, x)
		}
	}
	if d.err == nil && len(d.b) != 0 && d.byte() == 1 {
		if err := json.Unmarshal(d.raw(), &r.WinnerUpdates); err != nil {
			d.fail(err)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(errors.New("trailing bytes"))
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}
