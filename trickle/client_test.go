package trickle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// scripted serves canned answers, one per request, and records the paths.
type scripted struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter, r *http.Request)
	paths   []string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.paths = append(s.paths, r.Method+" "+r.URL.Path)
	if len(s.answers) == 0 {
		s.mu.Unlock()
		http.Error(w, "no more answers", http.StatusTeapot)
		return
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	s.mu.Unlock()
	a(w, r)
}

func (s *scripted) seen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.paths, ", ")
}

func answer(status int, body string, hdr ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func serveScript(t *testing.T, answers ...func(http.ResponseWriter, *http.Request)) (*scripted, string) {
	t.Helper()
	s := &scripted{answers: answers}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL + "/ch"
}

func TestSubscriberReadsOddHeaders(t *testing.T) {
	// A 200 for a numbered read without a usable Lp-Trickle-Seq is taken
	// as the number asked for; 470 without a usable Latest jumps to -1.
	script, url := serveScript(t,
		answer(200, "a", HeaderSeq, "junk"),
		answer(StatusGone, goneText, HeaderLatest, "x"),
		answer(200, "b", HeaderSeq, "7"),
		answer(200, "", HeaderSeq, "8"),
		answer(200, goneText, HeaderClosed, ClosedValue),
	)
	sub := newSub(t, url, 3)
	if seg, b := readSeg(t, sub); seg.Seq != 3 || b != "a" {
		t.Fatalf("first: %d %q", seg.Seq, b)
	}
	if seg, b := readSeg(t, sub); seg.Seq != 7 || b != "b" {
		t.Fatalf("second: %d %q", seg.Seq, b)
	}
	if seg, b := readSeg(t, sub); seg.Seq != 8 || b != "" {
		t.Fatalf("empty segment: %d %q", seg.Seq, b)
	}
	if _, err := sub.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if got, want := script.seen(), "GET /ch/3, GET /ch/4, GET /ch/-1, GET /ch/8, GET /ch/9"; got != want {
		t.Fatalf("requests %s, want %s", got, want)
	}
}

func TestSubscriberGivesUp(t *testing.T) {
	// A live read (-1) answered without Lp-Trickle-Seq cannot know where
	// it is: it retries, then fails. So does a server that keeps failing.
	_, url := serveScript(t,
		answer(200, "?"), answer(200, "?"), answer(500, "boom"),
	)
	sub, _ := NewSubscriber(SubscriberConfig{URL: url, Start: SeqNext, Retries: 2, RetryPause: 1})
	_, err := sub.Read(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 500 || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("after failures: %v", err)
	}
	_, url = serveScript(t, answer(404, notFoundText))
	sub = newSub(t, url, 0)
	if _, err := sub.Read(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("404: %v", err)
	}
	// A cancelled context ends a waiting read.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sub.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestPublisherRetriesAndSkips(t *testing.T) {
	// A try that failed before any byte of the body was taken (here the
	// first connection fails) is sent again, whole, and the server's
	// Lp-Trickle-Seq sets the next number.
	var got bytes.Buffer
	script, url := serveScript(t,
		func(w http.ResponseWriter, r *http.Request) {
			io.Copy(&got, r.Body)
			w.Header().Set(HeaderSeq, "4")
		},
	)
	failures := 1
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if failures > 0 {
			failures--
			return nil, errors.New("connection refused (test)")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	p, _ := NewPublisher(PublisherConfig{URL: url, Client: client, RetryPause: 1})
	seq, n, err := p.Write(context.Background(), strings.NewReader("payload"))
	if err != nil || seq != 4 || n != 7 || got.String() != "payload" || p.Seq() != 5 {
		t.Fatalf("Write: seq %d n %d err %v body %q next %d", seq, n, err, got.String(), p.Seq())
	}
	if want := "POST /ch/0"; script.seen() != want {
		t.Fatalf("requests %s, want %s", script.seen(), want)
	}
	// Retries are bounded: a channel that never answers fails the write
	// after 1+3 tries, and the segment is closed (a fifth request, DELETE).
	failures = 100
	if _, _, err := p.Write(context.Background(), strings.NewReader("x")); err == nil || failures != 100-5 {
		t.Fatalf("after %d tries: %v", 100-failures, err)
	}

	// A failure after the body was taken: the segment is dropped and the
	// next write takes the next number.
	script, url = serveScript(t,
		answer(500, "broken"),
		answer(200, ""),
	)
	p = newPub(t, url)
	if _, _, err := p.Write(context.Background(), strings.NewReader("x")); err == nil {
		t.Fatal("a 500 after the body was sent passed")
	}
	if seq, _, err := p.Write(context.Background(), strings.NewReader("y")); err != nil || seq != 1 {
		t.Fatalf("next write: %d %v", seq, err)
	}
	if want := "POST /ch/0, POST /ch/1"; script.seen() != want {
		t.Fatalf("requests %s, want %s", script.seen(), want)
	}

	// Closed and not-found end at once.
	_, url = serveScript(t, answer(200, "", HeaderClosed, ClosedValue), answer(404, notFoundText))
	p = newPub(t, url)
	if _, _, err := p.Write(context.Background(), strings.NewReader("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if _, _, err := p.Write(context.Background(), strings.NewReader("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("not found: %v", err)
	}
}

func TestPublisherCloseDeletesChannel(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "gone")
	p := newPub(t, url+"gone")
	if err := p.Close(context.Background()); err != nil || s.Has("gone") {
		t.Fatalf("Close: %v, still there %v", err, s.Has("gone"))
	}
	var se *StatusError
	if err := p.Close(context.Background()); !errors.As(err, &se) || se.Code != 400 {
		t.Fatalf("second Close: %v", err)
	}
}

func TestRelay(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "in")
	mustCreate(t, s, "out")
	wait := waits(s)
	in, out := newPub(t, url+"in"), newSub(t, url+"out", 0)
	upper := func(_ int, r io.Reader) io.Reader {
		b, _ := io.ReadAll(r)
		return bytes.NewReader(bytes.ToUpper(b))
	}
	type result struct {
		st  RelayStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Relay(context.Background(), newSub(t, url+"in", SeqNext), newPub(t, url+"out"), upper)
		done <- result{st, err}
	}()
	expectWait(t, wait, "get in 0") // the relay is reading
	for _, w := range []string{"one", "two", "three"} {
		publish(t, in, w)
		if seg, b := readSeg(t, out); b != strings.ToUpper(w) {
			t.Fatalf("relayed %d %q", seg.Seq, b)
		}
	}
	expectWait(t, wait, "get in 3") // the relay waits for the next one
	if err := s.Close("in"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.st.Segments != 3 || r.st.Bytes != 11 || r.st.Dropped != 0 {
		t.Fatalf("relay ended %+v %v", r.st, r.err)
	}

	// The downstream channel going away ends a relay with ErrNotFound.
	mustCreate(t, s, "in2")
	go func() {
		st, err := Relay(context.Background(), newSub(t, url+"in2", 0), newPub(t, url+"nowhere"), nil)
		done <- result{st, err}
	}()
	publish(t, newPub(t, url+"in2"), "lost")
	if r := <-done; !errors.Is(r.err, ErrNotFound) {
		t.Fatalf("relay into nothing: %+v %v", r.st, r.err)
	}
}

// A segment cut off upstream (here by the size limit) is cut off
// downstream too, not passed on as whole; the relay goes on with the next.
func TestRelayPassesOnACutSegment(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "up", WithMaxSegmentBytes(8))
	mustCreate(t, s, "down")
	wait := waits(s)
	done := make(chan RelayStats, 1)
	go func() {
		st, _ := Relay(context.Background(), newSub(t, url+"up", 0), newPub(t, url+"down"), nil)
		done <- st
	}()
	down := newSub(t, url+"down", 0)

	// Segment 0 streams 6 bytes, then 6 more: over the limit.
	pr, pw := io.Pipe()
	go func() {
		req, _ := http.NewRequest("POST", url+"up/0", pr)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write([]byte("012345"))
	seg, err := down.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("6789ab"))
	pw.Close()
	if b, err := io.ReadAll(seg.Body); err == nil {
		t.Fatalf("downstream reader got a clean end after %q", b)
	}
	seg.Body.Close()

	expectWait(t, wait, "get up 1")
	if resp, _ := do(t, "POST", url+"up/-1", strings.NewReader("whole")); resp.Header.Get(HeaderSeq) != "1" {
		t.Fatalf("next upstream segment written as %q", resp.Header.Get(HeaderSeq))
	}
	_, b := readSeg(t, down)
	if b != "whole" {
		t.Fatalf("next relayed segment %q", b)
	}
	if err := s.Close("up"); err != nil {
		t.Fatal(err)
	}
	if st := <-done; st.Segments != 1 || st.Dropped != 1 {
		t.Fatalf("relay stats %+v", st)
	}
}

func TestShutdownEndsWaitingClients(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "x")
	wait := waits(s)
	readErr, pubErr := make(chan error, 1), make(chan error, 1)
	go func() { _, err := newSub(t, url+"x", SeqNext).Read(context.Background()); readErr <- err }()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _, err := newPub(t, url+"x").Write(context.Background(), pr); pubErr <- err }()
	expectWait(t, wait, "get x 0", "post x 0")
	s.Shutdown()
	for _, ch := range []chan error{readErr, pubErr} {
		if err := <-ch; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotFound) {
			t.Fatalf("after Shutdown: %v", err)
		}
	}
}
