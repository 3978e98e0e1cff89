package journal

import (
	"slices"
	"sort"
	"time"

	"byoc/ledger"
)

// mem is the ledger's state in memory: every pool, every open job, and
// what the projection has not caught up with yet (final jobs, entries with
// idempotency keys); every live ticket session with its nonces; every
// undelivered outbox event. What the projection holds is dropped from it,
// so it is bounded by what is open, not by history.
type mem struct {
	// names holds every reference and key ever held (see bloom).
	names    *bloom
	accts    map[ledger.Ref]*memAcct
	keys     map[string]*memEntry
	sessions map[string]*memSession
	// outbox holds every undelivered event, and delivered ones until the
	// projection holds their delivery; outboxKeys their keys.
	outbox     map[int64]*memEvent
	outboxKeys map[string]int64
	// pending lists each topic's undelivered events' IDs in order, so that
	// a sink reads its own topic's oldest without going over the others'
	// (a usage sink that is down can leave millions); a delivered ID stays
	// until stale counts half of its list, which is then compacted.
	pending map[string]*topicIDs
}

type topicIDs struct {
	ids   []int64
	stale int
}

type memEvent struct {
	e         ledger.OutboxEvent
	delivered uint64 // record that delivered it; 0: undelivered
}

type memAcct struct {
	a   ledger.Account
	seq uint64 // record that last changed it; 0: loaded from the tables
}

type memEntry struct {
	e   ledger.Entry
	seq uint64
}

type memSession struct {
	expiry int64
	nonces map[uint32]struct{}
}

func newMem(filterBytes int) *mem {
	return &mem{names: newBloom(filterBytes), accts: map[ledger.Ref]*memAcct{}, keys: map[string]*memEntry{}, sessions: map[string]*memSession{},
		outbox: map[int64]*memEvent{}, outboxKeys: map[string]int64{}, pending: map[string]*topicIDs{}}
}

// apply makes record r's changes.
func (m *mem) apply(r *record) {
	for i := range r.Created {
		a := r.Created[i].account()
		m.accts[a.Ref] = &memAcct{a: a, seq: r.seq}
		m.names.add(nameRef, a.Ref.Encode())
	}
	for i := range r.Updated {
		a := r.Updated[i].account()
		if ma := m.accts[a.Ref]; ma != nil {
			// In place: readers copy what they read under the lock.
			ma.a, ma.seq = a, r.seq
		} else {
			m.accts[a.Ref] = &memAcct{a: a, seq: r.seq}
		}
	}
	var mes []memEntry // the record's keyed entries, one allocation
	for i := range r.Entries {
		e := &r.Entries[i]
		if e.Key == "" {
			continue
		}
		if mes == nil {
			mes = make([]memEntry, 0, len(r.Entries)-i)
		}
		mes = append(mes, memEntry{e: *e, seq: r.seq})
		m.keys[e.Key] = &mes[len(mes)-1]
		m.names.add(nameKey, e.Key)
	}
	for _, sn := range r.Nonces {
		s := m.sessions[sn.Session]
		if s == nil {
			s = &memSession{expiry: sn.Expiry, nonces: make(map[uint32]struct{}, len(sn.Nonces))}
			m.sessions[sn.Session] = s
		}
		if s.expiry < sn.Expiry {
			s.expiry = sn.Expiry
		}
		for _, n := range sn.Nonces {
			s.nonces[n] = struct{}{}
		}
	}
	for _, e := range r.Outbox {
		m.addEvent(e)
	}
	for _, d := range r.Delivered {
		for _, id := range d.IDs {
			if me := m.outbox[id]; me != nil && me.delivered == 0 {
				me.delivered = r.seq
				me.e.DeliveredAt = d.At
				m.delivered(me.e.Topic)
			}
		}
	}
	if r.Forget != nil {
		for name, s := range m.sessions {
			if s.expiry <= *r.Forget {
				delete(m.sessions, name)
			}
		}
	}
	if r.Archive != nil {
		ids := map[int64]bool{}
		for _, id := range r.Archive.JobIDs {
			ids[id] = true
		}
		for ref, a := range m.accts {
			if ids[a.a.ID] {
				delete(m.accts, ref)
			}
		}
	}
}

// evict drops what record r put in memory that the projection now holds
// and that is not live: final jobs, keyed entries (unless changed by a
// later record).
func (m *mem) evict(r *record) {
	drop := func(j *jAccount) {
		ref := j.A.Ref
		if ma := m.accts[ref]; ma != nil && ma.seq == r.seq && ma.a.Ref.Kind == ledger.KindJob && ma.a.State.IsFinal() {
			delete(m.accts, ref)
		}
	}
	for i := range r.Created {
		drop(&r.Created[i])
	}
	for i := range r.Updated {
		drop(&r.Updated[i])
	}
	for _, e := range r.Entries {
		if me := m.keys[e.Key]; e.Key != "" && me != nil && me.seq == r.seq {
			delete(m.keys, e.Key)
		}
	}
	for _, d := range r.Delivered {
		for _, id := range d.IDs {
			if me := m.outbox[id]; me != nil && me.delivered == r.seq {
				delete(m.outbox, id)
				delete(m.outboxKeys, me.e.Key)
			}
		}
	}
}

// addEvent holds an undelivered outbox event.
func (m *mem) addEvent(e ledger.OutboxEvent) {
	m.outbox[e.ID] = &memEvent{e: e}
	m.outboxKeys[e.Key] = e.ID
	m.names.add(nameOutbox, e.Key)
	t := m.pending[e.Topic]
	if t == nil {
		t = &topicIDs{}
		m.pending[e.Topic] = t
	}
	// Events come in ID order (records, and the tables' scan at start).
	if n := len(t.ids); n == 0 || t.ids[n-1] < e.ID {
		t.ids = append(t.ids, e.ID)
	} else if i, found := slices.BinarySearch(t.ids, e.ID); !found {
		t.ids = slices.Insert(t.ids, i, e.ID)
	}
}

// delivered counts an event of topic delivered, and compacts the topic's
// list once half of it is delivered.
func (m *mem) delivered(topic string) {
	t := m.pending[topic]
	if t == nil {
		return
	}
	t.stale++
	if t.stale < 64 || 2*t.stale < len(t.ids) {
		return
	}
	t.ids = slices.DeleteFunc(t.ids, func(id int64) bool {
		me := m.outbox[id]
		return me == nil || me.delivered != 0
	})
	t.stale = 0
	if len(t.ids) == 0 {
		delete(m.pending, topic)
	}
}

// pendingOutbox returns the undelivered events of topics (all when none)
// with an ID above after, by ID, at most limit (0: all), their bodies
// copied.
func (m *mem) pendingOutbox(after int64, limit int, topics []string) []ledger.OutboxEvent {
	var lists []*topicIDs
	if len(topics) == 0 {
		for _, t := range m.pending {
			lists = append(lists, t)
		}
	} else {
		for i, topic := range topics {
			if t := m.pending[topic]; t != nil && !slices.Contains(topics[:i], topic) {
				lists = append(lists, t)
			}
		}
	}
	var ids []int64
	for _, t := range lists {
		i, _ := slices.BinarySearch(t.ids, after+1)
		n := 0
		for _, id := range t.ids[i:] {
			if limit > 0 && n == limit {
				break
			}
			if me := m.outbox[id]; me != nil && me.delivered == 0 {
				ids = append(ids, id)
				n++
			}
		}
	}
	if len(lists) > 1 {
		slices.Sort(ids)
	}
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]ledger.OutboxEvent, len(ids))
	for i, id := range ids {
		out[i] = m.outbox[id].e
		out[i].Body = append([]byte{}, out[i].Body...)
	}
	return out
}

func (m *mem) expiredJobs(now time.Time, limit int) []ledger.Ref {
	var due []*ledger.Account
	for _, ma := range m.accts {
		a := &ma.a
		if a.Ref.Kind == ledger.KindJob && a.State == ledger.StateOpen && !a.ExpiresAt.IsZero() && !a.ExpiresAt.After(now) {
			due = append(due, a)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].ExpiresAt.Equal(due[j].ExpiresAt) {
			return due[i].ExpiresAt.Before(due[j].ExpiresAt)
		}
		return due[i].ID < due[j].ID
	})
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	out := make([]ledger.Ref, len(due))
	for i, a := range due {
		out[i] = a.Ref
	}
	return out
}

func (m *mem) nextExpiry() (time.Time, bool) {
	var next time.Time
	found := false
	for _, ma := range m.accts {
		a := &ma.a
		if a.Ref.Kind == ledger.KindJob && a.State == ledger.StateOpen && !a.ExpiresAt.IsZero() {
			if !found || a.ExpiresAt.Before(next) {
				next, found = a.ExpiresAt, true
			}
		}
	}
	return next, found
}

func (m *mem) nonceState(queries []ledger.NonceQuery) map[string]ledger.SessionState {
	out := map[string]ledger.SessionState{}
	for _, q := range queries {
		s := m.sessions[q.Session]
		if s == nil {
			continue
		}
		st := out[q.Session]
		st.Count, st.Expiry = len(s.nonces), s.expiry
		for _, n := range q.Nonces {
			if _, ok := s.nonces[n]; ok {
				st.Recorded = append(st.Recorded, n)
			}
		}
		out[q.Session] = st
	}
	return out
}
