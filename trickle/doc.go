// Package trickle is byoc's implementation of trickle, the segmented
// publish-subscribe protocol over HTTP that go-livepeer's live streams use
// for their channels (docs/protocol.md, "Trickle"): a channel is a named
// sequence of segments 0, 1, 2, …; a publisher POSTs segment N as a
// streaming body, subscribers GET segment N and receive its bytes as they
// arrive.
//
//   - Server (NewServer, Config) serves channels under a base path with the
//     reference's statuses and Lp-Trickle-* headers: a ring of RingSize
//     segments per channel (older ones answer 470), "100 Continue"
//     keepalives while a publish waits for its first byte, an idle sweep
//     on an injected clock and ticker (Sweep), and size limits, per server
//     and per channel (WithMaxSegmentBytes). Roles create and close
//     channels with Create and Close and may Publish a segment themselves;
//     remote peers publish, read and DELETE.
//   - Publisher writes numbered segments to a channel URL, retrying a
//     segment that failed before its first byte and dropping one that
//     failed part way; Subscriber reads segments in order, following
//     Lp-Trickle-Seq, jumping to Lp-Trickle-Latest past a 470, and
//     reporting the end of a channel as ErrClosed.
//   - Relay copies one channel into another through a Subscriber and a
//     Publisher, optionally transforming each segment.
//
// The package imports only the standard library.
package trickle
