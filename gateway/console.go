package gateway

import (
	"context"
	"net/url"

	"byoc/internal/console"
)

// consoleViews are the gateway's pages of the web console
// (docs/console.md): its books, its jobs' holds and the orchestrators'
// selection figures, read as /admin/pools and /admin/orchestrators read
// them.
func (g *Gateway) consoleViews() []console.View {
	lv := console.LedgerViews{L: g.cfg.Ledger, Party: "orchestrator"}
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
