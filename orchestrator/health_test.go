package orchestrator_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"byoc/internal/testnet"
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
	n := testnet.StartNode(t, t.TempDir(), nil)
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
	n := testnet.StartNode(t, t.TempDir(), nil)
	for _, path := range []string{"/admin/capabilities", "/admin/pools", "/admin/jobs", "/admin/jobs?all=1", "/admin/winners", "/admin/winners?state=all"} {
		var raw json.RawMessage
		if code := testnet.Admin(t, n, path, &raw); code != http.StatusOK || string(raw) != "[]" {
			t.Errorf("%s: %d %s; want 200 []", path, code, raw)
		}
	}
}

func metricsText(t *testing.T, adminURL string) string {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Refusals and ticket results are series from the start, at zero; a
// registration with a wrong secret is counted.
func TestMetricsPresentAtZero(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), nil)
	m := metricsText(t, n.AdminURL)
	for _, want := range []string{
		`byoc_orchestrator_rejected_total{endpoint="register",reason="bad_secret"} 0`,
		`byoc_orchestrator_rejected_total{endpoint="job",reason="bad_payment"} 0`,
		`byoc_orchestrator_rejected_total{endpoint="token",reason="no_capacity"} 0`,
		`byoc_orchestrator_tickets_total{result="credited"} 0`,
		`byoc_orchestrator_tickets_total{result="won"} 0`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("a fresh node's metrics lack %q", want)
		}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/capability/register", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "wrong")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("register with a wrong secret: %d", resp.StatusCode)
	}
	if m := metricsText(t, n.AdminURL); !strings.Contains(m, `byoc_orchestrator_rejected_total{endpoint="register",reason="bad_secret"} 1`+"\n") {
		t.Error("a registration with a wrong secret is not counted")
	}
}
