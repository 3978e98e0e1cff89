package trickle

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
)

// benchRoundTrip publishes b.N segments of size bytes on one channel over
// loopback HTTP, each read whole by a reader that asked for it before it
// was published (as a live subscriber does). The client side is plain
// net/http, so the figure is the server's.
func benchRoundTrip(b *testing.B, size int) {
	s := NewServer(Config{BasePath: "/ai/trickle/", SweepInterval: -1})
	defer s.Shutdown()
	hs := httptest.NewServer(s)
	defer hs.Close()
	if err := s.Create("ch"); err != nil {
		b.Fatal(err)
	}
	url := hs.URL + "/ai/trickle/ch/"
	payload := bytes.Repeat([]byte("x"), size)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := range b.N {
		got := make(chan int, 1)
		go func() {
			resp, err := client.Get(url + strconv.Itoa(i))
			if err != nil {
				got <- -1
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got <- int(n)
		}()
		resp, err := client.Post(url+strconv.Itoa(i), "video/MP2T", bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n := <-got; n != size {
			b.Fatalf("segment %d: read %d bytes", i, n)
		}
	}
}

func BenchmarkRoundTrip1KiB(b *testing.B)  { benchRoundTrip(b, 1<<10) }
func BenchmarkRoundTrip64KiB(b *testing.B) { benchRoundTrip(b, 64<<10) }
func BenchmarkRoundTrip1MiB(b *testing.B)  { benchRoundTrip(b, 1<<20) }

// BenchmarkIdleChannels reports the heap one idle channel costs (five per
// stream), measured over 50,000 channels.
func BenchmarkIdleChannels(b *testing.B) {
	const n = 50000
	for range b.N {
		s := NewServer(Config{SweepInterval: -1})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range n {
			if err := s.Create("stream-" + strconv.Itoa(i)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/channel")
		runtime.KeepAlive(s)
	}
}
