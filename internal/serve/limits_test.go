package serve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// start serves h within l on a loopback port.
func start(t *testing.T, l Limits, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := l.Server(h, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// readAll answers how many bytes of body it read, or 400 (what a job
// handler does with a body it could not read).
var readAll = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "bad body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "read %d", len(b))
})

// post sends headers for a body of n bytes and the first sent bytes of it.
func post(t *testing.T, addr string, n, sent int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /job HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", n, strings.Repeat("x", sent))
	return c, bufio.NewReader(c)
}

func response(t *testing.T, r *bufio.Reader) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A client trickling its body a byte every 100 ms gets 408 once the body
// timeout passes, and the connection is closed.
func TestBodyTimeout(t *testing.T) {
	addr := start(t, Limits{BodyTimeout: 300 * time.Millisecond}, readAll)
	c, r := post(t, addr, 1000, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		// 50 bytes at most, then the client gives up: a server without the
		// timeout answers 400 for the cut body instead of waiting for ever.
		for range 50 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	status, body := response(t, r)
	if status != http.StatusRequestTimeout || !strings.Contains(body, "not received within 300ms") {
		t.Fatalf("trickled body: %d %q", status, body)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hang fails, not blocks
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("connection still open after 408")
	}
}

// With MaxUploads bodies being read, one more request with a body gets 503
// at once; requests without one are served; a body read to its end frees
// its slot while its handler still runs.
func TestMaxUploads(t *testing.T) {
	entered := make(chan struct{}, 4)
	bodyIn := make(chan struct{}, 1)
	finish := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, "ok")
			return
		}
		entered <- struct{}{}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if string(b) == "xlow" {
			bodyIn <- struct{}{}
			<-finish // a long job after its body arrived
		}
		fmt.Fprintf(w, "read %d", len(b))
	})
	addr := start(t, Limits{MaxUploads: 2, BodyTimeout: time.Minute}, h)
	c1, r1 := post(t, addr, 4, 1)
	c2, r2 := post(t, addr, 4, 1)
	<-entered
	<-entered

	_, r3 := post(t, addr, 4, 4)
	if status, body := response(t, r3); status != http.StatusServiceUnavailable || !strings.Contains(body, "Too many request bodies") {
		t.Fatalf("third upload: %d %q", status, body)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET beside full uploads: %v %v", resp, err)
	}
	resp.Body.Close()

	io.WriteString(c1, "low") // "xlow": its handler keeps running
	io.WriteString(c2, "xxx")
	if status, body := response(t, r2); status != http.StatusOK || body != "read 4" {
		t.Fatalf("second upload: %d %q", status, body)
	}
	<-bodyIn
	// Both slots are free again although the first handler still runs.
	for range 2 {
		resp, err := http.Post("http://"+addr+"/job", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "read 5" {
			t.Fatalf("upload after slots freed: %d %q", resp.StatusCode, b)
		}
		<-entered
	}
	close(finish)
	if status, body := response(t, r1); status != http.StatusOK || body != "read 4" {
		t.Fatalf("first upload: %d %q", status, body)
	}
}

func TestListenNamesAddressAndCause(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String())
	if want := "listen on " + ln.Addr().String() + ": address already in use"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// A streaming path's bodies take no upload slot and have no deadline: a
// trickle publisher waiting for its next segment's data holds neither,
// while a job's upload beside it is still bounded.
func TestStreamingPathsUnbounded(t *testing.T) {
	entered := make(chan struct{}, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "read %d", len(b))
	})
	addr := start(t, Limits{MaxUploads: 1, BodyTimeout: 50 * time.Millisecond, Streaming: []string{"/ai/trickle/"}}, h)
	// Two slow streaming bodies at once, past the body timeout.
	var conns []net.Conn
	var readers []*bufio.Reader
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /ai/trickle/s/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nx")
		conns, readers = append(conns, c), append(readers, bufio.NewReader(c))
		select {
		case <-entered:
		case <-time.After(10 * time.Second): // a failure's bound, not a sync
			t.Fatal("a streaming body was not admitted (it took an upload slot?)")
		}
	}
	// The one upload slot is free: a job's body is still taken.
	resp, err := http.Post("http://"+addr+"/job", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "read 5" {
		t.Fatalf("job beside streaming bodies: %d %q", resp.StatusCode, b)
	}
	<-entered
	// A job's body that stalls still gets 408 (the deadline applies there).
	c, r := post(t, addr, 4, 1)
	<-entered
	if status, body := response(t, r); status != http.StatusRequestTimeout {
		t.Fatalf("stalled job body: %d %q", status, body)
	}
	c.Close()
	// The streaming bodies, finished late, are read whole.
	for i, c := range conns {
		io.WriteString(c, "xxx")
		if status, body := response(t, readers[i]); status != http.StatusOK || body != "read 4" {
			t.Fatalf("streaming body %d: %d %q", i, status, body)
		}
	}
}

// WithStreaming adds a prefix to a copy: two roles' additions to one
// configured Limits never see each other's.
func TestWithStreamingCopies(t *testing.T) {
	base := Limits{Streaming: make([]string, 1, 4)}
	base.Streaming[0] = "/a/"
	x, y := base.WithStreaming("/x/"), base.WithStreaming("/y/")
	if len(base.Streaming) != 1 || x.Streaming[1] != "/x/" || y.Streaming[1] != "/y/" {
		t.Fatalf("base %v, x %v, y %v", base.Streaming, x.Streaming, y.Streaming)
	}
}

// TestUncleanPath: a path with empty, "." or ".." elements gets 400 naming
// it, not the redirect http.ServeMux answers, and the handler never sees
// it; clean paths, with or without a trailing slash, reach the handler.
func TestUncleanPath(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/job", readAll)
	mux.Handle("/dir/", readAll)
	addr := start(t, Limits{}, mux)
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/job", http.StatusOK},
		{"/dir/", http.StatusOK},
		{"/dir/x", http.StatusOK},
		{"//job", http.StatusBadRequest},
		{"/x/../job", http.StatusBadRequest},
		{"/./job", http.StatusBadRequest},
		{"/dir/.", http.StatusBadRequest},
		{"/dir//x", http.StatusBadRequest},
		{"/job/..", http.StatusBadRequest},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab", tc.path)
		code, body := response(t, bufio.NewReader(c))
		c.Close()
		if code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.path, code, body, tc.code)
		}
		if tc.code == http.StatusOK && body != "read 2" {
			t.Errorf("%s: body %q, want the handler's", tc.path, body)
		}
		if tc.code == http.StatusBadRequest && !strings.Contains(body, "Malformed path") {
			t.Errorf("%s: body %q does not say the path is malformed", tc.path, body)
		}
	}
}
