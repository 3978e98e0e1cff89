package orchestrator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"byoc/ledger"
	"byoc/wire"
)

// maxSSELine bounds one line of a worker's event stream.
const maxSSELine = 1 << 20

// relaySSE streams a worker's server-sent events to the gateway as they
// arrive. While it runs, the job is charged every ChargeInterval for the
// whole seconds used so far; when the hold cannot cover the next charge
// the stream is stopped with an `insufficient balance` event — this job
// only. It ends when the worker's stream ends (after a line containing
// [DONE], or EOF), at the timeout, or when the gateway goes away; unlike
// go-livepeer it does not keep the connection open until the timeout
// (docs/protocol.md, D2b). The final charge covers the last partial second.
func (j *jobRun) relaySSE(w http.ResponseWriter, r *http.Request, resp *http.Response, wctx context.Context, stopWorker context.CancelFunc, began time.Time) {
	ctx := context.WithoutCancel(r.Context())
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set(wire.HeaderMetadata, resp.Header.Get(wire.HeaderMetadata))
	h.Set(wire.HeaderPaymentBalance, j.accountBalance(ctx))
	w.WriteHeader(http.StatusOK)
	flush()

	lines := make(chan []byte)
	readDone := make(chan error, 1)
	go func() {
		br := bufio.NewReaderSize(resp.Body, 64<<10)
		for {
			line, err := readLine(br)
			if len(line) > 0 || err == nil {
				select {
				case lines <- line:
				case <-wctx.Done():
					readDone <- wctx.Err()
					return
				}
			}
			if err != nil {
				readDone <- err
				return
			}
		}
	}()
	var tick <-chan time.Time
	if !j.free() {
		t := time.NewTicker(j.o.cfg.ChargeInterval)
		defer t.Stop()
		tick = t.C
	}
	final := func() ledger.Amount {
		_, released := j.finish(ctx, time.Since(began), true)
		return released
	}
	for {
		select {
		case line := <-lines:
			if bytes.Contains(line, []byte("[DONE]")) {
				stopWorker()
				left := final() // the hold after the last charge, now back in the pool
				fmt.Fprintf(w, "data: {\"balance\": %s.000}\n\n\n", left)
				w.Write(line)
				io.WriteString(w, "\n")
				flush()
				return
			}
			w.Write(line)
			io.WriteString(w, "\n")
			flush()
		case err := <-readDone:
			if !errors.Is(err, io.EOF) && wctx.Err() == nil {
				j.log.Warn("worker stream ended with an error", "err", err)
			}
			final()
			return
		case <-tick:
			err := j.chargeUpTo(ctx, time.Since(began), false)
			if errors.Is(err, ledger.ErrInsufficientFunds) {
				stopWorker()
				j.o.m.jobs.WithLabelValues(j.req.Capability, "insufficient_balance").Inc()
				io.WriteString(w, "event: insufficient balance\ndata: {\"balance\": 0}\n\ndata: [DONE]\n\n")
				flush()
				// The part of a second the hold could not cover is not
				// charged: a stream never takes more than its hold.
				j.finish(ctx, 0, false)
				return
			} else if err != nil {
				j.log.Error("charge running stream", "err", err)
			}
		case <-wctx.Done():
			final()
			return
		}
	}
}

// readLine reads one line without its newline; a line longer than
// maxSSELine is cut there (the rest comes as further lines).
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		frag, err := br.ReadSlice('\n')
		out = append(out, frag...)
		if err == bufio.ErrBufferFull && len(out) < maxSSELine {
			continue
		}
		if err == bufio.ErrBufferFull {
			err = nil
		}
		return bytes.TrimRight(out, "\r\n"), err
	}
}

// accountBalance is the current balance of the job's account, in whole wei.
func (j *jobRun) accountBalance(ctx context.Context) string {
	if j.free() {
		return "0"
	}
	bal, err := j.o.cfg.Ledger.Balance(ctx, j.account)
	if err != nil {
		return "0"
	}
	return bal.String()
}
