package wire_test

import (
	"testing"

	"byoc/wire"
)

func TestNormalizeOrchestratorURL(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.5":                  "https://10.0.0.5:8935",
		"10.0.0.5:9000":             "https://10.0.0.5:9000",
		"orch.example":              "https://orch.example:8935",
		"https://orch.example":      "https://orch.example:8935",
		"http://127.0.0.1:1":        "http://127.0.0.1:1",
		"https://orch.example:443/": "https://orch.example:443",
		" https://orch:8935/ ":      "https://orch:8935",
		" https://[::1]:8935 ":      "https://[::1]:8935",
		"[::1]":                     "https://[::1]:8935",
	} {
		if got, err := wire.NormalizeOrchestratorURL(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x:1", "https://", "https://x:1/path", "https://x:1?q", "http://h#f",
		"https://user@x:1", "https://u:p@h", "https://:1", "https://h:bad", "::"} {
		if got, err := wire.NormalizeOrchestratorURL(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}
