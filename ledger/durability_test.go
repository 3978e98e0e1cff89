package ledger_test

import (
	"context"
	"testing"
	"time"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
)

// In a batch that is synced, an operation submitted under DeferSync is
// answered once the store has written the batch, before its sync; the
// others only after the sync.
func TestDeferredAnsweredBeforeTheSync(t *testing.T) {
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	s := &slowSync{Store: env.Store, synced: make(chan struct{})}
	l := ledger.New(s, ledger.Options{})
	defer l.Close()
	ctx := context.Background()
	pool := ledger.PoolKey{Sender: "0xs", Capability: "echo"}.Ref()
	answers := ledger.RunCredits(l, []context.Context{ctx, ledger.DeferSync(ctx)}, pool, ledger.Wei(10), []string{"synced", "deferred"})
	select {
	case err := <-answers[1]:
		if err != nil {
			t.Fatalf("deferred credit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deferred credit was not answered while its batch was syncing")
	}
	select {
	case err := <-answers[0]:
		t.Fatalf("the synced credit was answered (%v) before its batch's sync", err)
	default:
	}
	close(s.synced)
	if err := <-answers[0]; err != nil {
		t.Fatalf("synced credit: %v", err)
	}
	if bal, err := l.Balance(ctx, pool); err != nil || bal.Cmp(ledger.Wei(20)) != 0 {
		t.Fatalf("balance %v, %v; want 20", bal, err)
	}
}

// slowSync is a store that writes, says so (ledger.Written), then syncs
// only once synced is closed.
type slowSync struct {
	ledger.Store
	synced chan struct{}
}

func (s *slowSync) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	err := s.Store.Update(ctx, fn)
	if err == nil {
		if f := ledger.Written(ctx); f != nil {
			f()
		}
		<-s.synced
	}
	return err
}
