package orchestrator_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	. "byoc/internal/testnet"
)

// health GETs path on an admin listener: the status and the JSON body.
func health(t *testing.T, adminURL, path string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(adminURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, body
}

// /healthz says the process serves; /readyz that the ledger answers, and
// 503 with the reason once it does not (no token needed for either).
func TestHealthAndReadiness(t *testing.T) {
	n := StartNode(t, t.TempDir(), nil)
	if code, body := health(t, n.AdminURL, "/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, body)
	}
	if code, body := health(t, n.AdminURL, "/readyz"); code != http.StatusOK || body["status"] != "ready" {
		t.Errorf("readyz: %d %v", code, body)
	}
	n.Store.Close() // the database goes away
	if code, body := health(t, n.AdminURL, "/readyz"); code != http.StatusServiceUnavailable || body["status"] != "not ready" || !strings.HasPrefix(body["reason"], "ledger: ") {
		t.Errorf("readyz with the ledger closed: %d %v", code, body)
	}
	if code, body := health(t, n.AdminURL, "/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("healthz with the ledger closed: %d %v", code, body)
	}
}

// On a fresh node every admin list is [], never null.
func TestAdminEmptyListsAreArrays(t *testing.T) {
	n := StartNode(t, t.TempDir(), nil)
	for _, path := range []string{"/admin/capabilities", "/admin/pools", "/admin/jobs", "/admin/jobs?all=1", "/admin/winners", "/admin/winners?state=all"} {
		var raw json.RawMessage
		if code := Admin(t, n, path, &raw); code != http.StatusOK || string(raw) != "[]" {
			t.Errorf("%s: %d %s; want 200 []", path, code, raw)
		}
	}
}
