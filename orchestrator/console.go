package orchestrator

import (
	"context"
	"fmt"
	"net/url"

	"byoc/internal/console"
	"byoc/ledger"
)

// consoleViews are the orchestrator's pages of the web console
// (docs/console.md): reads of its ledger and registry, nothing more.
func (o *Orchestrator) consoleViews() []console.View {
	lv := console.LedgerViews{L: o.cfg.Ledger, Party: "sender", StreamHold: o.isStreamHold}
	return []console.View{
		{Path: console.Overview, Title: "Overview", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			pools, err := lv.Pools(ctx)
			if err != nil {
				return console.Page{}, err
			}
			holds, err := lv.Holds(ctx)
			if err != nil {
				return console.Page{}, err
			}
			queued, err := o.cfg.Ledger.Winners(ctx, ledger.WinnerQueued, console.Rows)
			if err != nil {
				return console.Page{}, err
			}
			face := ledger.Amount{}
			for _, w := range queued {
				face = face.Add(w.FaceValue)
			}
			return console.Page{Title: "Orchestrator", Note: "the money senders prepaid (pools) and what running jobs hold",
				Figures: []console.Figure{
					{ID: "pools", Label: "pools", Value: console.Int(int64(len(pools.Rows)))},
					{ID: "holds", Label: "open holds", Value: console.Int(int64(len(holds.Rows)))},
					{ID: "queued", Label: "winning tickets queued", Value: console.Int(int64(len(queued)))},
					{ID: "queued-face", Label: "their face value (gwei)", Value: console.Amount(face)},
				},
				Tables: []console.Table{pools, holds}}, nil
		}},
		{Path: console.Jobs, Title: "Jobs", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			t, err := lv.Recent(ctx, 50)
			return console.Page{Title: "Jobs", Tables: []console.Table{t}}, err
		}},
		{Path: console.Job, Load: lv.Statement},
		{Path: console.Winners, Title: "Winners", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			t, ws, err := lv.Winners(ctx)
			n := map[string]int64{}
			for _, w := range ws {
				n[w.State]++
			}
			return console.Page{Title: "Winners", Note: "tickets that won: each can be redeemed on chain for its face value",
				Figures: []console.Figure{
					{ID: "queued", Label: "queued", Value: console.Int(n[ledger.WinnerQueued])},
					{ID: "submitted", Label: "submitted", Value: console.Int(n[ledger.WinnerSubmitted])},
					{ID: "redeemed", Label: "redeemed", Value: console.Int(n[ledger.WinnerRedeemed])},
					{ID: "dead", Label: "dead", Value: console.Int(n[ledger.WinnerDead])},
				},
				Tables: []console.Table{t}}, err
		}},
		{Path: console.Streams, Title: "Streams", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			return o.streamsPage(ctx, lv)
		}},
		{Path: console.Stream, Load: func(ctx context.Context, q url.Values) (console.Page, error) {
			return o.streamStatement(ctx, lv, q)
		}},
		{Path: console.Capabilities, Title: "Capabilities", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			return o.capabilitiesPage(), nil
		}},
	}
}

// isStreamHold reports whether a hold is a running or remembered
// stream's (a stream's hold is a job whose ID is the stream's).
func (o *Orchestrator) isStreamHold(r ledger.Ref) bool {
	if s := o.streams.get(r.Name, r.Sender); s != nil && s.money.Hold() == r {
		return true
	}
	for _, e := range o.EndedStreams() {
		if e.Hold == r {
			return true
		}
	}
	return false
}

// streamStateCell is a running stream's state as the console shows it.
func streamStateCell(s StreamInfo) console.Cell {
	if s.DrySince.IsZero() {
		return console.Cell{Text: "running", Class: "ok"}
	}
	return console.Cell{Text: "dry since " + s.DrySince.UTC().Format("15:04:05"), Class: "bad",
		Title: "its last settlement could not be charged: it is stopped when the grace passes unless a payment covers what it owes"}
}

// whyEnded says why a stream stopped, for people.
func whyEnded(reason string) console.Cell {
	switch reason {
	case StopByGateway:
		return console.Cell{Text: "stopped by the gateway", Class: "ok", Title: reason}
	case StopInsufficientFunds:
		return console.Cell{Text: "insufficient balance", Class: "bad", Title: reason + ": it ran dry and the grace passed"}
	case StopHoldExpired:
		return console.Cell{Text: "hold expired", Class: "bad", Title: reason + ": no settlement for the hold's TTL"}
	}
	return console.Cell{Text: reason, Class: "warn"}
}

// streamsPage lists the running streams as /admin/streams reads them
// (Streams: what each owes now, at the ledger's time) with their holds'
// accounts, and the latest stopped ones with why they stopped.
func (o *Orchestrator) streamsPage(ctx context.Context, lv console.LedgerViews) (console.Page, error) {
	infos, err := o.Streams(ctx)
	if err != nil {
		return console.Page{}, err
	}
	open := console.Table{ID: "streams", Title: "Open streams",
		Note: "owed is price × the whole seconds since the last settlement, charged at the next one (a payment, a settlement tick, the stop); left is the hold less what is owed",
		Columns: []string{"stream", "sender", "capability", "state", "held (gwei)", "owed now (gwei)", "left (gwei)",
			"paid by tickets (gwei)", "reserved (gwei)", "charged (gwei)", "opened", "expires"},
		Empty: "no stream is running"}
	dry := int64(0)
	for i, s := range infos {
		if i >= console.Rows {
			open.Note += fmt.Sprintf(" (the first %d; /admin/streams lists them all)", console.Rows)
			break
		}
		if !s.DrySince.IsZero() {
			dry++
		}
		link := console.Cell{Text: s.ID, Class: "mono", Link: console.StreamLink(s.Hold.Sender, s.Hold.Name)}
		row := []console.Cell{link, console.Mono(s.Sender), console.Text(s.Capability), streamStateCell(s)}
		if s.Hold.Kind != ledger.KindJob {
			link.Link = ""
			row[0] = link
			row = append(row, console.Text("free"), console.Amount(s.Owed), console.Cell{}, console.Cell{}, console.Cell{}, console.Amount(s.Charged), console.Cell{}, console.Cell{})
		} else {
			a, err := o.cfg.Ledger.Account(ctx, s.Hold)
			if err != nil {
				return console.Page{}, err
			}
			row = append(row, console.Amount(a.Balance), console.Amount(s.Owed), console.Amount(s.Balance),
				console.Amount(a.Credited), console.Amount(a.MovedIn), console.Amount(s.Charged), console.Time(a.OpenedAt), console.Time(a.ExpiresAt))
		}
		open.Rows = append(open.Rows, console.Row{Key: s.ID, Cells: row})
	}
	ended := console.Table{ID: "ended", Title: "Ended streams", Note: fmt.Sprintf("the latest %d this process stopped, newest first; their holds' statements stay in the ledger", endedKeep),
		Columns: []string{"stream", "sender", "capability", "why it ended", "ended", "hold", "paid by tickets (gwei)", "reserved (gwei)", "charged (gwei)", "released (gwei)"},
		Empty:   "no stream has ended since the orchestrator started"}
	for _, e := range o.EndedStreams() {
		row := []console.Cell{{Text: e.ID, Class: "mono", Link: console.StreamLink(e.Hold.Sender, e.Hold.Name)}, console.Mono(e.Sender),
			console.Text(e.Capability), whyEnded(e.Reason), console.Time(e.At)}
		if e.Hold.Kind != ledger.KindJob {
			row[0].Link = ""
			row = append(row, console.Text("free"), console.Cell{}, console.Cell{}, console.Cell{}, console.Cell{})
		} else {
			a, err := o.cfg.Ledger.Account(ctx, e.Hold)
			if err != nil {
				return console.Page{}, err
			}
			row = append(row, console.Outcome(a.State), console.Amount(a.Credited), console.Amount(a.MovedIn), console.Amount(a.Charged), console.Amount(a.MovedOut))
		}
		ended.Rows = append(ended.Rows, console.Row{Key: e.ID, Cells: row})
	}
	return console.Page{Title: "Streams", Note: "each stream is one hold in the ledger, billed by elapsed time at the price pinned at its start",
		Figures: []console.Figure{
			{ID: "open", Label: "open streams", Value: console.Int(int64(len(infos)))},
			{ID: "dry", Label: "dry", Value: console.Int(dry)},
			{ID: "ended", Label: "ended (remembered)", Value: console.Int(int64(len(ended.Rows)))},
		},
		Tables: []console.Table{open, ended}}, nil
}

// streamStatement is a stream's statement: its hold's, with what it owes
// now while it runs and why it ended once it has.
func (o *Orchestrator) streamStatement(ctx context.Context, lv console.LedgerViews, q url.Values) (console.Page, error) {
	id, sender := q.Get("job"), q.Get("sender")
	var live []console.Figure
	s, running, err := o.StreamOf(ctx, id, sender)
	if err != nil {
		return console.Page{}, err
	}
	if running {
		live = append(live, console.Figure{ID: "stream-state", Label: "stream", Value: streamStateCell(s)},
			console.Figure{ID: "owed", Label: "owed now (gwei)", Value: console.Amount(s.Owed)},
			console.Figure{ID: "left", Label: "left: held less owed (gwei)", Value: console.Amount(s.Balance)})
	}
	for _, e := range o.EndedStreams() {
		if e.ID == id && e.Hold.Sender == sender && !running && live == nil {
			live = append(live, console.Figure{ID: "why", Label: "why it ended", Value: whyEnded(e.Reason)},
				console.Figure{ID: "ended-at", Label: "ended", Value: console.Time(e.At)})
		}
	}
	return lv.StreamStatement(ctx, q, id, live)
}

func (o *Orchestrator) capabilitiesPage() console.Page {
	caps := console.Table{ID: "capabilities", Title: "Capabilities", Note: "what workers registered; the price is the latest registration's",
		Columns: []string{"capability", "price (wei/s)", "capacity", "available", "workers"},
		Empty:   "no capability registered: start a worker with --orchestrator and the orchestrator's secret"}
	for _, c := range o.reg.list() {
		caps.Rows = append(caps.Rows, console.Row{Key: c.name, Cells: []console.Cell{console.Text(c.name),
			{Text: c.price.RatString(), Class: "num"}, console.Int(int64(c.capacity)), console.Int(int64(c.available)), console.Int(int64(c.workers))}})
	}
	workers := console.Table{ID: "workers", Title: "Workers", Columns: []string{"capability", "worker", "capacity", "running"},
		Empty: "no workers"}
	for _, w := range o.reg.workersList() {
		workers.Rows = append(workers.Rows, console.Row{Key: w.capability + " " + w.url, Cells: []console.Cell{console.Text(w.capability),
			console.Mono(w.url), console.Int(int64(w.capacity)), console.Int(int64(w.load))}})
	}
	return console.Page{Title: "Capabilities and workers", Tables: []console.Table{caps, workers}}
}

// workerInfo is a snapshot of one registered worker.
type workerInfo struct {
	capability, url string
	capacity, load  int
}

// workersList returns every registered worker, by capability.
func (r *registry) workersList() []workerInfo {
	var out []workerInfo
	for _, c := range r.list() {
		r.mu.Lock()
		if cp := r.caps[c.name]; cp != nil {
			for _, w := range cp.workers {
				out = append(out, workerInfo{c.name, w.url, w.capacity, w.load})
			}
		}
		r.mu.Unlock()
	}
	return out
}
