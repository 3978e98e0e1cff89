package gateway

import (
	"bufio"
	"bytes"
	"io"
	"math/big"
	"net/http"
	"sync"

	"byoc/ledger"
)

// relayResult is how relaying an orchestrator's answer to the client went.
type relayResult struct {
	sse      bool
	bytes    int64
	head     []byte // the first bytes of a plain body (to recognise errors)
	complete bool   // the orchestrator's answer was read to its end ([DONE] for a stream)
	// upstreamErr: reading the orchestrator broke off; clientErr: writing
	// to the client failed (it left).
	upstreamErr, clientErr error
	// For streams: the balance line the orchestrator injects before
	// [DONE] (`data: {"balance": N.000}`), and whether it stopped the
	// stream for insufficient balance.
	end          ledger.Amount
	endOK        bool
	insufficient bool
}

// hopHeaders are not relayed (RFC 9110 §7.6.1), nor is the length of a
// stream the gateway re-frames.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// copyHeader copies the orchestrator's answer headers (the worker's
// Content-Type, X-Metadata, Livepeer-Balance, Livepeer-Job-Charged, ...)
// except hop-by-hop ones.
func copyHeader(dst, src http.Header, sse bool) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
	for _, k := range hopHeaders {
		delete(dst, k)
	}
	if sse {
		delete(dst, "Content-Length")
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

const headLen = 256

// relayPlain copies a plain answer to the client as it arrives.
func relayPlain(w http.ResponseWriter, body io.Reader) (rr relayResult) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if len(rr.head) < headLen {
				rr.head = append(rr.head, buf[:min(n, headLen-len(rr.head))]...)
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				rr.clientErr = werr
				return rr
			}
			rr.bytes += int64(n)
		}
		if err == io.EOF {
			rr.complete = true
			break
		}
		if err != nil {
			rr.upstreamErr = err
			break
		}
	}
	http.NewResponseController(w).Flush()
	return rr
}

var (
	doneMarker   = []byte("[DONE]")
	balancePfx   = []byte(`data: {"balance":`)
	insufficient = []byte("event: insufficient balance")
)

// relaySSE relays server-sent events line by line as they arrive, flushing
// whenever nothing more is buffered. It stops after the line containing
// [DONE] (go-livepeer orchestrators keep the stream open with newlines
// until the timeout, D2b), ending that event with a blank line.
func relaySSE(w http.ResponseWriter, body io.Reader) relayResult {
	rr := relayResult{sse: true}
	rc := http.NewResponseController(w)
	br := bufio.NewReaderSize(body, 32<<10)
	partial := false // the previous read ended inside a long line
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				rr.clientErr = werr
				return rr
			}
			rr.bytes += int64(len(line))
			if !partial {
				t := bytes.TrimRight(line, "\r\n")
				switch {
				case bytes.HasPrefix(t, balancePfx):
					rr.end, rr.endOK = parseBalanceLine(t[len(balancePfx):])
				case bytes.Equal(t, insufficient):
					rr.insufficient = true
				case bytes.Contains(t, doneMarker):
					io.WriteString(w, "\n")
					rc.Flush()
					rr.complete = true
					return rr
				}
			}
		}
		partial = err == bufio.ErrBufferFull
		switch {
		case err == io.EOF:
			rr.complete = true
			rc.Flush()
			return rr
		case err != nil && !partial:
			rr.upstreamErr = err
			rc.Flush()
			return rr
		}
		if br.Buffered() == 0 {
			if err := rc.Flush(); err != nil {
				rr.clientErr = err
				return rr
			}
		}
	}
}

// parseBalanceLine reads ` 8000000000.000}` (the rest of a balance line)
// as a whole number of wei.
func parseBalanceLine(b []byte) (ledger.Amount, bool) {
	b = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(b), []byte("}")))
	r, ok := new(big.Rat).SetString(string(b))
	if !ok || !r.IsInt() {
		return ledger.Amount{}, false
	}
	return ledger.AmountFromBig(r.Num()), true
}
