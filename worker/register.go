package worker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"byoc/wire"
)

// Option changes how Register and Unregister reach the orchestrator.
type Option func(*clientOptions)

type clientOptions struct {
	httpClient *http.Client
	insecure   bool
	rootCAs    *x509.CertPool
}

// InsecureSkipVerify accepts any certificate from an https:// orchestrator,
// such as the self-signed one go-livepeer and byoc orchestrators serve. Use
// it only where the network path is trusted (loopback, a private network),
// since it lets anyone in the path read the orchestrator secret.
func InsecureSkipVerify() Option { return func(o *clientOptions) { o.insecure = true } }

// WithRootCAs trusts the certificates in pool (for example the
// orchestrator's self-signed certificate) instead of the system's.
func WithRootCAs(pool *x509.CertPool) Option { return func(o *clientOptions) { o.rootCAs = pool } }

// WithHTTPClient sends the requests with c; InsecureSkipVerify and
// WithRootCAs are then ignored.
func WithHTTPClient(c *http.Client) Option { return func(o *clientOptions) { o.httpClient = c } }

// newClient returns the client to use and a function to release it.
func newClient(opts []Option) (*http.Client, func()) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.httpClient != nil {
		return o.httpClient, func() {}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = true // orchestrators speak HTTP/2 over TLS; a custom TLS config would turn it off
	t.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            o.rootCAs,
		InsecureSkipVerify: o.insecure, // explicitly requested by the caller, see InsecureSkipVerify
	}
	c := &http.Client{Transport: t}
	return c, t.CloseIdleConnections
}

// OrchestratorError is an orchestrator's refusal: any answer but 2xx.
type OrchestratorError struct {
	Op         string // "register" or "unregister"
	Capability string
	URL        string // the URL called
	StatusCode int
	Status     string // e.g. "400 Bad Request"
	Body       string // the answer's body, trimmed, at most 4 KiB
}

func (e *OrchestratorError) Error() string {
	msg := fmt.Sprintf("%s capability %q at %s: orchestrator answered %s", e.Op, e.Capability, e.URL, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// maxErrorBody bounds how much of an orchestrator's error answer is kept.
const maxErrorBody = 4 << 10

// defaultCallTimeout bounds a registration call whose context has no
// deadline.
const defaultCallTimeout = 30 * time.Second

// Register registers c with the orchestrator at orchURL (see
// wire.NormalizeOrchestratorURL): POST <orchURL>/capability/register with c
// as JSON and the raw secret as the Authorization header. c is sent as given
// once a copy passes the orchestrator's own check (c.Validate), so a
// capability byoc's orchestrator would refuse is not sent. Registering a
// name again replaces it. A refusal is an *OrchestratorError with the
// orchestrator's status and body.
func Register(ctx context.Context, orchURL, secret string, c wire.ExternalCapability, opts ...Option) error {
	check := c
	if err := check.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	client, release := newClient(opts)
	defer release()
	return call(ctx, client, "register", c.Name, orchURL, "/capability/register", secret, "application/json", body)
}

// Unregister removes the capability name from the orchestrator at orchURL:
// POST <orchURL>/capability/unregister with the raw name as the body. A
// go-livepeer orchestrator answers 200 "ok" for unknown names too.
func Unregister(ctx context.Context, orchURL, secret, name string, opts ...Option) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("unregister: empty capability name")
	}
	client, release := newClient(opts)
	defer release()
	return call(ctx, client, "unregister", name, orchURL, "/capability/unregister", secret,
		"text/plain; charset=utf-8", []byte(name))
}

func call(ctx context.Context, client *http.Client, op, capName, orchURL, path, secret, contentType string, body []byte) error {
	base, err := wire.NormalizeOrchestratorURL(orchURL)
	if err != nil {
		return fmt.Errorf("%s capability %q: %w", op, capName, err)
	}
	target := base + path
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCallTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s capability %q: %w", op, capName, err)
	}
	req.Header.Set("Content-Type", contentType)
	if secret != "" {
		req.Header.Set("Authorization", secret) // raw, no scheme: what the orchestrator compares
	}
	resp, err := client.Do(req)
	if err != nil {
		err = fmt.Errorf("%s capability %q at %s: %w", op, capName, target, err)
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			err = fmt.Errorf("%w (the orchestrator's certificate is not trusted; for a self-signed "+
				"orchestrator on a trusted network, skip verification explicitly or trust its certificate)", err)
		}
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return &OrchestratorError{
		Op:         op,
		Capability: capName,
		URL:        target,
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		Body:       strings.TrimSpace(string(answer)),
	}
}

// Registration is a set of capabilities kept registered with one
// orchestrator.
type Registration struct {
	Orchestrator string // base URL, see wire.NormalizeOrchestratorURL
	Secret       string // the orchestrator's secret, sent raw
	Capabilities []wire.ExternalCapability
	Options      []Option
}

// Register registers every capability. If one fails, it unregisters those
// it had registered, and the one that failed unless the orchestrator
// refused it (without an answer, it may have arrived), best effort, even
// when ctx was canceled (a worker stopped while it registers leaves
// nothing behind), and returns the failure.
func (r Registration) Register(ctx context.Context) error {
	for i, c := range r.Capabilities {
		if err := Register(ctx, r.Orchestrator, r.Secret, c, r.Options...); err != nil {
			undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCallTimeout)
			defer cancel()
			if _, refused := errors.AsType[*OrchestratorError](err); !refused {
				i++
			}
			for _, done := range r.Capabilities[:i] {
				Unregister(undo, r.Orchestrator, r.Secret, done.Name, r.Options...)
			}
			return err
		}
	}
	return nil
}

// Unregister unregisters every capability and returns every failure.
func (r Registration) Unregister(ctx context.Context) error {
	var errs []error
	for _, c := range r.Capabilities {
		if err := Unregister(ctx, r.Orchestrator, r.Secret, c.Name, r.Options...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keepAliveCallTimeout bounds one re-registration call of KeepAlive.
const keepAliveCallTimeout = 10 * time.Second

// KeepAlive registers every capability again each interval until ctx ends,
// so an orchestrator that restarted (registrations live in its memory) or
// removed a capability after a failed job (docs/protocol.md §6.4) gets it back. It
// calls report after each round with that round's error, nil on success.
//
// A call under way when ctx ends is finished (within 10 s), not abandoned,
// so once KeepAlive has returned no registration of it can still reach the
// orchestrator and overtake a later Unregister.
//
// A go-livepeer orchestrator resets the capability's load count on every
// registration (docs/protocol.md, D10).
func (r Registration) KeepAlive(ctx context.Context, interval time.Duration, report func(error)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		var errs []error
		for _, c := range r.Capabilities {
			if ctx.Err() != nil {
				return
			}
			callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepAliveCallTimeout)
			err := Register(callCtx, r.Orchestrator, r.Secret, c, r.Options...)
			cancel()
			if err != nil {
				errs = append(errs, err)
			}
		}
		if report != nil {
			report(errors.Join(errs...))
		}
	}
}
