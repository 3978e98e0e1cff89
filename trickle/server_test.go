package trickle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const base = "/ai/trickle/"

// newTestServer serves a trickle Server on a loopback port.
func newTestServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.BasePath == "" {
		cfg.BasePath = base
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = -1
	}
	s := NewServer(cfg)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Shutdown()
		hs.Close()
	})
	return s, hs.URL + cfg.BasePath
}

func mustCreate(t *testing.T, s *Server, name string, opts ...ChannelOption) {
	t.Helper()
	if err := s.Create(name, opts...); err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
}

func newPub(t *testing.T, url string) *Publisher {
	t.Helper()
	p, err := NewPublisher(PublisherConfig{URL: url, RetryPause: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newSub(t *testing.T, url string, start int) *Subscriber {
	t.Helper()
	s, err := NewSubscriber(SubscriberConfig{URL: url, Start: start, RetryPause: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func publish(t *testing.T, p *Publisher, data string) int {
	t.Helper()
	seq, n, err := p.Write(context.Background(), strings.NewReader(data))
	if err != nil {
		t.Fatalf("publish %q: %v", data, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("publish %q sent %d bytes", data, n)
	}
	return seq
}

// readSeg reads one segment whole.
func readSeg(t *testing.T, s *Subscriber) (*Segment, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seg, err := s.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	defer seg.Body.Close()
	b, err := io.ReadAll(seg.Body)
	if err != nil {
		t.Fatalf("reading segment %d: %v", seg.Seq, err)
	}
	return seg, string(b)
}

func do(t *testing.T, method, url string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPublishSubscribeInOrder(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "s1", WithMIME("text/plain"))
	p := newPub(t, url+"s1")
	sub := newSub(t, url+"s1", 0)
	for i, want := range []string{"zero", "one", "two"} {
		if seq := publish(t, p, want); seq != i {
			t.Fatalf("segment %q written as %d, want %d", want, seq, i)
		}
	}
	for i, want := range []string{"zero", "one", "two"} {
		seg, got := readSeg(t, sub)
		if seg.Seq != i || got != want || seg.ContentType != "text/plain" || seg.Skipped != 0 {
			t.Fatalf("read %d: seq %d %q type %q skipped %d, want %d %q text/plain", i, seg.Seq, got,
				seg.ContentType, seg.Skipped, i, want)
		}
	}
	// The first segments are behind the head: Lp-Trickle-Latest says where it is.
	resp, body := do(t, "GET", url+"s1/0", nil)
	if resp.StatusCode != 200 || body != "zero" || resp.Header.Get(HeaderSeq) != "0" || resp.Header.Get(HeaderLatest) != "3" {
		t.Fatalf("GET 0: %d %q seq %q latest %q", resp.StatusCode, body, resp.Header.Get(HeaderSeq), resp.Header.Get(HeaderLatest))
	}
	resp, body = do(t, "GET", url+"s1/next", nil)
	if resp.StatusCode != 200 || body != "3" || resp.Header.Get(HeaderLatest) != "3" || resp.Header.Get(HeaderClosed) != "" {
		t.Fatalf("GET next: %d %q latest %q", resp.StatusCode, body, resp.Header.Get(HeaderLatest))
	}
	// -2 is the segment written last.
	resp, body = do(t, "GET", url+"s1/-2", nil)
	if resp.StatusCode != 200 || body != "two" || resp.Header.Get(HeaderSeq) != "2" {
		t.Fatalf("GET -2: %d %q seq %q", resp.StatusCode, body, resp.Header.Get(HeaderSeq))
	}
}

// A reader gets a segment's bytes while the publisher is still sending it.
func TestSegmentTricklesThrough(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "live")
	p := newPub(t, url+"live")
	sub := newSub(t, url+"live", 0)

	pr, pw := io.Pipe()
	wrote := make(chan error, 1)
	go func() { _, _, err := p.Write(context.Background(), pr); wrote <- err }()
	if _, err := pw.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	seg, err := sub.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Body.Close()
	first := make([]byte, 6)
	if _, err := io.ReadFull(seg.Body, first); err != nil || string(first) != "hello " {
		t.Fatalf("first bytes %q, %v", first, err)
	}
	select {
	case err := <-wrote:
		t.Fatalf("publish ended before its body did: %v", err)
	default:
	}
	pw.Write([]byte("world"))
	pw.Close()
	rest, err := io.ReadAll(seg.Body)
	if err != nil || string(rest) != "world" || seg.Seq != 0 {
		t.Fatalf("rest %q, %v, seq %d", rest, err, seg.Seq)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

func TestLateSubscriberGets470AndJumpsToLatest(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "late")
	p := newPub(t, url+"late")
	for i := range 8 {
		publish(t, p, "seg"+strconv.Itoa(i))
	}
	// Segments 0..2 have left the ring of 5.
	resp, body := do(t, "GET", url+"late/1", nil)
	if resp.StatusCode != StatusGone || body != "Entry not found" || resp.Header.Get(HeaderLatest) != "8" ||
		resp.Header.Get(HeaderSeq) != "1" || resp.Header.Get(HeaderClosed) != "" {
		t.Fatalf("GET 1: %d %q headers %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = do(t, "GET", url+"late/3", nil)
	if resp.StatusCode != 200 || body != "seg3" {
		t.Fatalf("GET 3 (oldest in the ring): %d %q", resp.StatusCode, body)
	}
	// Ahead of the head (other than the head itself) is 470 as well.
	resp, _ = do(t, "GET", url+"late/10", nil)
	if resp.StatusCode != StatusGone || resp.Header.Get(HeaderLatest) != "8" {
		t.Fatalf("GET 10: %d latest %q", resp.StatusCode, resp.Header.Get(HeaderLatest))
	}

	// The subscriber asks for 0, is told 8 is next, and waits there.
	wait := waits(s)
	sub := newSub(t, url+"late", 0)
	got := make(chan *Segment, 1)
	go func() {
		seg, err := sub.Read(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- seg
	}()
	expectWait(t, wait, "get late 8")
	publish(t, p, "seg8")
	seg := <-got
	if seg == nil {
		t.FailNow()
	}
	b, _ := io.ReadAll(seg.Body)
	seg.Body.Close()
	if seg.Seq != 8 || string(b) != "seg8" || seg.Skipped != 8 {
		t.Fatalf("after the jump: seq %d %q skipped %d, want 8 seg8 8", seg.Seq, b, seg.Skipped)
	}
	publish(t, p, "seg9")
	if seg, b := readSeg(t, sub); seg.Seq != 9 || b != "seg9" || seg.Skipped != 0 {
		t.Fatalf("next: seq %d %q skipped %d", seg.Seq, b, seg.Skipped)
	}
}

func TestRingSizeBoundsKeptSegments(t *testing.T) {
	s, url := newTestServer(t, Config{RingSize: 2})
	mustCreate(t, s, "r")
	p := newPub(t, url+"r")
	for i := range 4 {
		publish(t, p, strconv.Itoa(i))
	}
	for seq, want := range []int{StatusGone, StatusGone, 200, 200} {
		if resp, _ := do(t, "GET", url+"r/"+strconv.Itoa(seq), nil); resp.StatusCode != want {
			t.Errorf("GET %d with a ring of 2 after 4 segments: %d, want %d", seq, resp.StatusCode, want)
		}
	}
}

func TestClosedChannel(t *testing.T) {
	var closed []string
	var mu sync.Mutex
	s, url := newTestServer(t, Config{OnClose: func(name, why string) {
		mu.Lock()
		closed = append(closed, name+":"+why)
		mu.Unlock()
	}})
	mustCreate(t, s, "c-events", WithMIME("application/json"))
	wait := waits(s)

	// A reader waiting for the next segment of a channel nobody wrote to is
	// answered 200, empty, with Lp-Trickle-Closed when the channel closes
	// (the recorded exchange on an events channel).
	type answer struct {
		resp *http.Response
		body string
	}
	waiting := make(chan answer, 1)
	go func() {
		resp, err := http.Get(url + "c-events/-1")
		if err != nil {
			t.Error(err)
			waiting <- answer{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		waiting <- answer{resp, string(b)}
	}()
	expectWait(t, wait, "get c-events 0")
	if err := s.Close("c-events"); err != nil {
		t.Fatal(err)
	}
	a := <-waiting
	if a.resp == nil {
		t.FailNow()
	}
	h := a.resp.Header
	if a.resp.StatusCode != 200 || a.body != "" || h.Get(HeaderSeq) != "0" || h.Get(HeaderLatest) != "0" ||
		h.Get(HeaderClosed) != ClosedValue {
		t.Fatalf("waiting reader at close: %d %q headers %v", a.resp.StatusCode, a.body, h)
	}
	if s.Has("c-events") {
		t.Fatal("channel still there after Close")
	}
	if err := s.Close("c-events"); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("second Close: %v", err)
	}
	// Everything after is 404 (DELETE: 400 Invalid stream, as the reference).
	if resp, body := do(t, "GET", url+"c-events/0", nil); resp.StatusCode != 404 || body != "Stream not found\n" {
		t.Fatalf("GET after close: %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, "DELETE", url+"c-events", nil); resp.StatusCode != 400 || body != "Invalid stream\n" {
		t.Fatalf("DELETE after close: %d %q", resp.StatusCode, body)
	}
	p := newPub(t, url+"c-events")
	if _, _, err := p.Write(context.Background(), strings.NewReader("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("publish after close: %v", err)
	}
	sub := newSub(t, url+"c-events", SeqNext)
	if _, err := sub.Read(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read after close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(closed) != 1 || closed[0] != "c-events:close" {
		t.Fatalf("OnClose calls %v", closed)
	}
}

// A subscriber waiting on a channel sees ErrClosed when it is deleted over
// HTTP, and a publisher waiting for its first byte is told the same.
func TestDeleteEndsWaitingClients(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "d")
	wait := waits(s)
	sub := newSub(t, url+"d", SeqNext)
	readErr := make(chan error, 1)
	go func() {
		_, err := sub.Read(context.Background())
		readErr <- err
	}()
	p := newPub(t, url+"d")
	pr, pw := io.Pipe()
	defer pw.Close()
	pubErr := make(chan error, 1)
	go func() { _, _, err := p.Write(context.Background(), pr); pubErr <- err }()
	expectWait(t, wait, "get d 0", "post d 0")
	if resp, _ := do(t, "DELETE", url+"d", nil); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if err := <-readErr; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("reader: %v", err)
	}
	if err := <-pubErr; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("publisher: %v", err)
	}
}

// waits returns a channel that gets "kind name seq" each time a request
// to s starts waiting (see Server.waiting). Set it before any request.
func waits(s *Server) chan string {
	ch := make(chan string, 100)
	s.waiting = func(kind, name string, seq int) { ch <- kind + " " + name + " " + strconv.Itoa(seq) }
	return ch
}

// expectWait returns once every one of want has been seen on ch (other
// waits are passed over).
func expectWait(t *testing.T, ch chan string, want ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, w := range want {
		left[w] = true
	}
	for len(left) > 0 {
		delete(left, <-ch)
	}
}

type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestIdleSweep(t *testing.T) {
	clock := &manualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sweepTicks := make(chan time.Time) // unbuffered: a send returns when the loop took it
	var swept []string
	var mu sync.Mutex
	s, url := newTestServer(t, Config{
		Now:           clock.Now,
		SweepInterval: time.Minute,
		Ticker: func(d time.Duration) (<-chan time.Time, func()) {
			if d == time.Minute {
				return sweepTicks, func() {}
			}
			return realTicker(d)
		},
		OnClose: func(name, why string) {
			mu.Lock()
			swept = append(swept, name+":"+why)
			mu.Unlock()
		},
	})
	mustCreate(t, s, "quiet")
	mustCreate(t, s, "busy")
	p := newPub(t, url+"busy")

	clock.Advance(4 * time.Minute)
	publish(t, p, "x") // busy was written at minute 4
	if got := s.Sweep(); len(got) != 0 {
		t.Fatalf("swept %v at minute 4", got)
	}
	clock.Advance(time.Minute + time.Second)
	if got := s.Sweep(); len(got) != 1 || got[0] != "quiet" {
		t.Fatalf("swept %v at minute 5:01, want [quiet]", got)
	}
	if s.Has("quiet") || !s.Has("busy") {
		t.Fatal("wrong channels left")
	}

	// The loop sweeps on its ticks: the second send returns only after the
	// loop finished the first tick's sweep.
	clock.Advance(5 * time.Minute)
	sweepTicks <- clock.Now()
	sweepTicks <- clock.Now()
	if s.Has("busy") {
		t.Fatal("busy not swept by the loop after 6 minutes idle")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(swept, ",") != "quiet:idle,busy:idle" {
		t.Fatalf("OnClose calls %v", swept)
	}
}

func TestOversizedSegmentRefused(t *testing.T) {
	s, url := newTestServer(t, Config{MaxSegmentBytes: 10})
	mustCreate(t, s, "big")
	// Declared too large: refused before reading.
	resp, body := do(t, "POST", url+"big/0", strings.NewReader("01234567890"))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "at most 10 bytes") {
		t.Fatalf("11 declared bytes: %d %q", resp.StatusCode, body)
	}
	// Exactly the limit is fine.
	if resp, _ := do(t, "POST", url+"big/0", strings.NewReader("0123456789")); resp.StatusCode != 200 {
		t.Fatalf("10 bytes: %d", resp.StatusCode)
	}

	// Streamed past the limit: 413, and a reader of the segment sees it cut
	// off, not ended.
	sub := newSub(t, url+"big", 1)
	pr, pw := io.Pipe()
	posted := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"big/1", pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		posted <- resp
	}()
	pw.Write([]byte("012345"))
	seg, err := sub.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("6789ab"))
	rest, err := io.ReadAll(seg.Body)
	seg.Body.Close()
	if err == nil {
		t.Fatalf("reader of a cut segment got a clean end after %q", rest)
	}
	r := <-posted
	pw.Close()
	if r == nil || r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed 12 bytes: %v", r)
	}
	r.Body.Close()
	if !s.Has("big") {
		t.Fatal("the channel went with its segment")
	}

	// A channel's own, smaller limit.
	mustCreate(t, s, "small", WithMaxSegmentBytes(4))
	if resp, body := do(t, "POST", url+"small/0", strings.NewReader("12345")); resp.StatusCode != 413 ||
		!strings.Contains(body, "at most 4 bytes") {
		t.Fatalf("5 bytes on a 4-byte channel: %d %q", resp.StatusCode, body)
	}
	if _, err := s.Publish("small", []byte("12345")); err == nil {
		t.Fatal("Publish over the channel's limit passed")
	}
	if resp, _ := do(t, "POST", url+"small/0", strings.NewReader("1234")); resp.StatusCode != 200 {
		t.Fatalf("4 bytes: %d", resp.StatusCode)
	}
}

func TestConcurrentSubscribers(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "fan")
	p := newPub(t, url+"fan")
	const readers, segments = 8, 4
	var wg sync.WaitGroup
	got := make([][]string, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := newSub(t, url+"fan", 0)
			for range segments {
				seg, err := sub.Read(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(seg.Body)
				seg.Body.Close()
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], strconv.Itoa(seg.Seq)+"="+string(b))
			}
		}()
	}
	for i := range segments {
		publish(t, p, strings.Repeat(strconv.Itoa(i), 1000*(i+1)))
	}
	wg.Wait()
	for i := range readers {
		if len(got[i]) != segments {
			t.Fatalf("reader %d got %d segments", i, len(got[i]))
		}
		for j, g := range got[i] {
			want := strconv.Itoa(j) + "=" + strings.Repeat(strconv.Itoa(j), 1000*(j+1))
			if g != want {
				t.Fatalf("reader %d segment %d wrong (len %d)", i, j, len(g))
			}
		}
	}
}

// A publish waiting for its first byte gets "100 Continue" keepalives and
// is still written when the bytes come.
func TestPublishKeepalive(t *testing.T) {
	s, url := newTestServer(t, Config{FirstByteTimeout: 5 * time.Millisecond})
	mustCreate(t, s, "slow")
	pr, pw := io.Pipe()
	continues := make(chan struct{}, 100)
	req, _ := http.NewRequest("POST", url+"slow/0", pr)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			if code == 100 {
				continues <- struct{}{}
			}
			return nil
		},
	}))
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-continues
	<-continues
	pw.Write([]byte("late"))
	pw.Close()
	resp := <-done
	if resp == nil || resp.StatusCode != 200 || resp.Header.Get(HeaderSeq) != "0" {
		t.Fatalf("slow publish: %v", resp)
	}
	resp.Body.Close()
	if r, body := do(t, "GET", url+"slow/0", nil); r.StatusCode != 200 || body != "late" {
		t.Fatalf("GET: %d %q", r.StatusCode, body)
	}
}

// A subscriber whose read waits long sends it again each RefreshInterval.
func TestSubscriberRefreshesWaitingRead(t *testing.T) {
	s := NewServer(Config{BasePath: base, SweepInterval: -1})
	gets := make(chan struct{}, 100)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			// Counted, never waited on: the refreshes go on (every 5 ms)
			// while the test publishes, however slowly.
			select {
			case gets <- struct{}{}:
			default:
			}
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { s.Shutdown(); hs.Close() })
	mustCreate(t, s, "w")
	sub, _ := NewSubscriber(SubscriberConfig{URL: hs.URL + base + "w", Start: SeqNext, RefreshInterval: 5 * time.Millisecond})
	got := make(chan string, 1)
	go func() {
		seg, err := sub.Read(context.Background())
		if err != nil {
			t.Error(err)
			got <- ""
			return
		}
		b, _ := io.ReadAll(seg.Body)
		seg.Body.Close()
		got <- string(b)
	}()
	for range 3 {
		<-gets
	}
	publish(t, newPub(t, hs.URL+base+"w"), "data")
	if g := <-got; g != "data" {
		t.Fatalf("got %q", g)
	}
}

func TestMalformedRequests(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "ch")
	root := strings.TrimSuffix(url, base)
	cases := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", base + "ch/abc", 400, "Invalid idx\n"},
		{"GET", base + "ch/-3", 400, "Invalid idx\n"},
		{"GET", base + "ch/1.5", 400, "Invalid idx\n"},
		{"GET", base + "ch/99999999999999999999999", 400, "Invalid idx\n"},
		{"GET", base + "ch/", 400, "Invalid idx\n"},
		{"POST", base + "ch/-2", 400, "Invalid idx\n"},
		{"POST", base + "ch/x", 400, "Invalid idx\n"},
		{"DELETE", base + "ch/-1", 400, "Invalid idx\n"},
		{"DELETE", base + "ch/7", 400, "Nonexistent segment\n"},
		{"GET", base + "nope/0", 404, "Stream not found\n"},
		{"GET", base + "nope/next", 404, "Stream not found\n"},
		{"POST", base + "nope/0", 404, "Stream not found\n"},
		{"DELETE", base + "nope/0", 404, "Stream not found\n"},
		{"DELETE", base + "nope", 400, "Invalid stream\n"},
		{"POST", base + "nope", 404, "Stream not found\n"},
		{"POST", base + "ch", 200, ""},
		{"PUT", base + "ch/0", 405, "Method Not Allowed\n"},
		{"GET", base + "ch", 405, "Method Not Allowed\n"},
		{"POST", base + "ch/next", 405, "Method Not Allowed\n"},
		{"GET", base + "ch/0/extra", 404, "404 page not found\n"},
		{"GET", "/elsewhere/ch/0", 404, "404 page not found\n"},
		{"GET", base + "/0", 400, "invalid channel name\n"},
		{"GET", base + "%7F/0", 400, "invalid channel name\n"},
		{"GET", base + strings.Repeat("a", 300) + "/0", 400, "invalid channel name\n"},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, root+c.path, nil)
		if resp.StatusCode != c.status || body != c.body {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, resp.StatusCode, body, c.status, c.body)
		}
	}
	// A publish to an unknown channel closes the connection (it wakes
	// preconnected publishers).
	resp, _ := do(t, "POST", url+"nope/0", strings.NewReader("x"))
	if !resp.Close {
		t.Error("404 to a publish did not close the connection")
	}
	// Nothing was created or written by any of that.
	if names := s.Names(); len(names) != 1 || names[0] != "ch" {
		t.Fatalf("channels %v", names)
	}
	if resp, body := do(t, "GET", url+"ch/next", nil); body != "0" {
		t.Fatalf("next after bad requests: %d %q", resp.StatusCode, body)
	}
}

func TestCreateRules(t *testing.T) {
	s, url := newTestServer(t, Config{MaxChannels: 2, RemoteCreate: true})
	mustCreate(t, s, "a")
	if err := s.Create("a"); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
	for _, bad := range []string{"", "a/b", "..", "x\ny", strings.Repeat("n", 257)} {
		if err := s.Create(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("Create(%q): %v", bad, err)
		}
	}
	// Remote create, with its MIME type from Expect-Content.
	if resp, _ := do(t, "POST", url+"b", nil, HeaderExpect, "application/json"); resp.StatusCode != 200 || !s.Has("b") {
		t.Fatalf("remote create: %d", resp.StatusCode)
	}
	if err := s.Create("c"); !errors.Is(err, ErrTooManyChannel) {
		t.Fatalf("third channel: %v", err)
	}
	if resp, _ := do(t, "POST", url+"c", nil); resp.StatusCode != 503 {
		t.Fatalf("remote create beyond the bound: %d", resp.StatusCode)
	}
	publish(t, newPub(t, url+"b"), "{}")
	if resp, _ := do(t, "GET", url+"b/0", nil); resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("MIME type %q", resp.Header.Get("Content-Type"))
	}
	s.Shutdown()
	if err := s.Create("z"); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Create after Shutdown: %v", err)
	}
	if len(s.Names()) != 0 {
		t.Fatalf("channels after Shutdown: %v", s.Names())
	}
}

// The segment behaviours the reference's tests codify: a repeated POST to
// an open segment appends; DELETE of a segment ends its readers;
// Lp-Trickle-Reset closes older segments; an empty POST makes an empty
// segment.
func TestSegmentEdges(t *testing.T) {
	s, url := newTestServer(t, Config{})
	mustCreate(t, s, "e")
	wait := waits(s)

	// An empty POST: 200, Connection: close, the segment exists and is empty.
	resp, _ := do(t, "POST", url+"e/-1", bytes.NewReader(nil))
	if resp.StatusCode != 200 || resp.Header.Get(HeaderSeq) != "0" || !resp.Close {
		t.Fatalf("empty POST: %d seq %q close %v", resp.StatusCode, resp.Header.Get(HeaderSeq), resp.Close)
	}
	resp, body := do(t, "GET", url+"e/0", nil)
	if resp.StatusCode != 200 || body != "" || resp.Header.Get(HeaderSeq) != "0" || resp.Header.Get(HeaderLatest) != "1" {
		t.Fatalf("GET empty segment: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	// POST -1 goes to the next position and says which.
	resp, _ = do(t, "POST", url+"e/-1", strings.NewReader("one"))
	if resp.Header.Get(HeaderSeq) != "1" {
		t.Fatalf("POST -1 wrote %q", resp.Header.Get(HeaderSeq))
	}

	// A reader waiting on segment 2; DELETE e/2 ends it with an empty answer.
	waiting := make(chan string, 1)
	go func() {
		r, b := do(t, "GET", url+"e/2", nil)
		waiting <- r.Header.Get(HeaderSeq) + ":" + b
	}()
	expectWait(t, wait, "get e 2")
	if resp, _ := do(t, "DELETE", url+"e/2", nil); resp.StatusCode != 200 {
		t.Fatalf("DELETE e/2: %d", resp.StatusCode)
	}
	if got := <-waiting; got != "2:" {
		t.Fatalf("reader of a deleted segment: %q", got)
	}

	// DELETE of a segment being written cuts it off for its readers.
	cutR, cutW := io.Pipe()
	go func() {
		req, _ := http.NewRequest("POST", url+"e/2", cutR)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	cutW.Write([]byte("half"))
	expectWait(t, wait, "post e 2") // the new segment 2 is open, not the deleted one
	cutSub := newSub(t, url+"e", 2)
	cutSeg, err := cutSub.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The reader has the segment's first bytes: it is being written (the
	// publish has reached the server) before it is deleted.
	head := make([]byte, 4)
	if _, err := io.ReadFull(cutSeg.Body, head); err != nil || string(head) != "half" {
		t.Fatalf("the segment being written: %q, %v", head, err)
	}
	if resp, _ := do(t, "DELETE", url+"e/2", nil); resp.StatusCode != 200 {
		t.Fatalf("DELETE of a segment being written: %d", resp.StatusCode)
	}
	if b, err := io.ReadAll(cutSeg.Body); err == nil {
		t.Fatalf("reader of a segment deleted while written got a clean end after %q", b)
	}
	cutSeg.Body.Close()
	cutW.Close()

	// Reset: an open older segment is closed, so its reader gets what
	// there was.
	pr, pw := io.Pipe()
	go func() {
		req, _ := http.NewRequest("POST", url+"e/3", pr)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write([]byte("part"))
	sub := newSub(t, url+"e", 3)
	seg, err := sub.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = do(t, "POST", url+"e/4", strings.NewReader("fresh"), HeaderReset, "1")
	if resp.StatusCode != 200 {
		t.Fatalf("reset POST: %d", resp.StatusCode)
	}
	b, err := io.ReadAll(seg.Body)
	seg.Body.Close()
	if err != nil || string(b) != "part" {
		t.Fatalf("reader of the segment reset away: %q %v", b, err)
	}
	pw.Close()
}

func TestLocalPublish(t *testing.T) {
	s, url := newTestServer(t, Config{MaxSegmentBytes: 8})
	mustCreate(t, s, "ev", WithMIME("application/json"))
	wait := waits(s)
	sub := newSub(t, url+"ev", SeqNext)
	got := make(chan string, 1)
	go func() {
		seg, err := sub.Read(context.Background())
		if err != nil {
			t.Error(err)
			got <- ""
			return
		}
		b, _ := io.ReadAll(seg.Body)
		seg.Body.Close()
		got <- strconv.Itoa(seg.Seq) + ":" + string(b)
	}()
	expectWait(t, wait, "get ev 0")
	if seq, err := s.Publish("ev", []byte(`{"a":1}`)); err != nil || seq != 0 {
		t.Fatalf("Publish: %d %v", seq, err)
	}
	if g := <-got; g != `0:{"a":1}` {
		t.Fatalf("reader got %q", g)
	}
	if _, err := s.Publish("ev", []byte("too long!")); err == nil {
		t.Fatal("a segment over the limit was published")
	}
	if _, err := s.Publish("nope", nil); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
	if resp, body := do(t, "GET", url+"ev/next", nil); body != "1" {
		t.Fatalf("next after one publish: %d %q", resp.StatusCode, body)
	}
}

// A publish refused part way, whose client keeps its body open, does not
// hold the server: the connection closes without waiting for the rest.
func TestRefusedPublishLetsGoOfTheConnection(t *testing.T) {
	s, url := newTestServer(t, Config{MaxSegmentBytes: 4})
	mustCreate(t, s, "lim")
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(url, base), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One chunk of 10 bytes, then nothing: the body never ends.
	io.WriteString(conn, "POST "+base+"lim/0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, err := io.ReadAll(conn) // until the server closes
	if err != nil {
		t.Fatalf("the server still holds the connection of a refused publish: %v (read %q)", err, answer)
	}
	if !strings.HasPrefix(string(answer), "HTTP/1.1 413 ") {
		t.Fatalf("answer %q", answer)
	}
}
