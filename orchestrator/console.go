package orchestrator

import (
	"context"
	"net/url"

	"byoc/internal/console"
	"byoc/ledger"
)

// consoleViews are the orchestrator's pages of the web console
// (docs/console.md): reads of its ledger and registry, nothing more.
func (o *Orchestrator) consoleViews() []console.View {
	lv := console.LedgerViews{L: o.cfg.Ledger, Party: "sender"}
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
		{Path: console.Capabilities, Title: "Capabilities", Load: func(ctx context.Context, _ url.Values) (console.Page, error) {
			return o.capabilitiesPage(), nil
		}},
	}
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
