package wire

import (
	"testing"
	"time"

	"byoc/ethsig"
)

// BenchmarkGatewayHeader makes a job's Livepeer header as a byoc gateway
// does for every attempt: bind, sign, encode.
func BenchmarkGatewayHeader(b *testing.B) {
	s, err := ethsig.KeySignerFromHex("8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_767_312_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		req := &JobRequest{ID: "0123456789abcdef", Request: "{}", Parameters: "{}", Capability: "echo", TimeoutSeconds: 10}
		if err := Bind(req, now); err != nil {
			b.Fatal(err)
		}
		if err := SignJobRequest(s, req); err != nil {
			b.Fatal(err)
		}
		if _, err := EncodeJobRequestHeader(req); err != nil {
			b.Fatal(err)
		}
	}
}
