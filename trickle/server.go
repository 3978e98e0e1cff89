package trickle

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Wire names (docs/protocol.md, "Trickle").
const (
	HeaderSeq     = "Lp-Trickle-Seq"      // the segment served or written
	HeaderLatest  = "Lp-Trickle-Latest"   // the channel's next write position
	HeaderClosed  = "Lp-Trickle-Closed"   // present when the channel is closed
	HeaderReset   = "Lp-Trickle-Reset"    // publisher restart: close every older segment
	HeaderExpect  = "Expect-Content"      // MIME type on an HTTP create
	ClosedValue   = "terminated"          // the value of HeaderClosed
	StatusGone    = 470                   // the channel exists, the segment does not (any more)
	SeqNext       = -1                    // GET or POST: the channel's next write position
	SeqCurrent    = -2                    // GET: the segment being written now
	maxSeq        = 1 << 53               // larger sequence numbers are refused (no overflow)
	maxNameLength = 256                   // longer channel names are refused
	readChunk     = 32 << 10              // a publisher's body is read this much at a time
	notFoundText  = "Stream not found"    // 404 body, as the reference words it
	goneText      = "Entry not found"     // 470 body
	invalidSeq    = "Invalid idx"         // 400 body for a bad sequence number
	invalidStream = "Invalid stream"      // 400 body for DELETE of an unknown channel
	noSegmentText = "Nonexistent segment" // 400 body for DELETE of a segment not in the ring
)

// Defaults for Config's zero values; they are the reference's.
const (
	DefaultRingSize         = 5
	DefaultMaxSegmentBytes  = 16 << 20
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultSweepInterval    = time.Minute
	DefaultFirstByteTimeout = 10 * time.Second
)

// Errors of the programmatic API.
var (
	ErrExists         = errors.New("trickle: channel already exists")
	ErrNoChannel      = errors.New("trickle: no such channel")
	ErrBadName        = errors.New("trickle: bad channel name")
	ErrTooManyChannel = errors.New("trickle: too many channels")
	ErrServerClosed   = errors.New("trickle: server shut down")
)

// Ticker starts a ticker of period d and returns its ticks and a function
// that stops it (the shape of orchestrator/meter's Ticker). Tests pass one
// whose ticks they send themselves.
type Ticker func(d time.Duration) (ticks <-chan time.Time, stop func())

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Config sets up a Server. The zero value serves under "/" with the
// reference's limits.
type Config struct {
	// BasePath is the path prefix the channels are served under, such as
	// "/ai/trickle/"; a trailing slash is added when missing. Default "/".
	BasePath string
	// RingSize is how many segments a channel keeps (a slot is seq mod
	// RingSize). Default DefaultRingSize.
	RingSize int
	// MaxSegmentBytes bounds one segment; a publish that goes beyond it is
	// answered 413 and its readers see the segment cut off. A channel holds
	// at most RingSize segments, so this also bounds a channel's memory.
	// Default DefaultMaxSegmentBytes.
	MaxSegmentBytes int64
	// MaxChannels bounds how many channels exist at once; Create beyond it
	// fails with ErrTooManyChannel. 0 means no bound.
	MaxChannels int
	// RemoteCreate lets POST <base><name> create a channel (MIME type from
	// Expect-Content). Off, as on a BYOC orchestrator: channels are created
	// only by Create, and the POST answers 200 for an existing channel, else 404.
	RemoteCreate bool
	// IdleTimeout closes a channel nobody has published to for this long.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// SweepInterval is how often idle channels are looked for. Default
	// DefaultSweepInterval; negative turns the sweep loop off (Sweep can
	// still be called).
	SweepInterval time.Duration
	// FirstByteTimeout is how long a publish may wait for its first byte
	// before the server sends a "100 Continue" keepalive (and again each
	// period after). Default DefaultFirstByteTimeout.
	FirstByteTimeout time.Duration
	// Now is the clock of the idle sweep. Default time.Now.
	Now func() time.Time
	// Ticker drives the sweep loop and the publish keepalives. Default real
	// tickers.
	Ticker Ticker
	// OnClose, if set, is called (outside any lock) after a channel is
	// closed, with why: "close" (Close or Shutdown), "delete" (an HTTP
	// DELETE) or "idle" (the sweep).
	OnClose func(name, why string)
	// Logger gets one debug line per channel change. nil discards.
	Logger *slog.Logger
}

// Server serves trickle channels over HTTP. Create it with NewServer; it
// is safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	base string

	mu       sync.RWMutex
	channels map[string]*channel
	shut     bool

	stopSweep func()
	sweepDone chan struct{}

	// waiting, when set (by tests, before serving), is called when a read
	// starts waiting for a segment's data ("get") and when a publish has
	// its segment and starts reading its body ("post").
	waiting func(kind, name string, seq int)
}

// channel is one named stream of segments.
type channel struct {
	name     string
	mime     string
	maxBytes int64 // one segment's limit

	mu        sync.Mutex
	ring      []*segment
	nextWrite int
	writeTime time.Time
	closed    bool
}

// NewServer returns a Server and starts its idle sweep (unless
// cfg.SweepInterval is negative). Call Shutdown to stop it.
func NewServer(cfg Config) *Server {
	if cfg.BasePath == "" {
		cfg.BasePath = "/"
	}
	if !strings.HasSuffix(cfg.BasePath, "/") {
		cfg.BasePath += "/"
	}
	if cfg.RingSize <= 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.MaxSegmentBytes <= 0 {
		cfg.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.FirstByteTimeout <= 0 {
		cfg.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Ticker == nil {
		cfg.Ticker = realTicker
	}
	s := &Server{cfg: cfg, log: cfg.Logger, base: cfg.BasePath, channels: map[string]*channel{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.SweepInterval > 0 {
		ticks, stop := cfg.Ticker(cfg.SweepInterval)
		quit := make(chan struct{})
		s.sweepDone = make(chan struct{})
		var once sync.Once
		s.stopSweep = func() { once.Do(func() { stop(); close(quit) }) }
		go func() {
			defer close(s.sweepDone)
			for {
				select {
				case <-ticks:
					s.Sweep()
				case <-quit:
					return
				}
			}
		}()
	}
	return s
}

// ChannelOption sets up a channel at Create.
type ChannelOption func(*channel)

// WithMIME sets the Content-Type readers of the channel get.
func WithMIME(mime string) ChannelOption { return func(c *channel) { c.mime = mime } }

// WithMaxSegmentBytes sets the channel's own segment limit (a control or
// events channel needs far less than a video one); n <= 0 keeps
// Config.MaxSegmentBytes. The channel then holds at most RingSize × n bytes.
func WithMaxSegmentBytes(n int64) ChannelOption {
	return func(c *channel) {
		if n > 0 {
			c.maxBytes = n
		}
	}
}

// Create creates a channel. It fails with ErrExists for a name in use (so
// two streams cannot share a channel), ErrBadName, ErrTooManyChannel or
// ErrServerClosed.
func (s *Server) Create(name string, opts ...ChannelOption) error {
	if !validName(name) {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	c := &channel{name: name, ring: make([]*segment, s.cfg.RingSize), writeTime: s.cfg.Now(),
		maxBytes: s.cfg.MaxSegmentBytes}
	for _, o := range opts {
		o(c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shut:
		return ErrServerClosed
	case s.channels[name] != nil:
		return fmt.Errorf("%w: %q", ErrExists, name)
	case s.cfg.MaxChannels > 0 && len(s.channels) >= s.cfg.MaxChannels:
		return fmt.Errorf("%w (%d)", ErrTooManyChannel, s.cfg.MaxChannels)
	}
	s.channels[name] = c
	s.log.Debug("trickle channel created", "channel", name, "mime", c.mime)
	return nil
}

// Close closes a channel and removes it: its readers and waiting
// publishers are answered with Lp-Trickle-Closed, later requests get 404.
func (s *Server) Close(name string) error { return s.remove(name, "close") }

// Publish writes data as one whole segment at the channel's next write
// position, from inside the process (an orchestrator's own event, say),
// and returns its number. Readers waiting for that segment get it as if
// it had been POSTed.
func (s *Server) Publish(name string, data []byte) (int, error) {
	c := s.lookup(name)
	if c == nil {
		return 0, fmt.Errorf("%w: %q", ErrNoChannel, name)
	}
	if int64(len(data)) > c.maxBytes {
		return 0, fmt.Errorf("trickle: segment of %d bytes, at most %d", len(data), c.maxBytes)
	}
	g := c.forWrite(SeqNext)
	if closed := c.started(g.seq, s.cfg.Now()); closed {
		return g.seq, fmt.Errorf("%w: %q", ErrNoChannel, name)
	}
	if len(data) > 0 {
		if closed, _ := g.write(data, c.maxBytes); closed {
			return g.seq, fmt.Errorf("trickle: segment %d of %q closed while written", g.seq, name)
		}
	}
	g.close()
	return g.seq, nil
}

// Has reports whether a channel exists.
func (s *Server) Has(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.channels[name] != nil
}

// Names lists the channels, sorted.
func (s *Server) Names() []string {
	s.mu.RLock()
	names := make([]string, 0, len(s.channels))
	for n := range s.channels {
		names = append(names, n)
	}
	s.mu.RUnlock()
	sort.Strings(names)
	return names
}

// Shutdown stops the sweep and closes every channel. Create fails after it.
func (s *Server) Shutdown() {
	if s.stopSweep != nil {
		s.stopSweep()
		<-s.sweepDone
	}
	s.mu.Lock()
	s.shut = true
	s.mu.Unlock()
	for _, n := range s.Names() {
		_ = s.remove(n, "close")
	}
}

// Sweep closes every channel with no publish for IdleTimeout, by the
// configured clock, and returns their names. The sweep loop calls it every
// SweepInterval.
func (s *Server) Sweep() []string {
	now := s.cfg.Now()
	s.mu.RLock()
	chans := make([]*channel, 0, len(s.channels))
	for _, c := range s.channels {
		chans = append(chans, c)
	}
	s.mu.RUnlock()
	var swept []string
	for _, c := range chans {
		c.mu.Lock()
		idle := now.Sub(c.writeTime) > s.cfg.IdleTimeout
		c.mu.Unlock()
		if idle && s.removeChannel(c, "idle") {
			swept = append(swept, c.name)
		}
	}
	sort.Strings(swept)
	return swept
}

func (s *Server) remove(name, why string) error {
	s.mu.RLock()
	c := s.channels[name]
	s.mu.RUnlock()
	if c == nil || !s.removeChannel(c, why) {
		return fmt.Errorf("%w: %q", ErrNoChannel, name)
	}
	return nil
}

// removeChannel takes c out of the map (if it is still the channel of its
// name) and closes it; false if it was not there.
func (s *Server) removeChannel(c *channel, why string) bool {
	s.mu.Lock()
	if s.channels[c.name] != c {
		s.mu.Unlock()
		return false
	}
	delete(s.channels, c.name)
	s.mu.Unlock()
	c.close()
	s.log.Debug("trickle channel closed", "channel", c.name, "why", why)
	if s.cfg.OnClose != nil {
		s.cfg.OnClose(c.name, why)
	}
	return true
}

func (s *Server) lookup(name string) *channel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.channels[name]
}

func (c *channel) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for i, g := range c.ring {
		g.close()
		c.ring[i] = nil
	}
}

// validName: a channel name is one non-empty path element of printable
// UTF-8, at most maxNameLength bytes.
func validName(name string) bool {
	if name == "" || len(name) > maxNameLength || !utf8.ValidString(name) || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if r == '/' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// parseSeq reads a path's sequence number: an integer from min up to maxSeq.
func parseSeq(s string, min int) (int, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > maxSeq {
		return 0, false
	}
	return n, true
}

// route splits a request path below the base into the channel name and
// the rest ("" for the channel itself, else the sequence element); ok is
// false for a path that is not a channel's.
func (s *Server) route(path string) (name, rest string, hasRest, ok bool) {
	p, found := strings.CutPrefix(path, s.base)
	if !found {
		return "", "", false, false
	}
	name, rest, hasRest = strings.Cut(p, "/")
	if hasRest && strings.Contains(rest, "/") {
		return "", "", false, false
	}
	return name, rest, hasRest, true
}

// ServeHTTP serves the channels under the base path:
//
//	POST   <base><name>        create (RemoteCreate) or check a channel
//	DELETE <base><name>        close it
//	POST   <base><name>/<seq>  publish segment seq (-1: the next)
//	GET    <base><name>/<seq>  read segment seq (-1: the next, -2: the current)
//	GET    <base><name>/next   the next write position
//	DELETE <base><name>/<seq>  close one segment
//
// The statuses and headers are the reference's (docs/protocol.md, "Trickle").
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, rest, hasRest, ok := s.route(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !validName(name) {
		http.Error(w, "invalid channel name", http.StatusBadRequest)
		return
	}
	switch {
	case !hasRest && r.Method == http.MethodPost:
		s.serveCreate(w, r, name)
	case !hasRest && r.Method == http.MethodDelete:
		if err := s.remove(name, "delete"); err != nil {
			http.Error(w, invalidStream, http.StatusBadRequest)
		}
	case !hasRest:
		methodNotAllowed(w, "POST, DELETE")
	case rest == "next" && r.Method == http.MethodGet:
		s.serveNext(w, name)
	case rest == "next":
		methodNotAllowed(w, "GET")
	case r.Method == http.MethodGet:
		s.serveGet(w, r, name, rest)
	case r.Method == http.MethodPost:
		s.servePost(w, r, name, rest)
	case r.Method == http.MethodDelete:
		s.serveDeleteSeq(w, name, rest)
	default:
		methodNotAllowed(w, "GET, POST, DELETE")
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
}

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request, name string) {
	if s.Has(name) {
		return
	}
	if !s.cfg.RemoteCreate {
		http.Error(w, notFoundText, http.StatusNotFound)
		return
	}
	err := s.Create(name, WithMIME(r.Header.Get(HeaderExpect)))
	switch {
	case err == nil, errors.Is(err, ErrExists):
	case errors.Is(err, ErrTooManyChannel), errors.Is(err, ErrServerClosed):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

func (s *Server) serveNext(w http.ResponseWriter, name string) {
	c := s.lookup(name)
	if c == nil {
		http.Error(w, notFoundText, http.StatusNotFound)
		return
	}
	c.mu.Lock()
	next, closed := c.nextWrite, c.closed
	c.mu.Unlock()
	w.Header().Set(HeaderLatest, strconv.Itoa(next))
	if closed {
		w.Header().Set(HeaderClosed, ClosedValue)
	}
	io.WriteString(w, strconv.Itoa(next))
}

func (s *Server) serveDeleteSeq(w http.ResponseWriter, name, rest string) {
	c := s.lookup(name)
	if c == nil {
		http.Error(w, notFoundText, http.StatusNotFound)
		return
	}
	seq, ok := parseSeq(rest, 0)
	if !ok {
		http.Error(w, invalidSeq, http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	g := c.ring[seq%len(c.ring)]
	c.mu.Unlock()
	if g == nil || g.seq != seq {
		http.Error(w, noSegmentText, http.StatusBadRequest)
		return
	}
	g.closeOrCut()
}

// forWrite returns the segment seq (SeqNext: the next write position) to
// publish into, making it when it is not in the ring. A segment of that
// number that is already closed is started anew (its readers keep what
// they had); an open one is appended to, as in the reference.
func (c *channel) forWrite(seq int) *segment {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq == SeqNext {
		seq = c.nextWrite
	}
	slot := seq % len(c.ring)
	if g := c.ring[slot]; g != nil {
		if g.seq == seq && !g.isClosed() {
			return g
		}
		g.close()
	}
	g := newSegment(seq)
	if c.closed {
		g.close()
		return g
	}
	c.ring[slot] = g
	return g
}

// forRead returns the segment seq for a reader (SeqNext, SeqCurrent
// resolved), making it when the reader is just ahead of the publisher.
func (c *channel) forRead(seq int) (g *segment, resolved, next int, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch seq {
	case SeqNext:
		seq = c.nextWrite
	case SeqCurrent:
		seq = max(c.nextWrite-1, 0)
	}
	slot := seq % len(c.ring)
	g = c.ring[slot]
	if (g == nil || g.seq != seq) && !c.closed && (seq == c.nextWrite || (c.nextWrite == 0 && seq == 1)) {
		g.close()
		g = newSegment(seq)
		c.ring[slot] = g
	}
	if g != nil && g.seq != seq {
		g = nil
	}
	return g, seq, c.nextWrite, c.closed
}

// started records the first byte (or the empty end) of segment seq.
func (c *channel) started(seq int, now time.Time) (closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextWrite = seq + 1
	c.writeTime = now
	return c.closed
}

func (c *channel) state() (next int, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextWrite, c.closed
}

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, name, rest string) {
	c := s.lookup(name)
	if c == nil {
		http.Error(w, notFoundText, http.StatusNotFound)
		return
	}
	seq, ok := parseSeq(rest, SeqCurrent)
	if !ok {
		http.Error(w, invalidSeq, http.StatusBadRequest)
		return
	}
	g, _, latest, closed := c.forRead(seq)
	if g == nil {
		w.Header().Set(HeaderLatest, strconv.Itoa(latest))
		w.Header().Set(HeaderSeq, strconv.Itoa(seq))
		if closed {
			w.Header().Set(HeaderClosed, ClosedValue)
		} else {
			w.WriteHeader(StatusGone)
		}
		io.WriteString(w, goneText)
		return
	}
	rc := http.NewResponseController(w)
	pos, sent := 0, 0
	told := false
	for {
		chunks, eof, aborted, wait := g.read(pos)
		if len(chunks) > 0 {
			if sent == 0 {
				h := w.Header()
				if g.seq != latest {
					h.Set(HeaderLatest, strconv.Itoa(latest))
				}
				h.Set(HeaderSeq, strconv.Itoa(g.seq))
				if c.mime != "" {
					h.Set("Content-Type", c.mime)
				}
			}
			for _, b := range chunks {
				n, err := w.Write(b)
				sent += n
				if err != nil {
					return
				}
			}
			pos += len(chunks)
			if err := rc.Flush(); err != nil {
				return
			}
		}
		if eof {
			if aborted {
				// The segment was cut off: end the response without its
				// terminating chunk, so the reader cannot take a part for
				// the whole.
				panic(http.ErrAbortHandler)
			}
			if sent == 0 {
				next, closed := c.state()
				h := w.Header()
				h.Set(HeaderSeq, strconv.Itoa(g.seq))
				h.Set(HeaderLatest, strconv.Itoa(next))
				if closed {
					h.Set(HeaderClosed, ClosedValue)
				}
			}
			return
		}
		if len(chunks) > 0 {
			continue // more may have come while writing
		}
		if !told && s.waiting != nil {
			told = true
			s.waiting("get", c.name, g.seq)
		}
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		}
	}
}

// chunk is one read of a publisher's body.
type chunk struct {
	b   []byte
	err error
}

// readBody reads body in a goroutine, handing each read to the handler
// and waiting for it to be taken before reusing the buffer; it stops when
// quit closes.
func readBody(body io.Reader, out chan<- chunk, taken <-chan struct{}, quit <-chan struct{}) {
	buf := make([]byte, readChunk)
	for {
		n, err := body.Read(buf)
		select {
		case out <- chunk{buf[:n], err}:
		case <-quit:
			return
		}
		if err != nil {
			return
		}
		select {
		case <-taken:
		case <-quit:
			return
		}
	}
}

func (s *Server) servePost(w http.ResponseWriter, r *http.Request, name, rest string) {
	c := s.lookup(name)
	if c == nil {
		w.Header().Set("Connection", "close") // wakes preconnected publishers, as the reference does
		http.Error(w, notFoundText, http.StatusNotFound)
		return
	}
	seq, ok := parseSeq(rest, SeqNext)
	if !ok {
		http.Error(w, invalidSeq, http.StatusBadRequest)
		return
	}
	if r.ContentLength > c.maxBytes {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("segment too large: at most %d bytes", c.maxBytes),
			http.StatusRequestEntityTooLarge)
		return
	}
	g := c.forWrite(seq)
	if r.Header.Get(HeaderReset) != "" {
		c.mu.Lock()
		for _, old := range c.ring {
			if old != nil && old.seq < g.seq {
				old.close()
			}
		}
		c.mu.Unlock()
	}

	chunks := make(chan chunk)
	taken := make(chan struct{})
	quit := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		readBody(r.Body, chunks, taken, quit)
	}()
	bodyEnded := false // the reading goroutine got the body's end or error and returns
	defer func() {
		close(quit)
		if bodyEnded {
			<-readerDone
			return
		}
		// Answered before the body ended (every such answer closes the
		// connection): the reading goroutine may be blocked in Read. A read
		// deadline in the past ends that Read, so nothing reads the body
		// after the handler returns and the server is not left waiting on
		// a client that never sends the rest.
		if http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0)) == nil {
			<-readerDone
		}
	}()

	keepalive, stopKeepalive := s.cfg.Ticker(s.cfg.FirstByteTimeout)
	defer func() { stopKeepalive() }()
	var total int64
	if s.waiting != nil {
		s.waiting("post", c.name, g.seq)
	}
	for {
		select {
		case ch := <-chunks:
			bodyEnded = ch.err != nil
			if len(ch.b) > 0 {
				if total == 0 {
					c.started(g.seq, s.cfg.Now())
					stopKeepalive()
					keepalive = nil
				}
				closed, tooBig := g.write(ch.b, c.maxBytes)
				if tooBig {
					g.abort()
					w.Header().Set("Connection", "close")
					http.Error(w, fmt.Sprintf("segment too large: at most %d bytes", c.maxBytes),
						http.StatusRequestEntityTooLarge)
					return
				}
				if closed {
					s.endedWhileWriting(w, c, g)
					return
				}
				total += int64(len(ch.b))
			}
			switch {
			case ch.err == io.EOF:
				if total == 0 {
					closed := c.started(g.seq, s.cfg.Now())
					s.answerPreconnect(w, g, closed)
				} else {
					w.Header().Set(HeaderSeq, strconv.Itoa(g.seq))
				}
				g.close()
				return
			case ch.err != nil:
				if total > 0 {
					g.abort()
				}
				s.log.Debug("trickle publish read failed", "channel", name, "seq", g.seq, "err", ch.err)
				http.Error(w, "Server error", http.StatusInternalServerError)
				return
			}
			taken <- struct{}{}
		case <-g.done:
			if total == 0 {
				closed := c.started(g.seq, s.cfg.Now())
				s.answerPreconnect(w, g, closed)
				return
			}
			s.endedWhileWriting(w, c, g)
			return
		case <-keepalive:
			w.WriteHeader(http.StatusContinue)
		case <-r.Context().Done():
			if total > 0 {
				g.abort()
			}
			return
		}
	}
}

// answerPreconnect answers a publish that ended before its first byte: the
// body was empty, or the segment or the channel was closed meanwhile.
func (s *Server) answerPreconnect(w http.ResponseWriter, g *segment, closed bool) {
	w.Header().Set(HeaderSeq, strconv.Itoa(g.seq))
	if closed {
		w.Header().Set(HeaderClosed, ClosedValue)
	}
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
}

// endedWhileWriting answers a publish whose segment was closed under it
// (the channel closed, or the segment was replaced or deleted).
func (s *Server) endedWhileWriting(w http.ResponseWriter, c *channel, g *segment) {
	_, closed := c.state()
	w.Header().Set(HeaderSeq, strconv.Itoa(g.seq))
	if closed {
		w.Header().Set(HeaderClosed, ClosedValue)
	}
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
}
