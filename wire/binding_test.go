package wire

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestJobBinding(t *testing.T) {
	now := time.Unix(1_767_312_000, 0)
	req := &JobRequest{ID: "job-1", Request: "{}", Parameters: `{"enable_data_output":true}`, Capability: "echo", TimeoutSeconds: 30}
	if bound, err := req.CheckBinding(now); bound || err != nil {
		t.Fatalf("unbound request: %v %v", bound, err)
	}
	if err := Bind(req, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if p, err := req.Params(); err != nil || !p.EnableDataOutput {
		t.Fatalf("binding lost the other parameters: %+v %v (%s)", p, err, req.Parameters)
	}
	if bound, err := req.CheckBinding(now); !bound || err != nil {
		t.Fatalf("bound request: %v %v", bound, err)
	}
	if _, err := req.CheckBinding(now.Add(2 * time.Minute)); !errors.Is(err, ErrBindingExpired) {
		t.Errorf("expired binding: %v", err)
	}
	for name, edit := range map[string]func(*JobRequest){
		"other id":         func(r *JobRequest) { r.ID = "job-2" },
		"no id":            func(r *JobRequest) { r.ID = "" },
		"other capability": func(r *JobRequest) { r.Capability = "llm" },
		"other timeout":    func(r *JobRequest) { r.TimeoutSeconds = 3000 },
	} {
		r := *req
		edit(&r)
		if _, err := r.CheckBinding(now); !errors.Is(err, ErrBindingMismatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := Bind(&JobRequest{Parameters: "{}"}, now); !errors.Is(err, ErrBindingMismatch) {
		t.Errorf("binding without a job ID: %v", err)
	}
}

// TestBindEmptyParameters: binding a request with no parameters (""
// or "{}") gives the bytes the general path (a map marshalled) gives,
// escaping included.
func TestBindEmptyParameters(t *testing.T) {
	now := time.Unix(1_767_312_000, 0)
	for _, params := range []string{"", "{}"} {
		for _, customer := range []string{"", "cust<&>\u2028é"} {
			req := &JobRequest{ID: "job-<1>", Request: "{}", Parameters: params, Capability: "echo&co", TimeoutSeconds: 30}
			if err := BindFor(req, now, customer); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(JobBinding{ID: "job-<1>", Capability: "echo&co", TimeoutSeconds: 30, NotAfter: now.Unix(), Customer: customer})
			want, _ := json.Marshal(map[string]json.RawMessage{BindingKey: b})
			if req.Parameters != string(want) {
				t.Errorf("params %q, customer %q: %s, want %s", params, customer, req.Parameters, want)
			}
			if got, err := req.CheckedBinding(now); err != nil || got == nil || got.Customer != customer {
				t.Errorf("params %q: binding %+v, %v", params, got, err)
			}
		}
	}
}
