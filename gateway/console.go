package gateway

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"byoc/internal/console"
	"byoc/ledger"
)

// consoleViews are the gateway's pages of the web console
// (docs/console.md): its books, its jobs' holds and the orchestrators'
// selection figures, read as /admin/pools and /admin/orchestrators read
// them.
func (g *Gateway) consoleViews() []console.View {
	lv := console.LedgerViews{L: g.cfg.Ledger, Party: "orchestrator",
		StreamHold: func(r ledger.Ref) bool { return strings.HasPrefix(r.Name, streamHoldPrefix) }}
	return []console.View{
		{Path: console.Overview, Title: "Overview", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			books, err := g.booksTable(ctx)
			if err != nil {
				return console.Page{}, err
			}
			holds, err := lv.Holds(ctx)
			if err != nil {
				return console.Page{}, err
			}
			return console.Page{Title: "Gateway", Note: "pays as " + g.Address() + "; the books are its credit at each orchestrator",
				Figures: []console.Figure{
					{ID: "orchestrators", Label: "orchestrators", Value: console.Int(int64(len(g.Orchestrators())))},
					{ID: "books", Label: "pools in the books", Value: console.Int(int64(len(books.Rows)))},
					{ID: "holds", Label: "open holds", Value: console.Int(int64(len(holds.Rows)))},
				},
				Tables: []console.Table{books, holds}}, nil
		}},
		{Path: console.Jobs, Title: "Jobs", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			t, err := lv.Recent(ctx, 50)
			return console.Page{Title: "Jobs", Tables: []console.Table{t}}, err
		}},
		{Path: console.Job, Load: lv.Statement},
		{Path: console.Streams, Title: "Streams", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			return g.streamsPage(ctx)
		}},
		{Path: console.Stream, Load: func(ctx context.Context, q url.Values) (console.Page, error) {
			return g.streamStatement(ctx, lv, q)
		}},
		{Path: console.Orchestrators, Title: "Orchestrators", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			return console.Page{Title: "Orchestrators", Tables: []console.Table{g.orchestratorsTable()}}, nil
		}},
	}
}

func (g *Gateway) booksTable(ctx context.Context) (console.Table, error) {
	ps, err := g.Pools(ctx)
	t := console.Table{ID: "books", Title: "Books", Note: "the gateway's credit per orchestrator and capability, and the last comparison with the orchestrator's own figure",
		Columns: []string{"orchestrator", "capability", "balance (gwei)", "written down (gwei)", "running", "unconfirmed shortfall (gwei)",
			"orchestrator says (gwei)", "books said (gwei)", "agree", "compared", "from"},
		Empty: "no books yet: they start with the first paid job"}
	for _, p := range ps {
		row := []console.Cell{console.Mono(p.Orchestrator), console.Text(p.Capability), console.Amount(p.Balance), console.Amount(p.WrittenDown),
			console.Int(int64(p.JobsRunning)), console.Amount(p.Suspect)}
		if c := p.Last; c != nil {
			agree := console.Cell{Text: "yes", Class: "ok"}
			switch d := c.Orchestrator.Cmp(c.Books); {
			case d < 0:
				agree = console.Cell{Text: "orchestrator less", Class: "bad"}
			case d > 0:
				agree = console.Cell{Text: "orchestrator more", Class: "warn"}
			}
			if !c.Exact {
				agree.Title = "the orchestrator's figure is a go-livepeer token balance, which saturates"
			}
			row = append(row, console.Amount(c.Orchestrator), console.Amount(c.Books), agree, console.Time(c.At), console.Text(c.Source))
		} else {
			row = append(row, console.Cell{}, console.Cell{}, console.Text("not yet"), console.Cell{}, console.Cell{})
		}
		t.Rows = append(t.Rows, console.Row{Key: p.Orchestrator + "/" + p.Capability, Cells: row})
	}
	return t, err
}

func (g *Gateway) orchestratorsTable() console.Table {
	t := console.Table{ID: "orchestrators", Title: "Orchestrators", Note: "what selection weighs: recent latencies and failures",
		Columns: []string{"url", "address", "token latency", "job latency", "jobs ok", "failures", "last failure", "last error"},
		Empty:   "no orchestrator answered yet"}
	for _, o := range g.Orchestrators() {
		t.Rows = append(t.Rows, console.Row{Key: o.URL, Cells: []console.Cell{console.Mono(o.URL), console.Mono(o.Address),
			{Text: o.TokenLatency, Class: "num"}, {Text: o.JobLatency, Class: "num"}, console.Int(o.Jobs), console.Int(o.Failures),
			console.Time(o.LastFailure), console.Text(o.LastError)}})
	}
	return t
}

// streamStateCell is a stream's state at the gateway.
func streamStateCell(state string) console.Cell {
	switch state {
	case "running":
		return console.Cell{Text: state, Class: "ok"}
	case "starting", "moving":
		return console.Cell{Text: state, Class: "warn"}
	case "stopped":
		return console.Cell{Text: state, Class: "ok", Title: "stopped by its client"}
	}
	return console.Cell{Text: state, Class: "bad"}
}

func eventCell(e *StreamEvent) console.Cell {
	if e == nil {
		return console.Cell{}
	}
	c := console.Cell{Text: e.Type, Title: e.Message}
	if e.Message != "" {
		c.Text += ": " + e.Message
	}
	return c
}

// streamRow is a stream's row: its state and figures (Streams), and its
// hold's account in the books.
func (g *Gateway) streamRow(ctx context.Context, st StreamStatus) (console.Row, error) {
	id := console.Cell{Text: st.ID, Class: "mono"}
	row := []console.Cell{id, console.Text(st.Capability), streamStateCell(st.State), console.Mono(st.Orchestrator)}
	if st.Hold.Kind == ledger.KindJob {
		row[0].Link = console.StreamLink(st.Hold.Sender, st.Hold.Name)
		a, err := g.cfg.Ledger.Account(ctx, st.Hold)
		if err != nil {
			return console.Row{}, err
		}
		owed := console.Cell{}
		if st.Owed != nil {
			owed = console.Amount(*st.Owed)
		}
		row = append(row, console.Amount(a.Balance), owed, console.Amount(st.Paid), console.Amount(a.Charged), console.Outcome(a.State))
	} else {
		row = append(row, console.Cell{}, console.Cell{}, console.Amount(st.Paid), console.Cell{}, console.Cell{})
	}
	last := st.LastEvent
	if st.State != "running" && st.LastError != nil {
		last = st.LastError
	}
	var at time.Time
	if last != nil {
		at = last.Time
	}
	row = append(row, console.Time(at), eventCell(last))
	return console.Row{Key: st.ID, Cells: row}, nil
}

// streamsPage lists the gateway's streams as /admin/streams reads them
// (Streams), with their holds in the books, and those their clients
// stopped lately.
func (g *Gateway) streamsPage(ctx context.Context) (console.Page, error) {
	cols := []string{"stream", "capability", "state", "orchestrator", "held (gwei)", "owed now (gwei)", "paid (gwei)", "charged (gwei)", "hold", "last event at", "last event"}
	open := console.Table{ID: "streams", Title: "Streams", Columns: cols,
		Note:  "held is the stream's hold in the books; owed is what the books would charge it if it ended now (the price of the whole seconds since its start: the books settle a stream at its end, with the orchestrator's figure when it gives one); paid is what its payments were worth",
		Empty: "no stream: a client starts one with POST /process/stream/start"}
	ended := console.Table{ID: "ended", Title: "Stopped streams", Columns: cols,
		Note:  fmt.Sprintf("the latest %d streams their clients stopped, newest first, as they were then (failed and lost ones stay in the table above for 10 minutes)", stoppedKeep),
		Empty: "no stream stopped since the gateway started"}
	running := int64(0)
	for i, st := range g.Streams() {
		if i >= console.Rows {
			open.Note += fmt.Sprintf(" (the first %d; /admin/streams lists them all)", console.Rows)
			break
		}
		if st.State == "running" {
			running++
		}
		r, err := g.streamRow(ctx, st)
		if err != nil {
			return console.Page{}, err
		}
		open.Rows = append(open.Rows, r)
	}
	for _, st := range g.StoppedStreams() {
		r, err := g.streamRow(ctx, st)
		if err != nil {
			return console.Page{}, err
		}
		ended.Rows = append(ended.Rows, r)
	}
	return console.Page{Title: "Streams", Note: "each stream is one hold in the books at the orchestrator running it, topped up by the pay loop",
		Figures: []console.Figure{
			{ID: "running", Label: "running", Value: console.Int(running)},
			{ID: "listed", Label: "listed", Value: console.Int(int64(len(open.Rows)))},
			{ID: "stopped", Label: "stopped (remembered)", Value: console.Int(int64(len(ended.Rows)))},
		},
		Tables: []console.Table{open, ended}}, nil
}

// streamStatement is a stream's hold's statement in the books, with the
// stream's state, what it owes now and its last event.
func (g *Gateway) streamStatement(ctx context.Context, lv console.LedgerViews, q url.Values) (console.Page, error) {
	hold := ledger.JobKey{Sender: q.Get("sender"), JobID: q.Get("job")}.Ref()
	id := strings.TrimPrefix(hold.Name, streamHoldPrefix)
	var live []console.Figure
	find := func(ss []StreamStatus) bool {
		for _, st := range ss {
			if st.Hold == hold {
				live = append(live, console.Figure{ID: "stream-state", Label: "stream", Value: streamStateCell(st.State)})
				if st.Owed != nil {
					live = append(live, console.Figure{ID: "owed", Label: "owed now (gwei)", Value: console.Amount(*st.Owed)})
				}
				last := st.LastEvent
				if st.LastError != nil && st.State != "running" {
					last = st.LastError
				}
				live = append(live, console.Figure{ID: "last-event", Label: "last event", Value: eventCell(last)})
				return true
			}
		}
		return false
	}
	if !find(g.Streams()) {
		find(g.StoppedStreams())
	}
	return lv.StreamStatement(ctx, q, id, live)
}
