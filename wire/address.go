package wire

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// DefaultOrchestratorPort is the port an orchestrator address without one
// gets, as go-livepeer's -orchAddr does.
const DefaultOrchestratorPort = "8935"

// NormalizeOrchestratorURL turns an orchestrator address as an operator
// writes it into the base URL gateways ask for tokens and workers register
// at, as go-livepeer does: no scheme gets https:// (orchestrators serve TLS),
// no port gets :8935; a trailing slash is dropped. Only http and https URLs
// without a path, query, fragment or user are accepted.
func NormalizeOrchestratorURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty orchestrator address")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("orchestrator address %q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("orchestrator address %q: scheme must be http or https", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("orchestrator address %q: no host", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("orchestrator address %q: want scheme://host:port only", s)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), DefaultOrchestratorPort)
	}
	return u.Scheme + "://" + host, nil
}
