package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"byoc/internal/serve"
	"byoc/wire"
)

// Job IDs.
const (
	// MaxJobIDLen bounds a client's job ID, leaving room for the attempt
	// suffix within the ledger's name limit.
	MaxJobIDLen = 128
	// attemptSep separates a job ID from its attempt number in the ID sent
	// to an orchestrator for a retry ("<id>~2"); client IDs may not contain it.
	attemptSep = '~'
)

// HeaderJobIDResponse tells the client its job's ID (its own, or the one
// the gateway made up). A byoc addition.
const HeaderJobIDResponse = wire.HeaderJobID

// job is one client request, checked.
type job struct {
	req       *wire.JobRequest // as the client sent it (unsigned)
	id        string
	clientID  bool
	timeout   time.Duration
	search    time.Duration
	resp      time.Duration
	filter    wire.JobOrchestratorsFilter
	body      []byte
	path      string // /process/request/... as received (escaped), without the query, as go-livepeer forwards it
	header    http.Header
	started   time.Time
	attempted int // job requests sent so far (for attempt IDs)
}

// attemptID is the ID the next job request carries: the job's ID on the
// first request, then "<id>~2", "<id>~3"... An orchestrator keys a job's
// hold by (sender, ID) and closes it when the job ends, whatever the
// outcome, so a retry must not reuse an ID it may have seen: a fresh ID
// opens a fresh hold there, and the failed attempt's hold has already gone
// back to the sender's pool (minus any compute the worker did).
func (j *job) attemptID() string {
	if j.attempted == 0 {
		return j.id
	}
	return fmt.Sprintf("%s%c%d", j.id, attemptSep, j.attempted+1)
}

// ValidJobID reports whether a client's job ID is acceptable: 1 to
// MaxJobIDLen characters among letters, digits and - _ . : (so it is safe
// in headers, logs, ledger names and URLs, and never looks like an attempt
// ID).
func ValidJobID(id string) error {
	if id == "" || len(id) > MaxJobIDLen {
		return fmt.Errorf("job id must have 1 to %d characters", MaxJobIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return fmt.Errorf("job id %q: only letters, digits and - _ . : are allowed", id)
		}
	}
	return nil
}

// NewJobID returns a fresh job ID: 128 random bits in hex.
func NewJobID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseJob checks a client's request. The error texts for what go-livepeer
// also rejects are go-livepeer's.
func (g *Gateway) parseJob(w http.ResponseWriter, r *http.Request) (*job, *RequestError) {
	if r.Method != http.MethodPost {
		return nil, &RequestError{Status: http.StatusMethodNotAllowed, Msg: "Method not allowed"}
	}
	req, err := wire.DecodeJobRequestHeader(r.Header.Get(wire.HeaderJobRequest))
	if err != nil {
		return nil, badRequest("Unable to parse job request, err=%v", err)
	}
	j := &job{req: req, path: r.URL.EscapedPath(), header: r.Header, started: g.cfg.Now()}
	if req.Capability == "" {
		return nil, badRequest("Unable to parse job request, err=no capability set with request")
	}
	if len(req.Capability) > wire.MaxCapabilityNameLen {
		return nil, badRequest("Unable to parse job request, err=capability name longer than %d bytes", wire.MaxCapabilityNameLen)
	}
	j.timeout = req.Timeout()
	if j.timeout > g.cfg.MaxTimeout {
		return nil, badRequest("timeout_seconds %d exceeds this gateway's maximum of %d", req.TimeoutSeconds, int(g.cfg.MaxTimeout/time.Second))
	}
	if _, err := req.Details(); err != nil {
		return nil, badRequest("Unable to unmarshal job request err=%v (request must be a JSON text, e.g. \"{}\")", unwrapJSON(err))
	}
	params, err := req.Params()
	if err != nil {
		return nil, badRequest("Unable to unmarshal job parameters err=%v (parameters must be a JSON text, e.g. \"{}\")", unwrapJSON(err))
	}
	j.filter = params.Orchestrators
	if req.ID != "" {
		if err := ValidJobID(req.ID); err != nil {
			return nil, badRequest("Invalid job id: %v", err)
		}
		j.id, j.clientID = req.ID, true
	} else {
		j.id = NewJobID()
	}
	if j.search, err = durationHeader(r, wire.HeaderOrchSearchTimeout, g.cfg.SearchTimeout); err != nil {
		return nil, badRequest("%v", err)
	}
	if j.resp, err = durationHeader(r, wire.HeaderOrchSearchRespTimeout, g.cfg.RespTimeout); err != nil {
		return nil, badRequest("%v", err)
	}
	j.resp = min(j.resp, j.search)
	body, berr := serve.ReadBody(w, r, g.cfg.MaxBodyBytes)
	if berr != nil {
		return nil, &RequestError{Status: berr.Status, Msg: berr.Msg}
	}
	j.body = body
	return j, nil
}

// unwrapJSON returns the encoding/json error inside one of the wire
// package's "%w: %w" errors, so the message reads like go-livepeer's.
func unwrapJSON(err error) error {
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := m.Unwrap(); len(errs) > 0 {
			return errs[len(errs)-1]
		}
	}
	return err
}

// durationHeader parses a Go duration header (go-livepeer's search
// timeouts), which go-livepeer reads but never applies (defect D1).
func durationHeader(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	v := r.Header.Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > MaxSearchTimeout {
		return 0, fmt.Errorf("%s %q: want a Go duration between 0 and %s, e.g. 2s or 500ms", name, v, MaxSearchTimeout)
	}
	return d, nil
}
