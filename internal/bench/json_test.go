package bench

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The report's latencies are seconds in JSON, and no problems is [].
func TestReportJSON(t *testing.T) {
	r := Report{Problems: []string{}, Stack: Phase{Name: "stack", P50: 1500 * time.Microsecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Mean: time.Second}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"p50_seconds":0.0015`, `"p90_seconds":0.002`, `"mean_seconds":1`, `"problems":[]`, `"name":"stack"`} {
		if !strings.Contains(s, want) {
			t.Errorf("report JSON lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, `"p50":`) || strings.Contains(s, "1500000") {
		t.Errorf("report JSON has nanoseconds:\n%s", s)
	}
}
