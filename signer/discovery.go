package signer

import (
	"errors"
	"net/http"
	"slices"
)

// Discovered is one orchestrator in a /discover-orchestrators answer.
type Discovered struct {
	Address      string   `json:"address,omitempty"`
	Score        float32  `json:"score,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
}

// Discovery lists the orchestrators the signer knows.
type Discovery interface {
	// Orchestrators returns those offering any of caps (all for none).
	Orchestrators(caps []string) []Discovered
}

// StaticDiscovery is a fixed list of orchestrators.
type StaticDiscovery []Discovered

// Orchestrators returns those offering any of caps.
func (d StaticDiscovery) Orchestrators(caps []string) []Discovered {
	var out []Discovered
	for _, o := range d {
		if len(caps) == 0 || slices.ContainsFunc(caps, func(c string) bool { return slices.Contains(o.Capabilities, c) }) {
			o.Capabilities = slices.Clone(o.Capabilities)
			out = append(out, o)
		}
	}
	return out
}

func (s *Signer) discoverOrchestrators(w http.ResponseWriter, r *http.Request) {
	var caps []string
	for _, c := range r.URL.Query()["caps"] {
		if c != "" {
			caps = append(caps, c)
		}
	}
	all := s.cfg.Discovery.Orchestrators(nil)
	if len(all) == 0 {
		respondError(w, &apiError{status: http.StatusServiceUnavailable, msg: errors.New("cache empty").Error()})
		return
	}
	found := s.cfg.Discovery.Orchestrators(caps)
	if found == nil {
		found = []Discovered{}
	}
	for i := range found {
		if found[i].Score == 0 {
			found[i].Score = 1 // go-livepeer's "trusted" score
		}
	}
	respondJSON(w, http.StatusOK, found)
}
