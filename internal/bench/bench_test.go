package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A short run: every phase completes jobs without errors, payments flow,
// and the gateway's books agree with the orchestrator's ledger.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole stack")
	}
	r, err := Run(context.Background(), Config{Concurrency: 4, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Phase{r.Direct, r.OrchestratorFree, r.StackFree, r.Orchestrator, r.Stack} {
		if p.Name == "" || p.Jobs == 0 || p.Errors != 0 || p.P50 <= 0 || p.P99 < p.P50 || p.CPU <= 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	if x := r.Ratios; x.PaidOverFree <= 0 || x.StackOverDirect <= 0 || x.FreeStackOverDirect <= 0 || x.OrchestratorFreeOverDirect <= 0 || x.CPUPaidOverFree <= 0 {
		t.Errorf("ratios %+v", x)
	}
	if !r.BooksAgree || len(r.Problems) > 0 || r.Tickets == 0 {
		t.Errorf("books agree %v (%s), tickets %d, problems %v", r.BooksAgree, r.BooksDetail, r.Tickets, r.Problems)
	}
	var b strings.Builder
	r.Print(&b)
	if !strings.Contains(b.String(), "paid ÷ free stack") || !strings.Contains(b.String(), "books agree:       true") {
		t.Errorf("report:\n%s", b.String())
	}
}

// A free capability: every phase completes jobs, nothing is paid, and
// both ledgers stay empty and consistent.
func TestRunFree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole stack")
	}
	r, err := Run(context.Background(), Config{Free: true, Concurrency: 4, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Phase{r.Direct, r.OrchestratorFree, r.StackFree} {
		if p.Name == "" || p.Jobs == 0 || p.Errors != 0 || p.P50 <= 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	if r.Orchestrator.Name != "" || r.Stack.Name != "" || r.Ratios.PaidOverFree != 0 {
		t.Errorf("paid phases ran with Free: %+v %+v %+v", r.Orchestrator, r.Stack, r.Ratios)
	}
	if !r.BooksAgree || len(r.Problems) > 0 || r.PaidWei != "0" || r.ChargedWei != "0" {
		t.Errorf("books agree %v (%s), paid %s charged %s, problems %v", r.BooksAgree, r.BooksDetail, r.PaidWei, r.ChargedWei, r.Problems)
	}
	var b strings.Builder
	r.Print(&b)
	if !strings.Contains(b.String(), "free capability only") || strings.Contains(b.String(), "paid ÷ free") {
		t.Errorf("report:\n%s", b.String())
	}
}
