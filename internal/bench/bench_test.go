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
	for _, p := range []Phase{r.Direct, r.Orchestrator, r.Stack} {
		if p.Jobs == 0 || p.Errors != 0 || p.P50 <= 0 || p.P99 < p.P50 {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	if !r.BooksAgree || len(r.Problems) > 0 || r.Tickets == 0 {
		t.Errorf("books agree %v (%s), tickets %d, problems %v", r.BooksAgree, r.BooksDetail, r.Tickets, r.Problems)
	}
	var b strings.Builder
	r.Print(&b)
	if !strings.Contains(b.String(), "stack throughput") || !strings.Contains(b.String(), "books agree:      true") {
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
	for _, p := range []Phase{r.Direct, r.Orchestrator, r.Stack} {
		if p.Jobs == 0 || p.Errors != 0 || p.P50 <= 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	if !r.BooksAgree || len(r.Problems) > 0 || r.PaidWei != "0" || r.ChargedWei != "0" {
		t.Errorf("books agree %v (%s), paid %s charged %s, problems %v", r.BooksAgree, r.BooksDetail, r.PaidWei, r.ChargedWei, r.Problems)
	}
	var b strings.Builder
	r.Print(&b)
	if !strings.Contains(b.String(), "free capability") {
		t.Errorf("report:\n%s", b.String())
	}
}
