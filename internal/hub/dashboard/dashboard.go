package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/throttle"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

//go:embed assets
var assets embed.FS

// Prefix is where the dashboard is served on the hub's HTTPS port.
const Prefix = "/ui/"

// CookieName is the cookie the token is exchanged for.
const CookieName = "iotplan_dashboard"

// Querier runs a query as POST /devices/query does; *httpapi.Server satisfies it.
type Querier interface {
	Query(text, continuation string, size int) (httpapi.QueryPage, error)
}

// Jobs is the jobs engine; *jobs.Manager satisfies it.
type Jobs interface {
	Get(jobID string) (hubapi.JobResponse, error)
	Cancel(jobID string) (hubapi.JobResponse, error)
	List(jobType, status string) []hubapi.JobResponse
}

// Options configure a Server. Token, Queries, Jobs, Twin, DeviceCount and ConnectedCount
// are required.
type Options struct {
	// Token is the access token (NewToken); the URL `iotplan dev` prints carries it.
	Token   string
	Queries Querier
	Jobs    Jobs
	// Twin returns a device's twin document as GET /twins/{id} does (*huberr.Error 404001
	// for an unknown device).
	Twin func(deviceID string) (any, error)
	// DeviceCount and ConnectedCount are the registry's device count and the number of
	// devices with a session now; both must be cheap (they are read every second).
	DeviceCount    func() int
	ConnectedCount func() int
	// Generation, if set, moves when identities or twins change; the overview refreshes its
	// groups when it does.
	Generation func() uint64
	Throttle   *throttle.Limiter // nil = unlimited
	Activity   *Activity         // nil = no activity page entries
	// QueryDialect is the hub's query language, shown on the devices page.
	QueryDialect query.Dialect
	Now          func() time.Time // nil = time.Now
	Logger       *slog.Logger     // nil = discard
}

// Server serves the dashboard. Close ends its event streams.
type Server struct {
	opts    Options
	log     *slog.Logger
	token   [sha256.Size]byte
	mux     *http.ServeMux
	done    chan struct{}
	closeMu sync.Once

	streamsMu sync.Mutex
	streams   int

	groupsMu sync.Mutex // one aggregation at a time (see groups)
	groups   map[string]groupsEntry
}

// NewToken returns a fresh access token: 256 random bits, base64url.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// New builds the dashboard.
func New(opts Options) (*Server, error) {
	switch {
	case len(opts.Token) < 16:
		return nil, errors.New("dashboard: a token of at least 16 characters is required")
	case opts.Queries == nil || opts.Jobs == nil || opts.Twin == nil || opts.DeviceCount == nil || opts.ConnectedCount == nil:
		return nil, errors.New("dashboard: Queries, Jobs, Twin, DeviceCount and ConnectedCount are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Generation == nil {
		opts.Generation = func() uint64 { return 0 }
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, token: sha256.Sum256([]byte(opts.Token)), mux: http.NewServeMux(),
		done: make(chan struct{}), groups: map[string]groupsEntry{}}
	s.routes()
	return s, nil
}

// URL is the dashboard's address on a hub reached at base ("https://127.0.0.1:8443"),
// carrying the token: what `iotplan dev` prints.
func (s *Server) URL(base string) string {
	return base + Prefix + "?" + url.Values{"token": {s.opts.Token}}.Encode()
}

// Close ends the event streams (the HTTPS server's Shutdown waits for open requests, and an
// event stream never ends by itself). Safe to call more than once.
func (s *Server) Close() { s.closeMu.Do(func() { close(s.done) }) }

// Handler serves everything under Prefix.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// apiRoute is one JSON endpoint: it returns a value to encode, or an error (apiError, or
// a hub error that errorAnswer maps).
type apiRoute func(s *Server, r *http.Request) (any, error)

func (s *Server) routes() {
	s.mux.HandleFunc("GET "+Prefix+"{$}", s.index)
	s.mux.HandleFunc("GET "+Prefix+"assets/{file}", s.asset)
	for pattern, h := range map[string]apiRoute{
		"GET " + Prefix + "api/summary":     (*Server).summaryAPI,
		"GET " + Prefix + "api/groups":      (*Server).groupsAPI,
		"POST " + Prefix + "api/query":      (*Server).queryAPI,
		"GET " + Prefix + "api/twin":        (*Server).twinAPI,
		"GET " + Prefix + "api/jobs":        (*Server).jobsAPI,
		"GET " + Prefix + "api/job":         (*Server).jobAPI,
		"GET " + Prefix + "api/job/devices": (*Server).jobDevicesAPI,
		"POST " + Prefix + "api/job/cancel": (*Server).cancelJobAPI,
		"GET " + Prefix + "api/activity":    (*Server).activityAPI,
	} {
		s.mux.Handle(pattern, s.api(h))
	}
	s.mux.HandleFunc("GET "+Prefix+"api/events", s.events)
	s.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, &apiError{Status: http.StatusNotFound, Message: "No such page or API of the dashboard."})
	})
}

// serve applies what every answer needs — security headers, then the token check (all of
// /ui/ but the token exchange) and the origin check of POSTs — before routing.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Only the dashboard's own files may run or load; nothing may frame it (clickjacking);
	// the token in the first URL never leaves in a Referer.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodGet && r.URL.Path == Prefix && r.URL.Query().Has("token") {
		s.exchange(w, r)
		return
	}
	if !s.authorized(r) {
		writeDenied(w, r, "The dashboard needs its access token: open the URL `iotplan dev` printed at start (…/ui/?token=…).")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
		writeAPIError(w, &apiError{Status: http.StatusForbidden, Message: "Cross-origin requests are refused."})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// exchange turns ?token= into the cookie and redirects to the bare URL, so the token leaves
// the address bar and the history.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if !s.validToken(tok) {
		writeDenied(w, r, "This token is not the dashboard's: open the URL `iotplan dev` printed at this start (a new token is made at every start).")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: Prefix, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (s *Server) authorized(r *http.Request) bool {
	c, err := r.Cookie(CookieName)
	return err == nil && s.validToken(c.Value)
}

// validToken compares in constant time: both sides are hashed first, so the comparison
// takes as long whatever the length of the guess.
func (s *Server) validToken(t string) bool {
	sum := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

// sameOrigin reports whether a state-changing request comes from the dashboard's own pages:
// browsers send Sec-Fetch-Site on fetches (https://www.w3.org/TR/fetch-metadata/) and Origin
// on POSTs; a request carrying neither is not from a browser page (the cookie's SameSite
// keeps other sites' pages out anyway).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	s.serveAsset(w, r, "index.html")
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	s.serveAsset(w, r, r.PathValue("file"))
}

func (s *Server) serveAsset(w http.ResponseWriter, _ *http.Request, name string) {
	b, err := fs.ReadFile(assets, path.Join("assets", path.Clean("/" + name)[1:]))
	if err != nil {
		writeAPIError(w, &apiError{Status: http.StatusNotFound, Message: "No such file."})
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(b)
}

// apiError is an answer other than 200: its status and a message for the page, with the
// query error's position when there is one.
type apiError struct {
	Status  int          `json:"-"`
	Code    string       `json:"code,omitempty"` // the hub's error name, when it came from the hub
	Message string       `json:"message"`
	Query   *queryErrPos `json:"query,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

// queryErrPos places a query error: 1-based line and column (runes), and the text split at
// the error so the page can mark the spot without counting bytes itself.
type queryErrPos struct {
	Line   int    `json:"line"`
	Col    int    `json:"col"`
	Reason string `json:"reason"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// api wraps a JSON endpoint: one writer for values, one for errors.
func (s *Server) api(h apiRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := h(s, r)
		if err != nil {
			writeAPIError(w, errorAnswer(err))
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"The answer could not be encoded."}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeDenied answers 403: JSON to the API, a line of text to a browser opening a page.
func writeDenied(w http.ResponseWriter, r *http.Request, msg string) {
	if strings.HasPrefix(r.URL.Path, Prefix+"api/") {
		writeAPIError(w, &apiError{Status: http.StatusForbidden, Message: msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, "403 Forbidden. "+msg+"\n")
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]any{"error": e})
}
