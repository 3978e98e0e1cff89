package orchestrator

import (
	"bytes"
	"log/slog"
	"net/http"
	"strconv"

	"byoc/trickle"
)

// TrickleChannels hosts streams' channels on a trickle server mounted
// under /ai/trickle/ (the default Config.Channels; NewTrickleChannels). Channels are created
// only by the orchestrator (no remote creation, as go-livepeer's); its
// idle sweep runs at each settlement batch (SettleStreams), not on a
// goroutine of its own.
type TrickleChannels struct {
	srv *trickle.Server
	log *slog.Logger
}

// ChannelsBasePath is where a stream's trickle channels are served.
const ChannelsBasePath = "/ai/trickle/"

// NewTrickleChannels returns the channels of a trickle server under
// ChannelsBasePath.
func NewTrickleChannels(log *slog.Logger) *TrickleChannels {
	return &TrickleChannels{srv: trickle.NewServer(trickle.Config{BasePath: ChannelsBasePath, SweepInterval: -1, Logger: log}), log: log}
}

// Create makes a channel (logged when it cannot be made).
func (t *TrickleChannels) Create(name, mime string) {
	if err := t.srv.Create(name, trickle.WithMIME(mime)); err != nil {
		t.log.Warn("trickle channel not created", "channel", name, "err", err)
	}
}

// Close closes a channel.
func (t *TrickleChannels) Close(name string) { t.srv.Close(name) }

// ServeHTTP serves the channels.
func (t *TrickleChannels) ServeHTTP(w http.ResponseWriter, r *http.Request) { t.srv.ServeHTTP(w, r) }

// Shutdown closes every channel and takes no new ones: readers and
// writers waiting on them are answered at once.
func (t *TrickleChannels) Shutdown() { t.srv.Shutdown() }

// Sweep closes channels idle past the server's idle timeout.
func (t *TrickleChannels) Sweep() { t.srv.Sweep() }

// Publish writes data as the channel's next segment, in process.
func (t *TrickleChannels) Publish(name string, data []byte) error {
	req, err := http.NewRequest(http.MethodPost, ChannelsBasePath+name+"/"+strconv.Itoa(trickle.SeqNext), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(data))
	w := &discardWriter{h: http.Header{}}
	t.srv.ServeHTTP(w, req)
	if w.status >= 300 {
		return &trickle.StatusError{Code: w.status}
	}
	return nil
}

// discardWriter is an http.ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(b), nil
}
func (d *discardWriter) WriteHeader(s int) {
	if d.status == 0 && s >= 200 { // not a 100 Continue keepalive
		d.status = s
	}
}
