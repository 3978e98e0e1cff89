package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// reverseRequest is the JSON body of a reverse job, as the reference
// text-reversing worker takes it.
type reverseRequest struct {
	Text *string `json:"text"`
}

// reverseResponse is the reference worker's answer: original, then reversed.
type reverseResponse struct {
	Original string `json:"original"`
	Reversed string `json:"reversed"`
}

func (h *Handler) serveReverse(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	if isJSON(r.Header.Get("Content-Type")) {
		var req reverseRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "reverse: body is not a JSON object: "+err.Error(), http.StatusBadRequest)
			return
		}
		if req.Text == nil {
			http.Error(w, `reverse: a JSON body needs a "text" string, e.g. {"text":"hello"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, reverseResponse{Original: *req.Text, Reversed: ReverseText(*req.Text)})
		return
	}
	if !utf8.Valid(body) {
		http.Error(w, "reverse: body is not UTF-8 text", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, ReverseText(string(body)))
}

// ReverseText reverses s by user-perceived character: a combining mark,
// variation selector, emoji skin-tone modifier or zero-width-joined
// character stays after the character it belongs to, and "\r\n" stays one
// line break. s must be valid UTF-8 (invalid bytes become U+FFFD).
func ReverseText(s string) string {
	var clusters []string
	for i := 0; i < len(s); {
		j := i + clusterLen(s[i:])
		clusters = append(clusters, s[i:j])
		i = j
	}
	var b strings.Builder
	b.Grow(len(s))
	for k := len(clusters) - 1; k >= 0; k-- {
		b.WriteString(clusters[k])
	}
	return b.String()
}

// clusterLen is the length in bytes of the character cluster s starts with.
func clusterLen(s string) int {
	if strings.HasPrefix(s, "\r\n") {
		return 2
	}
	_, n := utf8.DecodeRuneInString(s)
	for n < len(s) {
		next, size := utf8.DecodeRuneInString(s[n:])
		switch {
		case unicode.In(next, unicode.Mn, unicode.Me, unicode.Mc), isEmojiModifier(next):
			n += size
		case next == zeroWidthJoiner:
			n += size
			if n < len(s) { // the joiner binds the character after it too
				_, size = utf8.DecodeRuneInString(s[n:])
				n += size
			}
		default:
			return n
		}
	}
	return n
}

const zeroWidthJoiner = '\u200d'

func isEmojiModifier(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF }

func (h *Handler) serveEcho(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(body)
}

// sseRequest is the optional JSON body of an sse job.
type sseRequest struct {
	Text       string `json:"text"`
	Events     *int   `json:"events"`
	IntervalMS *int   `json:"interval_ms"`
}

// sseEvent is one event's data, as the reference SSE worker frames it.
type sseEvent struct {
	I     int    `json:"i"`
	Token string `json:"token"`
}

const (
	defaultSSEInterval = 100 * time.Millisecond
	maxSSEEvents       = 100_000
)

func (h *Handler) serveSSE(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	var req sseRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, `sse: body is not a JSON object such as {"text":"hi","events":5,"interval_ms":100}: `+
				err.Error(), http.StatusBadRequest)
			return
		}
	}
	tokens := []string{"Hello", "from", "SSE"}
	if req.Text != "" {
		tokens = append(tokens, req.Text)
	}
	events, interval := len(tokens), defaultSSEInterval
	if req.Events != nil {
		if *req.Events < 0 || *req.Events > maxSSEEvents {
			http.Error(w, fmt.Sprintf("sse: events must be between 0 and %d", maxSSEEvents), http.StatusBadRequest)
			return
		}
		events = *req.Events
	}
	if req.IntervalMS != nil {
		if *req.IntervalMS < 0 || int64(*req.IntervalMS) > h.maxSleep.Milliseconds() {
			http.Error(w, fmt.Sprintf("sse: interval_ms must be between 0 and %d", h.maxSleep.Milliseconds()),
				http.StatusBadRequest)
			return
		}
		interval = time.Duration(*req.IntervalMS) * time.Millisecond
	}
	if time.Duration(events)*interval > h.maxSleep { // both bounded above, so no overflow
		http.Error(w, fmt.Sprintf("sse: events × interval_ms must not exceed %s", h.maxSleep), http.StatusBadRequest)
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// Event i goes out i intervals after the start, [DONE] one interval after
	// the last event, as the reference's 0, 100, 200, 300, 400 ms.
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for i := 0; i <= events; i++ {
		if i > 0 {
			if timer == nil {
				timer = time.NewTimer(interval)
			} else {
				timer.Reset(interval)
			}
			select {
			case <-timer.C:
			case <-r.Context().Done():
				h.log.Debug("sse client went away", "sent", i)
				return
			}
		}
		var frame []byte
		if i < events {
			data, _ := json.Marshal(sseEvent{I: i, Token: tokens[i%len(tokens)]})
			frame = fmt.Appendf(nil, "data: %s\n\n", data)
		} else {
			frame = []byte("data: [DONE]\n\n")
		}
		if _, err := w.Write(frame); err != nil {
			h.log.Debug("sse write failed", "err", err)
			return
		}
		if err := rc.Flush(); err != nil {
			h.log.Debug("sse flush failed", "err", err)
			return
		}
	}
}

// sleepRequest is the JSON body of a sleep job: one of the two fields.
type sleepRequest struct {
	DurationMS *int64 `json:"duration_ms"`
	Duration   string `json:"duration"`
}

func (h *Handler) serveSleep(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	var req sleepRequest
	if err := decodeStrict(body, &req); err != nil {
		http.Error(w, `sleep: body must be {"duration_ms": 1500} or {"duration": "1.5s"}: `+err.Error(),
			http.StatusBadRequest)
		return
	}
	var d time.Duration
	switch {
	case req.DurationMS != nil && req.Duration != "":
		http.Error(w, `sleep: give duration_ms or duration, not both`, http.StatusBadRequest)
		return
	case req.DurationMS != nil:
		if *req.DurationMS < 0 || *req.DurationMS > h.maxSleep.Milliseconds() {
			http.Error(w, fmt.Sprintf("sleep: duration_ms must be between 0 and %d", h.maxSleep.Milliseconds()),
				http.StatusBadRequest)
			return
		}
		d = time.Duration(*req.DurationMS) * time.Millisecond
	case req.Duration != "":
		var err error
		if d, err = time.ParseDuration(req.Duration); err != nil {
			http.Error(w, "sleep: "+err.Error(), http.StatusBadRequest)
			return
		}
		if d < 0 || d > h.maxSleep {
			http.Error(w, fmt.Sprintf("sleep: duration must be between 0s and %s", h.maxSleep), http.StatusBadRequest)
			return
		}
	default:
		http.Error(w, `sleep: say how long, e.g. {"duration_ms": 1500}`, http.StatusBadRequest)
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.Context().Done():
		h.log.Debug("sleep cancelled", "requested", d)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, struct {
		SleptMS int64 `json:"slept_ms"`
	}{d.Milliseconds()})
}

// failRequest is the optional JSON body of a fail job.
type failRequest struct {
	Status          int    `json:"status"`
	Message         string `json:"message"`
	CloseConnection bool   `json:"close_connection"`
}

func (h *Handler) serveFail(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	req := failRequest{Status: http.StatusInternalServerError}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			http.Error(w, `fail: body must be like {"status": 503, "message": "busy"}: `+err.Error(),
				http.StatusBadRequest)
			return
		}
	}
	if req.CloseConnection {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "fail: cannot drop this connection: "+err.Error(), http.StatusInternalServerError)
			return
		}
		conn.Close()
		return
	}
	if req.Status < 200 || req.Status > 599 {
		http.Error(w, "fail: status must be between 200 and 599", http.StatusBadRequest)
		return
	}
	if req.Message == "" {
		req.Message = fmt.Sprintf("sample worker failing on request with %d %s", req.Status, http.StatusText(req.Status))
	}
	http.Error(w, req.Message, req.Status)
}

// isJSON reports whether a Content-Type names JSON (application/json or a
// +json type).
func isJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body")
		}
		return err
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// writeJSON writes v as JSON and a newline (json.Encoder's framing, which
// the reference workers use).
func writeJSON(w io.Writer, v any) {
	json.NewEncoder(w).Encode(v)
}
