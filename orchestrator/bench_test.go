package orchestrator_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkFreeJob runs signed, bound jobs of a free capability through
// the orchestrator's handler (a loopback worker, no ledger writes): what
// the orchestrator does per job besides the money — the header's
// decoding, the signature's recovery, the binding, the sender's slot, the
// worker's call and the answer.
func BenchmarkFreeJob(b *testing.B) {
	fo := newFuzzOrch(b)
	hdr := fo.jobHeader(b, "free", "bench-job", true, true)
	h := fo.o.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, fo.jobRequest(b, "", hdr, "", "hello"))
		if rec.Code != http.StatusOK {
			b.Fatalf("job: %d %s", rec.Code, rec.Body)
		}
	}
}
