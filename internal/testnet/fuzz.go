package testnet

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzWorker is a worker for fuzz targets that answers every job at once,
// so an iteration's outcome does not depend on timing: the body reversed,
// or under <url>/sse a three-event stream, or under <url>/status/<code>
// that status with "worker status" as its body. Register it under
// <url>/w. Calls counts the jobs it got.
type FuzzWorker struct {
	*httptest.Server
	Calls atomic.Int64
}

// StartFuzzWorker starts a FuzzWorker on loopback, closed at cleanup.
func StartFuzzWorker(t testing.TB) *FuzzWorker {
	w := &FuzzWorker{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.Calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		rest := strings.TrimPrefix(r.URL.Path, "/w")
		switch {
		case strings.HasPrefix(rest, "/sse"):
			rw.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(rw, "data: {\"i\":%d}\n\n", i)
				rw.(http.Flusher).Flush()
			}
		case strings.HasPrefix(rest, "/status/"):
			code, err := strconv.Atoi(rest[len("/status/"):])
			if err != nil || code < 200 || code > 599 {
				code = http.StatusTeapot
			}
			rw.WriteHeader(code)
			io.WriteString(rw, "worker status\n")
		default:
			rw.Header().Set("Content-Type", "text/plain")
			for i, j := 0, len(body)-1; i < j; i, j = i+1, j-1 {
				body[i], body[j] = body[j], body[i]
			}
			rw.Write(body)
		}
	}))
	t.Cleanup(w.Close)
	return w
}

// RawRequest builds the request a server would read from these bytes, or
// reports false when net/http's server would refuse them itself (a bad
// request line, a header it does not accept). fixed are header name/value
// pairs, left out when the value is empty; extra are more header lines.
func RawRequest(method, target, host string, fixed []string, extra string, body []byte) (*http.Request, bool) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for i := 0; i+1 < len(fixed); i += 2 {
		if fixed[i+1] == "" {
			continue
		}
		if strings.ContainsAny(fixed[i+1], "\r\n") {
			return nil, false
		}
		fmt.Fprintf(&b, "%s: %s\r\n", fixed[i], fixed[i+1])
	}
	for line := range strings.SplitSeq(extra, "\n") {
		if line = strings.TrimSuffix(line, "\r"); line != "" {
			b.WriteString(line + "\r\n")
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	req, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil || req.Host == "" {
		return nil, false
	}
	for k, vv := range req.Header {
		if !validHeaderName(k) {
			return nil, false
		}
		for _, v := range vv {
			if !validHeaderValue(v) {
				return nil, false
			}
		}
	}
	return req, true
}

// validHeaderName and validHeaderValue are the checks net/http's server
// makes (RFC 7230 tokens; no control characters but tab in values).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
