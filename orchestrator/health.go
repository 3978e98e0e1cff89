package orchestrator

import "context"

// Ready reports whether the orchestrator can admit jobs: its ledger
// answers a read. /readyz on the admin listener serves it.
func (o *Orchestrator) Ready(ctx context.Context) error {
	return o.cfg.Ledger.Ready(ctx)
}
