package postgres

import (
	"fmt"
	"testing"
)

// statementName gives a statement the same short name every time, another
// statement another, and prepares at most maxPrepared statements: beyond,
// a new one runs unprepared.
func TestStatementNames(t *testing.T) {
	statementMu.Lock()
	saved := statementNames
	statementNames = map[string]string{}
	statementMu.Unlock()
	t.Cleanup(func() {
		statementMu.Lock()
		statementNames = saved
		statementMu.Unlock()
	})
	a, okA := statementName("SELECT * FROM byoc_prefetch($1, $2, $3)")
	b, okB := statementName("SELECT * FROM byoc_write_rows($1)")
	again, okAgain := statementName("SELECT * FROM byoc_prefetch($1, $2, $3)")
	if !okA || !okB || !okAgain || a != again || a == b || len(a) > 63 || len(b) > 63 {
		t.Fatalf("names %q %v, %q %v, again %q %v", a, okA, b, okB, again, okAgain)
	}
	for i := 2; i < maxPrepared; i++ {
		if _, ok := statementName(fmt.Sprint("SELECT ", i)); !ok {
			t.Fatalf("statement %d not prepared", i)
		}
	}
	if n, ok := statementName("SELECT 'one too many'"); ok {
		t.Fatalf("statement %d prepared as %q; want it unprepared", maxPrepared+1, n)
	}
	if n, ok := statementName("SELECT * FROM byoc_write_rows($1)"); !ok || n != b {
		t.Fatalf("a prepared statement lost its name once full: %q %v", n, ok)
	}
}
