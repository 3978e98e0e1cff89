package orchestrator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"byoc/ledger"
	"byoc/orchestrator/meter"
	"byoc/wire"
)

// maxSSELine bounds one line of a worker's event stream.
const maxSSELine = 1 << 20

// relaySSE streams a worker's server-sent events to the gateway as they
// arrive. While it runs, the job is charged every ChargeInterval for the
// seconds used so far; when the hold cannot cover the next charge the
// stream is stopped with an `insufficient balance` event — this job only.
// It ends when the worker's stream ends (after a line containing [DONE],
// or EOF), at the timeout, when the worker's connection breaks, or when
// the gateway goes away; unlike go-livepeer it does not keep the
// connection open until the timeout (docs/protocol.md, D2b). The final charge
// covers the last partial second, within the timeout and the hold.
//
// A worker stream that ends with EOF but no [DONE] ended on its own: that
// is a normal end (many event sources just close). One that breaks (the
// connection drops mid-stream) or is cut at the timeout gets, after the
// balance line, an `event: error` with a JSON `{"error": …}`, so a
// client never mistakes it for a finished stream; a worker that broke is
// removed, as for plain jobs.
//
// It returns the job's outcome for the jobs metric: "sse" (the stream
// ended), "insufficient_balance", "timeout", "worker_failed" or
// "client_gone" (the gateway left, or could no longer be written to).
func (j *jobRun) relaySSE(w http.ResponseWriter, r *http.Request, resp *http.Response, wctx context.Context, stopWorker context.CancelFunc) string {
	ctx := context.WithoutCancel(r.Context())
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set(wire.HeaderMetadata, resp.Header.Get(wire.HeaderMetadata))
	h.Set(wire.HeaderPaymentBalance, j.accountBalance(ctx))
	w.WriteHeader(http.StatusOK)
	rc.Flush()

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
	if !j.job.Free() {
		t, stop := j.o.meter.Ticks(j.o.cfg.ChargeInterval)
		defer stop()
		tick = t
	}
	final := func() ledger.Amount {
		f, err := j.job.Finish(ctx, j.now())
		j.finished(f, err)
		return f.Released
	}
	// relay writes one line to the gateway; false means it is gone.
	relay := func(line []byte) bool {
		w.Write(line)
		_, err := io.WriteString(w, "\n")
		return err == nil && rc.Flush() == nil
	}
	// cut ends a stream that did not finish: the balance line, then an
	// error event saying why.
	cut := func(why string) {
		left := final() // the hold after the last charge, now back in the pool
		data, _ := json.Marshal(map[string]string{"error": why})
		fmt.Fprintf(w, "data: {\"balance\": %s.000}\n\n\nevent: error\ndata: %s\n\n", left, data)
		rc.Flush()
	}
	// ended tells a timeout from the gateway leaving, once wctx is done.
	ended := func() string {
		if r.Context().Err() != nil {
			final()
			return "client_gone"
		}
		cut(fmt.Sprintf("job timed out: the worker did not finish within %d s", j.req.TimeoutSeconds))
		return "timeout"
	}
	for {
		select {
		case line := <-lines:
			if bytes.Contains(line, []byte("[DONE]")) {
				stopWorker()
				left := final() // the hold after the last charge, now back in the pool
				fmt.Fprintf(w, "data: {\"balance\": %s.000}\n\n\n", left)
				if !relay(line) {
					return "client_gone"
				}
				return "sse"
			}
			if !relay(line) {
				stopWorker()
				final()
				return "client_gone"
			}
		case err := <-readDone:
			switch {
			case wctx.Err() != nil:
				return ended()
			case errors.Is(err, io.EOF):
				final()
				return "sse"
			}
			stopWorker()
			j.o.reg.removeWorker(j.req.Capability, j.slot.url)
			j.log.Warn("worker stream broke; worker removed", "url", j.slot.url, "err", err)
			cut("worker stream broke: " + err.Error())
			return "worker_failed"
		case at := <-tick:
			// Charged up to the tick's time, not to when the relay got to
			// it: a tick taken late charges no time it did not cover.
			_, err := j.job.Debit(ctx, at)
			if errors.Is(err, meter.ErrInsufficientBalance) {
				stopWorker()
				io.WriteString(w, "event: insufficient balance\ndata: {\"balance\": 0}\n\ndata: [DONE]\n\n")
				rc.Flush()
				// The part of a second the hold could not cover is not
				// charged: a stream never takes more than its hold.
				j.finish(ctx, false)
				return "insufficient_balance"
			} else if err != nil {
				j.log.Error("charge running stream", "err", err)
			}
		case <-wctx.Done():
			return ended()
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
	if j.job.Free() {
		return "0"
	}
	bal, err := j.job.Balance(ctx)
	if err != nil {
		return "0"
	}
	return bal.String()
}
