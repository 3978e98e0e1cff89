package trickle

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// FuzzServerRequest sends one request of any method, path, reset header
// and body to a server with one channel holding one segment: the answer is
// one of the statuses the protocol knows, never a panic or a 500, and a
// refused request changes nothing.
func FuzzServerRequest(f *testing.F) {
	for _, s := range []struct{ method, path, reset, body string }{
		{"GET", "/ai/trickle/ch/0", "", ""},
		{"GET", "/ai/trickle/ch/-1", "", ""},
		{"GET", "/ai/trickle/ch/-2", "", ""},
		{"GET", "/ai/trickle/ch/next", "", ""},
		{"POST", "/ai/trickle/ch/-1", "", "data"},
		{"POST", "/ai/trickle/ch/3", "1", "data"},
		{"POST", "/ai/trickle/ch/0", "", "0123456789012345678901234567890123456789012345678901234567890123456789"},
		{"POST", "/ai/trickle/ch", "", ""},
		{"DELETE", "/ai/trickle/ch", "", ""},
		{"DELETE", "/ai/trickle/ch/0", "", ""},
		{"GET", "/ai/trickle/ch/99999999999999999999", "", ""},
		{"GET", "/ai/trickle/ch/-9223372036854775808", "", ""},
		{"PUT", "/ai/trickle//0", "", ""},
		{"GET", "/ai/trickle/../ch/0", "", ""},
	} {
		f.Add(s.method, s.path, s.reset, []byte(s.body))
	}
	allowed := map[int]bool{200: true, 400: true, 404: true, 405: true, 413: true, StatusGone: true}
	f.Fuzz(func(t *testing.T, method, path, reset string, body []byte) {
		s := NewServer(Config{BasePath: "/ai/trickle/", SweepInterval: -1, MaxSegmentBytes: 64, FirstByteTimeout: time.Hour})
		defer s.Shutdown()
		if err := s.Create("ch"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Publish("ch", []byte("x")); err != nil {
			t.Fatal(err)
		}
		// A cancelled context: a read that would wait for data returns.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := (&http.Request{
			Method: method, URL: &url.URL{Path: path}, Header: http.Header{},
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		}).WithContext(ctx)
		if reset != "" {
			req.Header.Set(HeaderReset, reset)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("%q %q: status %d %q", method, path, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 && rec.Code != StatusGone {
			c := s.lookup("ch")
			if c == nil {
				t.Fatalf("%q %q refused (%d) but the channel is gone", method, path, rec.Code)
			}
			if next, _ := c.state(); next != 1 && rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%q %q refused (%d) but moved the channel to %d", method, path, rec.Code, next)
			}
		}
		for _, h := range []string{HeaderSeq, HeaderLatest} {
			if v := rec.Header().Get(h); v != "" {
				if _, err := strconv.Atoi(v); err != nil {
					t.Fatalf("%s: %q", h, v)
				}
			}
		}
		// The client's header parsing takes any value without panicking.
		hdr := http.Header{}
		hdr.Set(HeaderSeq, reset)
		if n, ok := headerInt(hdr, HeaderSeq); ok && (n < SeqCurrent || n > maxSeq) {
			t.Fatalf("headerInt(%q) = %d", reset, n)
		}
	})
}
