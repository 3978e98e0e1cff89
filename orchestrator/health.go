package orchestrator

import (
	"context"
	"fmt"

	"byoc/ledger"
)

// Ready reports whether the orchestrator can admit jobs: its ledger
// answers a read. /readyz on the admin listener serves it.
func (o *Orchestrator) Ready(ctx context.Context) error {
	if _, err := o.cfg.Ledger.List(ctx, ledger.AccountFilter{Kind: ledger.KindPool, Limit: 1}); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
