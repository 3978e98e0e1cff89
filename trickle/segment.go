package trickle

import "sync"

// segment is one numbered segment of a channel: the chunks published so
// far, fanned out to every reader as they arrive. A reader keeps its own
// position (a chunk index); chunks are only appended, never changed, so
// readers never block the publisher, and a segment holds its bytes once
// (no slice doubling).
type segment struct {
	seq int

	mu      sync.Mutex
	chunks  [][]byte
	size    int64
	closed  bool          // complete (or given up); no more data will come
	aborted bool          // given up part way (size limit, publisher error): readers must not take it as whole
	changed chan struct{} // closed and replaced on every write and on close
	done    chan struct{} // closed once, when the segment closes
}

func newSegment(seq int) *segment {
	return &segment{seq: seq, changed: make(chan struct{}), done: make(chan struct{})}
}

// write appends a copy of p and wakes the readers. It refuses (and drops
// p) when the segment is already closed, or when p would take it beyond
// limit bytes.
func (g *segment) write(p []byte, limit int64) (closed, tooBig bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return true, false
	}
	if g.size+int64(len(p)) > limit {
		return false, true
	}
	g.chunks = append(g.chunks, append([]byte(nil), p...))
	g.size += int64(len(p))
	close(g.changed)
	g.changed = make(chan struct{})
	return false, false
}

// close marks the segment complete; abort marks it given up. Both wake
// readers and preconnected publishers; only the first call counts.
func (g *segment) close() { g.finish(false) }
func (g *segment) abort() { g.finish(true) }

// closeOrCut closes a segment nobody has written to, and aborts one whose
// publisher had begun: its readers must not take a part for the whole.
func (g *segment) closeOrCut() {
	g.mu.Lock()
	begun := g.size > 0
	g.mu.Unlock()
	g.finish(begun)
}

func (g *segment) finish(aborted bool) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed, g.aborted = true, aborted
	close(g.changed)
	close(g.done)
}

// read returns the chunks from index pos on that are there now, whether
// the segment is finished (eof: nothing after them will come) and aborted,
// and a channel that is closed when more is there to read.
func (g *segment) read(pos int) (chunks [][]byte, eof, aborted bool, wait <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if pos < len(g.chunks) {
		chunks = g.chunks[pos:len(g.chunks):len(g.chunks)]
	}
	return chunks, g.closed, g.aborted, g.changed
}

func (g *segment) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}
