package bench

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The report's latencies are seconds in JSON, and no problems is [].
func TestReportJSON(t *testing.T) {
	r := Report{Problems: []string{}, Stack: Phase{Name: "stack", Jobs: 4, P50: 1500 * time.Microsecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Mean: time.Second, CPU: 2 * time.Millisecond}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"p50_seconds":0.0015`, `"p90_seconds":0.002`, `"mean_seconds":1`, `"problems":[]`, `"name":"stack"`,
		`"cpu_seconds":0.002`, `"cpu_us_per_job":500`} {
		if !strings.Contains(s, want) {
			t.Errorf("report JSON lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, `"p50":`) || strings.Contains(s, "1500000") {
		t.Errorf("report JSON has nanoseconds:\n%s", s)
	}
}

// The JSON report has every phase and the ratios under their names.
func TestReportJSONShape(t *testing.T) {
	r := Report{Problems: []string{}}
	r.Ratios = r.ratios()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"direct", "orchestrator_free", "stack_free", "orchestrator", "stack", "ratios", "tickets", "books_agree", "problems"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	var ratios map[string]float64
	if err := json.Unmarshal(m["ratios"], &ratios); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"paid_over_free", "stack_over_direct", "free_stack_over_direct", "orchestrator_free_over_direct",
		"cpu_paid_over_free", "payment_added_p50_seconds", "stack_added_p50_seconds"} {
		if _, ok := ratios[k]; !ok {
			t.Errorf("no ratio %q in %s", k, m["ratios"])
		}
	}
}

// The ratios are the phases' figures divided as documented; a phase that
// did not run gives 0, not a division by zero.
func TestRatios(t *testing.T) {
	r := Report{
		Direct:           Phase{Name: "direct", Jobs: 100, JobsPerSecond: 10_000, P50: 100 * time.Microsecond},
		OrchestratorFree: Phase{Name: "orch-free", Jobs: 30, JobsPerSecond: 2_500},
		StackFree:        Phase{Name: "stack-free", Jobs: 20, JobsPerSecond: 2_000, P50: 700 * time.Microsecond, CPU: 20 * 300 * time.Microsecond},
		Stack:            Phase{Name: "stack", Jobs: 10, JobsPerSecond: 1_200, P50: 1200 * time.Microsecond, CPU: 10 * 450 * time.Microsecond},
	}
	x := r.ratios()
	near := func(name string, got, want float64) {
		if d := got - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("paid over free", x.PaidOverFree, 0.6)
	near("stack over direct", x.StackOverDirect, 0.12)
	near("free stack over direct", x.FreeStackOverDirect, 0.2)
	near("orch free over direct", x.OrchestratorFreeOverDirect, 0.25)
	near("CPU paid over free", x.CPUPaidOverFree, 1.5)
	if x.PaymentAddedP50 != 500*time.Microsecond || x.StackAddedP50 != 1100*time.Microsecond {
		t.Errorf("added p50: payment %v, stack %v", x.PaymentAddedP50, x.StackAddedP50)
	}
	if got := r.Stack.CPUPerJob(); got != 450*time.Microsecond {
		t.Errorf("CPU per job %v", got)
	}

	// Free only: no paid phases, the stack's added latency is the free one's.
	r.Stack = Phase{}
	x = r.ratios()
	if x.PaidOverFree != 0 || x.StackOverDirect != 0 || x.CPUPaidOverFree != 0 || x.PaymentAddedP50 != 0 || x.StackAddedP50 != 600*time.Microsecond {
		t.Errorf("free only: %+v", x)
	}
	if r.ThroughputRatio() != 0.2 || (Phase{}).CPUPerJob() != 0 {
		t.Errorf("throughput ratio %v", r.ThroughputRatio())
	}
}
