package wire

import (
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
