// Package console is the web console every role serves on its admin
// listener: a page of plain HTML, CSS and JavaScript embedded in the
// binary, and a small JSON API it polls. A role hands it views — named
// loaders that read the role's admin data (ledger reads, the registry,
// the gateway's selection figures) and return tables of text — and the
// console renders whatever it is given; it does no arithmetic on money.
// The manual is docs/console.md.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"byoc/ledger"
)

//go:embed assets
var assets embed.FS

// Page is what a view shows: a few headline figures, charts and tables.
type Page struct {
	Title   string   `json:"title"`
	Note    string   `json:"note,omitempty"`
	Figures []Figure `json:"figures"`
	Charts  []Chart  `json:"charts,omitempty"`
	Tables  []Table  `json:"tables"`
}

// Chart is a chart over time, drawn by the page as inline SVG from its
// series. Each point's value is a cell: the page scales it to pixels and
// labels it with the cell's own text, so a chart shows the role's exact
// figures and does no arithmetic on them.
type Chart struct {
	ID     string   `json:"id"`
	Title  string   `json:"title"`
	Note   string   `json:"note,omitempty"`
	Unit   string   `json:"unit"` // the values' unit, for the axis ("gwei", "payments")
	Series []Series `json:"series"`
	Empty  string   `json:"empty,omitempty"` // shown when no series has a point
	Wide   bool     `json:"wide,omitempty"`  // a row of its own; others go two in a row
}

// Series is one line (a step line: the value holds until the next point)
// or a set of bars (a value per period starting at its point's time).
type Series struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind"` // SeriesLine or SeriesBars
	Points []Point `json:"points"`
}

// Kinds of series.
const (
	SeriesLine = "line"
	SeriesBars = "bars"
)

// Point is a series' value at a time (a bar's period's start).
type Point struct {
	T time.Time `json:"t"`
	V Cell      `json:"v"` // an Amount (its Wei is what is drawn) or an Int
}

// Figure is one headline number.
type Figure struct {
	ID    string `json:"id"` // the element's data-figure, for tests and links
	Label string `json:"label"`
	Value Cell   `json:"value"`
}

// Table is a titled table; Rows' cells line up with Columns.
type Table struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Note    string   `json:"note,omitempty"`
	Columns []string `json:"columns"`
	Rows    []Row    `json:"rows"`
	Empty   string   `json:"empty,omitempty"` // shown when there are no rows
}

// Row is a table row; Key identifies it (a job ID) in the page.
type Row struct {
	Key   string `json:"key,omitempty"`
	Cells []Cell `json:"cells"`
}

// Cell is one value as text. An amount carries its exact wei in Wei
// (Text is the same amount in gwei); Link is a console route ("job?…").
type Cell struct {
	Text  string `json:"text"`
	Wei   string `json:"wei,omitempty"`
	Link  string `json:"link,omitempty"`
	Title string `json:"title,omitempty"`
	Class string `json:"class,omitempty"` // num, ok, warn, bad, mono
}

// View is one page of the console. Views with a Title get a nav entry, in
// the order given; a view without one is reached by links (a statement).
type View struct {
	Path  string
	Title string
	Load  func(ctx context.Context, q url.Values) (Page, error)
}

// The views every role may provide, and the slots later roles and
// features fill: a nav entry appears only for the views a role hands in.
const (
	Overview      = "overview"
	Jobs          = "jobs"
	Job           = "job" // a job's statement; no nav entry
	Winners       = "winners"
	Capabilities  = "capabilities"
	Orchestrators = "orchestrators"
	Streams       = "streams"   // the streams: open ones with their holds, ended ones
	Stream        = "stream"    // a stream's statement; no nav entry
	Customers     = "customers" // slot: the signer's customers
)

// Config is what a role hands the console.
type Config struct {
	// Role names the node in the header ("orchestrator", "gateway").
	Role string
	// Token is the admin token. With one, the API needs it (as a bearer
	// token, or the cookie the login form sets); without one, the console
	// answers only requests from and addressed to loopback.
	Token string
	Views []View
}

// Prefix is where the console is served on the admin listener.
const Prefix = "/console/"

// cookieName is the login cookie; its value is an HMAC of the token, so
// the token itself is not stored in the browser.
const cookieName = "byoc_console"

// Handler serves the console under Prefix: mount it with
// mux.Handle(console.Prefix, console.Handler(cfg)).
func Handler(cfg Config) http.Handler {
	c := &console{cfg: cfg, views: map[string]View{}}
	for _, v := range cfg.Views {
		c.views[v.Path] = v
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/{$}", c.asset("assets/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /console/app.js", c.asset("assets/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /console/style.css", c.asset("assets/style.css", "text/css; charset=utf-8"))
	mux.HandleFunc("POST /console/login", c.login)
	mux.HandleFunc("GET /console/api/nav", c.api(c.nav))
	mux.HandleFunc("GET /console/api/view/{view}", c.api(c.view))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, "console: no such page: "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	})
	return c.loopbackOnly(mux)
}

type console struct {
	cfg   Config
	views map[string]View
}

// loopbackOnly refuses, when there is no token, every request not both
// from loopback and addressed to a loopback name (the latter so that a
// web page cannot reach the console through DNS rebinding).
func (c *console) loopbackOnly(h http.Handler) http.Handler {
	if c.cfg.Token != "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil || !isLoopback(host) || !isLoopback(hostOnly(r.Host)) {
			http.Error(w, "console: this node has no admin token, so its console answers only on loopback (open it as http://127.0.0.1:…)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *console) cookieValue() string {
	m := hmac.New(sha256.New, []byte(c.cfg.Token))
	m.Write([]byte("byoc console session"))
	return hex.EncodeToString(m.Sum(nil))
}

// authorized reports whether r may read the API.
func (c *console) authorized(r *http.Request) bool {
	if c.cfg.Token == "" {
		return true // loopbackOnly checked it
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(got), []byte(c.cfg.Token)) == 1
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(ck.Value), []byte(c.cookieValue())) == 1
	}
	return false
}

// login checks the token a form posts and sets the session cookie.
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Token == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if subtle.ConstantTimeCompare([]byte(tok), []byte(c.cfg.Token)) != 1 {
		jsonError(w, "wrong admin token", http.StatusUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: c.cookieValue(), Path: Prefix,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

func (c *console) asset(name, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := assets.ReadFile(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Write(b)
	}
}

func (c *console) api(h func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.authorized(r) {
			jsonError(w, "admin token required", http.StatusUnauthorized)
			return
		}
		v, err := h(r)
		switch {
		case err == nil:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(v)
		case errors.Is(err, errNoView), errors.Is(err, ledger.ErrNotFound):
			jsonError(w, err.Error(), http.StatusNotFound)
		case errors.Is(err, ledger.ErrInvalidInput):
			jsonError(w, err.Error(), http.StatusBadRequest)
		default:
			jsonError(w, err.Error(), http.StatusInternalServerError)
		}
	}
}

var errNoView = errors.New("console: no such view")

type navEntry struct {
	Path  string `json:"path"`
	Title string `json:"title"`
}

func (c *console) nav(r *http.Request) (any, error) {
	out := struct {
		Role  string     `json:"role"`
		Views []navEntry `json:"views"`
	}{Role: c.cfg.Role, Views: []navEntry{}}
	for _, v := range c.cfg.Views {
		if v.Title != "" {
			out.Views = append(out.Views, navEntry{v.Path, v.Title})
		}
	}
	return out, nil
}

func (c *console) view(r *http.Request) (any, error) {
	v, ok := c.views[r.PathValue("view")]
	if !ok {
		return nil, errNoView
	}
	p, err := v.Load(r.Context(), r.URL.Query())
	if p.Figures == nil {
		p.Figures = []Figure{}
	}
	if p.Tables == nil {
		p.Tables = []Table{}
	}
	for i := range p.Tables {
		if p.Tables[i].Rows == nil {
			p.Tables[i].Rows = []Row{}
		}
	}
	for i := range p.Charts {
		if p.Charts[i].Series == nil {
			p.Charts[i].Series = []Series{}
		}
		for j := range p.Charts[i].Series {
			if p.Charts[i].Series[j].Points == nil {
				p.Charts[i].Series[j].Points = []Point{}
			}
		}
	}
	return p, err
}

func jsonError(w http.ResponseWriter, msg string, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
