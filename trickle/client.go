package trickle

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client errors. A *StatusError carries any other refusal.
var (
	// ErrClosed: the channel is closed (Lp-Trickle-Closed), the end of
	// the stream.
	ErrClosed = errors.New("trickle: channel closed")
	// ErrNotFound: the server has no such channel (404).
	ErrNotFound = errors.New("trickle: channel not found")
)

// StatusError is an answer a client did not expect.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("trickle: status %d: %s", e.Code, strings.TrimSpace(e.Body))
}

// NewHTTPClient returns the HTTP client the trickle clients use by default:
// HTTP/1.1 as the reference's trickle clients speak, idle connections kept
// for a minute, and certificate checks skipped when insecure is true (BYOC
// orchestrators serve self-signed certificates).
func NewHTTPClient(insecure bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // opt-in, for self-signed orchestrators
	t.IdleConnTimeout = time.Minute
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}
}

var defaultClient = NewHTTPClient(false)

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func headerInt(h http.Header, key string) (int, bool) {
	v := h.Get(key)
	if v == "" || len(v) > 20 {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < SeqCurrent || n > maxSeq {
		return 0, false
	}
	return n, true
}

func readSmall(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	return string(b)
}

// PublisherConfig sets up a Publisher.
type PublisherConfig struct {
	// URL is the channel's URL, such as https://host/ai/trickle/<name>.
	URL string
	// Client defaults to NewHTTPClient(false).
	Client *http.Client
	// ContentType of every segment; default "video/MP2T", as the
	// reference's publisher sends whatever the channel carries.
	ContentType string
	// Start is the first segment number (default 0, as the reference).
	Start int
	// Retries is how many more times a segment is tried when it failed
	// before any of its bytes were sent (default 3); RetryPause apart
	// (default 250 ms, the reference gateway's).
	Retries    int
	RetryPause time.Duration
}

// Publisher writes numbered segments to a channel, one at a time. It is
// safe for concurrent use; writes are serialised.
type Publisher struct {
	cfg PublisherConfig
	mu  sync.Mutex
	seq int
}

// NewPublisher returns a Publisher for cfg.URL.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.URL == "" {
		return nil, errors.New("trickle: publisher URL missing")
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	if cfg.Client == nil {
		cfg.Client = defaultClient
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "video/MP2T"
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 3
	}
	if cfg.RetryPause <= 0 {
		cfg.RetryPause = 250 * time.Millisecond
	}
	if cfg.Start < 0 {
		cfg.Start = 0
	}
	return &Publisher{cfg: cfg, seq: cfg.Start}, nil
}

// Seq is the number the next segment will be written as.
func (p *Publisher) Seq() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// countingReader counts what the transport took from the segment's body,
// so a failed try can tell whether the segment may be sent again; Close
// does nothing, so a failed try leaves the body to the next one.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return nil }

// Write publishes body as the next segment, streaming it as it is read,
// and returns the segment's number and the bytes sent. A try that fails
// before any byte was sent is repeated (Retries), and when none succeeds
// the segment is closed on the server (DELETE) so its readers stop
// waiting; one that fails part way is dropped (the server cuts it off for
// its readers). Either way the next Write takes the next number, as the
// reference's gateway does. ErrClosed and ErrNotFound mean the channel is
// gone.
func (p *Publisher) Write(ctx context.Context, body io.Reader) (seq int, n int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seq = p.seq
	cr := &countingReader{r: body}
	for try := 0; ; try++ {
		var got int
		got, err = p.post(ctx, seq, cr)
		n = cr.n.Load()
		if err == nil {
			p.seq = got + 1
			return got, n, nil
		}
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			return seq, n, err
		}
		if n > 0 {
			// Dropped part way: the server cuts the segment off for its
			// readers when the request breaks, so nothing more to do.
			p.seq = seq + 1
			return seq, n, err
		}
		if try >= p.cfg.Retries {
			p.closeSegment(seq) // readers waiting on it move on
			p.seq = seq + 1
			return seq, n, err
		}
		if perr := pause(ctx, p.cfg.RetryPause); perr != nil {
			return seq, n, err
		}
	}
}

func (p *Publisher) post(ctx context.Context, seq int, body *countingReader) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL+"/"+strconv.Itoa(seq), body)
	if err != nil {
		return seq, err
	}
	req.Header.Set("Content-Type", p.cfg.ContentType)
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return seq, err
	}
	defer resp.Body.Close()
	text := readSmall(resp.Body)
	if resp.Header.Get(HeaderClosed) != "" {
		return seq, ErrClosed
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return seq, ErrNotFound
	case resp.StatusCode != http.StatusOK:
		return seq, &StatusError{resp.StatusCode, text}
	}
	if got, ok := headerInt(resp.Header, HeaderSeq); ok && got >= 0 {
		return got, nil
	}
	return seq, nil
}

// closeSegment politely closes a segment that was dropped, so readers
// waiting on it move on (DELETE <url>/<seq>); errors are ignored.
func (p *Publisher) closeSegment(seq int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, p.cfg.URL+"/"+strconv.Itoa(seq), nil)
	if err != nil {
		return
	}
	if resp, err := p.cfg.Client.Do(req); err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}
}

// Close closes the channel on the server (DELETE <url>), as the
// reference's publisher does when its stream ends.
func (p *Publisher) Close(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, p.cfg.URL, nil)
	if err != nil {
		return err
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	text := readSmall(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &StatusError{resp.StatusCode, text}
	}
	return nil
}

// SubscriberConfig sets up a Subscriber.
type SubscriberConfig struct {
	// URL is the channel's URL.
	URL string
	// Client defaults to NewHTTPClient(false).
	Client *http.Client
	// Start is the first segment to read: SeqNext (-1) for the next one
	// published (the reference's start), SeqCurrent for the one being
	// written, or a number. The zero value is segment 0.
	Start int
	// RefreshInterval: a read that has had no answer for this long is
	// sent again, as the reference's subscriber does (default 20 s).
	RefreshInterval time.Duration
	// Retries is how many failed reads in a row are retried before Read
	// gives up (default 5), RetryPause apart (default 300 ms), as the
	// reference's gateway does. A 470 is not a failure but counts, so a
	// server that keeps answering 470 ends too.
	Retries    int
	RetryPause time.Duration
}

// Subscriber reads a channel's segments in order. It is not for
// concurrent use: one goroutine calls Read.
type Subscriber struct {
	cfg     SubscriberConfig
	seq     int
	skipped int
}

// Segment is one segment being read. Close Body when done with it.
type Segment struct {
	Seq         int    // its number (Lp-Trickle-Seq)
	Latest      int    // the server's next write position when it began, or -1 if not sent
	ContentType string // the channel's MIME type
	Skipped     int    // segments jumped over (a 470) since the last one read
	Body        io.ReadCloser
}

// NewSubscriber returns a Subscriber for cfg.URL.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.URL == "" {
		return nil, errors.New("trickle: subscriber URL missing")
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	if cfg.Client == nil {
		cfg.Client = defaultClient
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 20 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.RetryPause <= 0 {
		cfg.RetryPause = 300 * time.Millisecond
	}
	if cfg.Start < SeqCurrent {
		cfg.Start = SeqNext
	}
	return &Subscriber{cfg: cfg, seq: cfg.Start}, nil
}

// Seq is the segment the next Read asks for.
func (s *Subscriber) Seq() int { return s.seq }

// SetSeq makes the next Read ask for seq.
func (s *Subscriber) SetSeq(seq int) { s.seq = seq }

// Read waits for the next segment and returns it as soon as its first
// bytes are there; the rest streams through Body. It follows
// Lp-Trickle-Seq, jumps to Lp-Trickle-Latest when the wanted segment is
// gone (470), and returns ErrClosed when the channel is closed and
// ErrNotFound when it does not exist.
func (s *Subscriber) Read(ctx context.Context) (*Segment, error) {
	failures := 0
	for {
		resp, cancel, err := s.get(ctx)
		if err == nil {
			seg, retry, ferr := s.take(resp, cancel)
			if !retry {
				return seg, ferr
			}
			err = ferr
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		failures++
		if failures > s.cfg.Retries {
			return nil, fmt.Errorf("trickle: reading %s/%d: %w", s.cfg.URL, s.seq, err)
		}
		var gone *goneError
		if errors.As(err, &gone) {
			continue // jump at once
		}
		if perr := pause(ctx, s.cfg.RetryPause); perr != nil {
			return nil, perr
		}
	}
}

type goneError struct{ seq, latest int }

func (e *goneError) Error() string {
	return fmt.Sprintf("segment %d is gone, latest %d", e.seq, e.latest)
}

// take turns a response into a segment; retry says whether Read should
// try again.
func (s *Subscriber) take(resp *http.Response, cancel context.CancelFunc) (seg *Segment, retry bool, err error) {
	if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderClosed) != "" {
		text := readSmall(resp.Body)
		resp.Body.Close()
		cancel()
		switch {
		case resp.Header.Get(HeaderClosed) != "":
			return nil, false, ErrClosed
		case resp.StatusCode == http.StatusNotFound:
			return nil, false, ErrNotFound
		case resp.StatusCode == StatusGone:
			latest, ok := headerInt(resp.Header, HeaderLatest)
			if !ok || latest < 0 {
				latest = SeqNext
			}
			if s.seq >= 0 && latest > s.seq {
				s.skipped += latest - s.seq
			}
			gone := &goneError{s.seq, latest}
			s.seq = latest
			return nil, true, gone
		}
		return nil, true, &StatusError{resp.StatusCode, text}
	}
	seq, ok := headerInt(resp.Header, HeaderSeq)
	if !ok || seq < 0 {
		if s.seq < 0 {
			resp.Body.Close()
			cancel()
			return nil, true, fmt.Errorf("trickle: answer for %d without a usable %s", s.seq, HeaderSeq)
		}
		seq = s.seq
	}
	latest, ok := headerInt(resp.Header, HeaderLatest)
	if !ok {
		latest = -1
	}
	s.seq = seq + 1
	seg = &Segment{Seq: seq, Latest: latest, ContentType: resp.Header.Get("Content-Type"), Skipped: s.skipped,
		Body: &cancelBody{ReadCloser: resp.Body, cancel: cancel}}
	s.skipped = 0
	return seg, false, nil
}

// get sends GET <url>/<seq> and waits for the answer's headers, sending
// the request again each RefreshInterval that passes without one. The
// returned cancel ends the answer's body.
func (s *Subscriber) get(ctx context.Context) (*http.Response, context.CancelFunc, error) {
	url := s.cfg.URL + "/" + strconv.Itoa(s.seq)
	type result struct {
		resp *http.Response
		err  error
	}
	for {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan result, 1)
		go func() {
			req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
			if err != nil {
				done <- result{nil, err}
				return
			}
			resp, err := s.cfg.Client.Do(req)
			done <- result{resp, err}
		}()
		t := time.NewTimer(s.cfg.RefreshInterval)
		select {
		case r := <-done:
			t.Stop()
			if r.err != nil {
				cancel()
				return nil, nil, r.err
			}
			return r.resp, cancel, nil
		case <-t.C:
			cancel()
			if r := <-done; r.err == nil {
				// It answered just as it was given up; its context is
				// cancelled, so ask again.
				r.resp.Body.Close()
			}
		case <-ctx.Done():
			t.Stop()
			cancel()
			return nil, nil, ctx.Err()
		}
	}
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
