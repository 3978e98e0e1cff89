package transcript

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// DiffKind classifies a difference, so callers can choose which to assert.
type DiffKind string

// Kinds of difference.
const (
	// DiffStatus: the status differs, or one side has no response.
	DiffStatus DiffKind = "status"
	// DiffMethod and DiffPath: a request's method or path with query
	// differs.
	DiffMethod DiffKind = "method"
	DiffPath   DiffKind = "path"
	// DiffHeaderName: a header is present on one side only.
	DiffHeaderName DiffKind = "header-name"
	// DiffHeaderValue: a header present on both sides has different values
	// after Normalize. The values of Date, Content-Length, User-Agent and
	// Livepeer-Payment, which always vary, are not compared.
	DiffHeaderValue DiffKind = "header-value"
	// DiffBody: text bodies differ after Normalize, or one side is JSON and
	// the other is not.
	DiffBody DiffKind = "body"
	// DiffJSONKeys: an object has a key on one side only.
	DiffJSONKeys DiffKind = "json-keys"
	// DiffJSONOrder: an object has the same keys in another order.
	DiffJSONOrder DiffKind = "json-order"
	// DiffJSONType: a value has another JSON type, or an array another
	// length.
	DiffJSONType DiffKind = "json-type"
	// DiffJSONValue: a scalar differs after Normalize (e.g. a ticket seed or
	// a stream ID). Usually dropped when checking shape only.
	DiffJSONValue DiffKind = "json-value"
	// DiffJSONFormat: the JSON texts are equal but the whitespace around or
	// inside them differs (e.g. the encoder's trailing newline).
	DiffJSONFormat DiffKind = "json-format"
	// DiffUnexpected: a stub received a request it has no recording for.
	DiffUnexpected DiffKind = "unexpected-request"
	// DiffMissing: a recorded request never arrived at the stub.
	DiffMissing DiffKind = "missing-request"
)

// Diff is one difference between a recorded exchange and an observed one.
type Diff struct {
	Kind DiffKind
	// Where names the part: "status", "header X-Metadata", "body",
	// "body $.ticket_params.seed", …
	Where string
	// Header is the canonical header name for header differences.
	Header string
	Want   string
	Got    string
	// Seq is the recorded exchange's seq.
	Seq int
}

func (d Diff) String() string {
	return fmt.Sprintf("seq %d: %s: %s: want %s, got %s", d.Seq, d.Kind, d.Where, d.Want, d.Got)
}

// Diffs is a list of differences.
type Diffs []Diff

// Without returns the differences whose kind is not one of kinds.
func (ds Diffs) Without(kinds ...DiffKind) Diffs {
	var out Diffs
	for _, d := range ds {
		if !slices.Contains(kinds, d.Kind) {
			out = append(out, d)
		}
	}
	return out
}

// Only returns the differences whose kind is one of kinds.
func (ds Diffs) Only(kinds ...DiffKind) Diffs {
	var out Diffs
	for _, d := range ds {
		if slices.Contains(kinds, d.Kind) {
			out = append(out, d)
		}
	}
	return out
}

// WithoutHeaders drops header differences about the named headers (any
// case).
func (ds Diffs) WithoutHeaders(names ...string) Diffs {
	var out Diffs
	for _, d := range ds {
		if d.Header != "" && slices.ContainsFunc(names, func(n string) bool { return http.CanonicalHeaderKey(n) == d.Header }) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// String lists the differences, one a line.
func (ds Diffs) String() string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// PortPlaceholder replaces loopback ports in Normalize.
const PortPlaceholder = "PORT"

var loopbackPort = regexp.MustCompile(`(127\.0\.0\.1|localhost|\[::1\]):[0-9]{1,5}\b`)

// Normalize replaces the port of every loopback address (127.0.0.1:<port>,
// localhost:<port>, [::1]:<port>) with PortPlaceholder, so that texts that
// contain URLs or dial addresses compare equal across runs.
func Normalize(s string) string {
	return loopbackPort.ReplaceAllString(s, "${1}:"+PortPlaceholder)
}

// volatileHeaders are the headers whose values are never compared: they
// change from run to run even after Normalize (ticket seeds and signatures
// in Livepeer-Payment), or with the protocol (User-Agent). Their presence is
// still compared.
var volatileHeaders = []string{"Date", "Content-Length", "User-Agent", "Livepeer-Payment"}

// ignoredHeaders are left out of every comparison, names and values: Date
// (dropped by the recorder), Content-Length (it depends on volatile values
// and on chunking), Transfer-Encoding, and Host (added by the recorder,
// always volatile).
var ignoredHeaders = []string{"Date", "Content-Length", "Transfer-Encoding", "Host"}

// Options adjust a comparison. The zero value uses Normalize and the
// default header lists.
type Options struct {
	// Normalize is applied to header values and bodies before comparing;
	// nil means the package's Normalize. Callers may chain their own
	// replacements (e.g. a stream ID) after it.
	Normalize func(string) string
	// IgnoreHeaders are left out, names and values, in addition to Date,
	// Content-Length, Transfer-Encoding and Host.
	IgnoreHeaders []string
}

func (o *Options) norm() func(string) string {
	if o != nil && o.Normalize != nil {
		return o.Normalize
	}
	return Normalize
}

func (o *Options) ignored(name string) bool {
	name = http.CanonicalHeaderKey(name)
	if slices.Contains(ignoredHeaders, name) {
		return true
	}
	return o != nil && slices.ContainsFunc(o.IgnoreHeaders, func(n string) bool { return http.CanonicalHeaderKey(n) == name })
}

// CompareResponse compares a response a test received with the recorded
// exchange want: the status, the set of header names, header values (after
// Normalize; not for User-Agent and Livepeer-Payment), and the body (see CompareBody). got may
// be nil when the request failed; gotBody is the body the test read. Each
// difference is logged on t; the caller decides which to assert, e.g.
//
//	if d := transcript.CompareResponse(t, ex, resp, body).Without(transcript.DiffJSONValue); len(d) > 0 {
//		t.Error(d)
//	}
func CompareResponse(t testing.TB, want Exchange, got *http.Response, gotBody []byte) Diffs {
	t.Helper()
	var ds Diffs
	if got == nil {
		ds = Diffs{{Kind: DiffStatus, Where: "status", Want: statusText(want), Got: "no response", Seq: want.Seq}}
	} else {
		ds = CompareResponseParts(want, got.StatusCode, got.Header, gotBody, nil)
	}
	for _, d := range ds {
		t.Logf("transcript: %v", d)
	}
	return ds
}

// CompareResponseParts is CompareResponse without testing.TB, for an
// observed status, header and body.
func CompareResponseParts(want Exchange, status int, header http.Header, body []byte, opts *Options) Diffs {
	var ds Diffs
	if want.Status == nil {
		ds = append(ds, Diff{Kind: DiffStatus, Where: "status", Want: statusText(want), Got: fmt.Sprint(status)})
	} else if *want.Status != status {
		ds = append(ds, Diff{Kind: DiffStatus, Where: "status", Want: fmt.Sprint(*want.Status), Got: fmt.Sprint(status)})
	}
	ds = append(ds, compareHeaders(want.ResponseHeaders, header, opts)...)
	ds = append(ds, compareRecordedBody(want, body, opts)...)
	return withSeq(ds, want.Seq)
}

// CompareRequest compares a request a test observed (e.g. in a stub
// orchestrator, or what a StubWorker received) with the recorded exchange
// want: method, path with query, header names, header values (after
// Normalize; not for User-Agent and Livepeer-Payment) and the body (see CompareBody). Host
// and Content-Length are ignored. Each difference is logged on t.
func CompareRequest(t testing.TB, want Exchange, got *http.Request, gotBody []byte) Diffs {
	t.Helper()
	var ds Diffs
	if got == nil {
		ds = Diffs{{Kind: DiffMissing, Where: "request", Want: want.Method + " " + want.Path, Got: "no request", Seq: want.Seq}}
	} else {
		ds = CompareRequestParts(want, got.Method, got.URL.RequestURI(), got.Header, gotBody, nil)
	}
	for _, d := range ds {
		t.Logf("transcript: %v", d)
	}
	return ds
}

// CompareRequestParts is CompareRequest without testing.TB.
func CompareRequestParts(want Exchange, method, path string, header http.Header, body []byte, opts *Options) Diffs {
	var ds Diffs
	if want.Method != method {
		ds = append(ds, Diff{Kind: DiffMethod, Where: "method", Want: want.Method, Got: method})
	}
	if want.Path != path {
		ds = append(ds, Diff{Kind: DiffPath, Where: "path", Want: want.Path, Got: path})
	}
	ds = append(ds, compareHeaders(want.RequestHeaders, header, opts)...)
	wantBody, err := want.RequestBodyBytes()
	if err != nil {
		ds = append(ds, Diff{Kind: DiffBody, Where: "body", Want: err.Error(), Got: quote(body)})
	} else {
		ds = append(ds, CompareBody(wantBody, body, opts)...)
	}
	return withSeq(ds, want.Seq)
}

func withSeq(ds Diffs, seq int) Diffs {
	for i := range ds {
		ds[i].Seq = seq
	}
	return ds
}

func statusText(e Exchange) string {
	if e.Status == nil {
		return "no response (" + e.TransportError + ")"
	}
	return fmt.Sprint(*e.Status)
}

// compareHeaders compares header names and, except for volatileHeaders,
// values.
func compareHeaders(want, got http.Header, opts *Options) Diffs {
	norm := opts.norm()
	want, got = canonical(want), canonical(got)
	var ds Diffs
	for _, cn := range sortedKeys(want) {
		if opts.ignored(cn) {
			continue
		}
		gv, ok := got[cn]
		if !ok {
			ds = append(ds, Diff{Kind: DiffHeaderName, Where: "header " + cn, Header: cn, Want: "present", Got: "absent"})
			continue
		}
		if slices.Contains(volatileHeaders, cn) {
			continue
		}
		wv := want[cn]
		if !slices.Equal(mapStrings(wv, norm), mapStrings(gv, norm)) {
			ds = append(ds, Diff{Kind: DiffHeaderValue, Where: "header " + cn, Header: cn, Want: quoteList(wv), Got: quoteList(gv)})
		}
	}
	for _, cn := range sortedKeys(got) {
		if opts.ignored(cn) {
			continue
		}
		if _, ok := want[cn]; !ok {
			ds = append(ds, Diff{Kind: DiffHeaderName, Where: "header " + cn, Header: cn, Want: "absent", Got: "present"})
		}
	}
	return ds
}

// canonical returns h with canonical keys, merging keys that differ only in
// case.
func canonical(h http.Header) http.Header {
	c := make(http.Header, len(h))
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		c[ck] = append(c[ck], vs...)
	}
	return c
}

func sortedKeys(h http.Header) []string {
	ks := make([]string, 0, len(h))
	for k := range h {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func mapStrings(vs []string, f func(string) string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = f(v)
	}
	return out
}

// compareRecordedBody compares a recorded response body; a truncated
// recording is compared as a prefix.
func compareRecordedBody(want Exchange, got []byte, opts *Options) Diffs {
	wb := []byte(want.ResponseBody)
	if want.ResponseBodyTruncated == nil {
		return CompareBody(wb, got, opts)
	}
	norm := opts.norm()
	w, g := norm(string(wb)), norm(string(got))
	if !strings.HasPrefix(g, w) {
		return Diffs{{Kind: DiffBody, Where: "body (recorded prefix)", Want: quote(wb), Got: quote(got)}}
	}
	return nil
}

// maxJSONDiffs bounds the differences reported for one JSON body.
const maxJSONDiffs = 32

// CompareBody compares two bodies. Equal bodies after the normaliser give
// nothing. If want is a JSON object or array, got must be JSON too, and the
// two are compared recursively: key sets (DiffJSONKeys), key order
// (DiffJSONOrder), types and array lengths (DiffJSONType), scalar values
// after the normaliser (DiffJSONValue), and finally whitespace
// (DiffJSONFormat). Other bodies are compared byte for byte after the
// normaliser (DiffBody).
func CompareBody(want, got []byte, opts *Options) Diffs {
	norm := opts.norm()
	w, g := norm(string(want)), norm(string(got))
	if w == g {
		return nil
	}
	wn, werr := parseJSON([]byte(w))
	if werr != nil || (wn.kind != kindObject && wn.kind != kindArray) {
		return Diffs{{Kind: DiffBody, Where: "body", Want: quote(want), Got: quote(got)}}
	}
	gn, gerr := parseJSON([]byte(g))
	if gerr != nil {
		return Diffs{{Kind: DiffBody, Where: "body", Want: "JSON " + quote(want), Got: "not JSON (" + gerr.Error() + ") " + quote(got)}}
	}
	var ds Diffs
	compareJSON("$", wn, gn, &ds)
	if len(ds) == 0 {
		ds = append(ds, Diff{Kind: DiffJSONFormat, Where: "body", Want: quote(want), Got: quote(got)})
	}
	return ds
}

// JSON node kinds.
const (
	kindObject = "object"
	kindArray  = "array"
	kindString = "string"
	kindNumber = "number"
	kindBool   = "bool"
	kindNull   = "null"
)

// jnode is a JSON value that keeps object key order (and duplicate keys).
type jnode struct {
	kind string
	keys []string // objects: keys in order
	vals []*jnode // objects: values parallel to keys; arrays: elements
	text string   // scalars: the value
}

// parseJSON parses exactly one JSON value, keeping key order.
func parseJSON(b []byte) (*jnode, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	n, err := parseValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return n, nil
}

func parseValue(d *json.Decoder) (*jnode, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &jnode{kind: kindObject}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is %T", kt)
				}
				c, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, c)
			}
			if _, err := d.Token(); err != nil { // '}'
				return nil, err
			}
			return n, nil
		case '[':
			n := &jnode{kind: kindArray}
			for d.More() {
				c, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, c)
			}
			if _, err := d.Token(); err != nil { // ']'
				return nil, err
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %v", v)
	case string:
		return &jnode{kind: kindString, text: v}, nil
	case json.Number:
		return &jnode{kind: kindNumber, text: v.String()}, nil
	case bool:
		return &jnode{kind: kindBool, text: fmt.Sprint(v)}, nil
	case nil:
		return &jnode{kind: kindNull, text: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %T", tok)
}

func (n *jnode) index(k string) int { return slices.Index(n.keys, k) }

// compareJSON appends the differences between w and g at path p.
func compareJSON(p string, w, g *jnode, ds *Diffs) {
	if len(*ds) >= maxJSONDiffs {
		return
	}
	where := "body " + p
	if w.kind != g.kind {
		*ds = append(*ds, Diff{Kind: DiffJSONType, Where: where, Want: w.kind, Got: g.kind})
		return
	}
	switch w.kind {
	case kindObject:
		var missing, extra []string
		for _, k := range w.keys {
			if g.index(k) < 0 {
				missing = append(missing, k)
			}
		}
		for _, k := range g.keys {
			if w.index(k) < 0 {
				extra = append(extra, k)
			}
		}
		for _, k := range missing {
			*ds = append(*ds, Diff{Kind: DiffJSONKeys, Where: where, Want: "key " + quote([]byte(k)), Got: "absent"})
		}
		for _, k := range extra {
			*ds = append(*ds, Diff{Kind: DiffJSONKeys, Where: where, Want: "absent", Got: "key " + quote([]byte(k))})
		}
		// Order of the keys both sides have.
		wo := slices.DeleteFunc(slices.Clone(w.keys), func(k string) bool { return g.index(k) < 0 })
		gob := slices.DeleteFunc(slices.Clone(g.keys), func(k string) bool { return w.index(k) < 0 })
		if !slices.Equal(wo, gob) {
			*ds = append(*ds, Diff{Kind: DiffJSONOrder, Where: where, Want: strings.Join(wo, ","), Got: strings.Join(gob, ",")})
		}
		for i, k := range w.keys {
			if j := g.index(k); j >= 0 && w.index(k) == i {
				compareJSON(p+"."+k, w.vals[i], g.vals[j], ds)
			}
		}
	case kindArray:
		if len(w.vals) != len(g.vals) {
			*ds = append(*ds, Diff{Kind: DiffJSONType, Where: where, Want: fmt.Sprintf("array of %d", len(w.vals)), Got: fmt.Sprintf("array of %d", len(g.vals))})
		}
		for i := 0; i < len(w.vals) && i < len(g.vals); i++ {
			compareJSON(fmt.Sprintf("%s[%d]", p, i), w.vals[i], g.vals[i], ds)
		}
	default:
		if w.text != g.text {
			*ds = append(*ds, Diff{Kind: DiffJSONValue, Where: where, Want: quote([]byte(w.text)), Got: quote([]byte(g.text))})
		}
	}
}

// quote shortens and quotes a value for a Diff.
func quote(b []byte) string {
	const max = 300
	if len(b) > max {
		return fmt.Sprintf("%q… (%d bytes)", b[:max], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func quoteList(vs []string) string {
	qs := make([]string, len(vs))
	for i, v := range vs {
		qs[i] = quote([]byte(v))
	}
	return "[" + strings.Join(qs, " ") + "]"
}
