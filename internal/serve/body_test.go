package serve

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// failingBody yields some bytes, then err.
type failingBody struct {
	left int
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, b.err
	}
	n := min(len(p), b.left)
	b.left -= n
	return n, nil
}

func (b *failingBody) Close() error { return nil }

func TestReadBodySaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   io.ReadCloser
		status int
		reason string
	}{
		{"too large", io.NopCloser(strings.NewReader(strings.Repeat("x", 11))), http.StatusRequestEntityTooLarge, "body_too_large"},
		{"not in time", &failingBody{3, os.ErrDeadlineExceeded}, http.StatusRequestTimeout, "body_timeout"},
		{"malformed chunking", &failingBody{3, errors.New(`malformed chunked encoding`)}, http.StatusBadRequest, "bad_body"},
		{"broken off", &failingBody{3, io.ErrUnexpectedEOF}, http.StatusBadRequest, "bad_body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body = tc.body
			_, err := ReadBody(httptest.NewRecorder(), r, 10)
			if err == nil || err.Status != tc.status || err.Reason != tc.reason {
				t.Fatalf("ReadBody = %+v, want %d %s", err, tc.status, tc.reason)
			}
		})
	}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 10)))
	if body, err := ReadBody(httptest.NewRecorder(), r, 10); err != nil || len(body) != 10 {
		t.Fatalf("a body of the limit: %d bytes, %v", len(body), err)
	}
}
