package api

import (
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits bound what clients may hold of the server. Zero fields take the
// defaults below.
type Limits struct {
	// MaxInFlight bounds the requests being answered at once, all clients
	// together (default 128); MaxInFlightPerToken those of one API token
	// (default 32). Beyond either: 429 with Retry-After.
	MaxInFlight         int
	MaxInFlightPerToken int
	// MaxStreams bounds the open event streams (default 64); they are
	// long-lived, so they are counted apart from the requests.
	MaxStreams int
	// ReadTimeout bounds reading a whole request, body included (default
	// 30s); WriteTimeout answering it (default: the bus timeout + 30s);
	// IdleTimeout a kept-alive connection between requests (default 120s).
	// Streams (events, log downloads, the mirror) instead get StreamIdle
	// (default 60s) for every write: a client that reads keeps its
	// stream, one that stalls loses it.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	StreamIdle   time.Duration
}

func (l *Limits) defaults(busTimeout time.Duration) {
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = 128
	}
	if l.MaxInFlightPerToken <= 0 {
		l.MaxInFlightPerToken = 32
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = 64
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 30 * time.Second
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = busTimeout + 30*time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 120 * time.Second
	}
	if l.StreamIdle <= 0 {
		l.StreamIdle = 60 * time.Second
	}
}

// NewServer returns the http.Server for h, with l's timeouts (as filled by
// Options.Limits in New) and, when tlsCfg is set, TLS.
func NewServer(h http.Handler, o Options, tlsCfg *tls.Config) *http.Server {
	l := o.Limits
	l.defaults(busTimeout(o))
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, l.ReadTimeout),
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsCfg,
	}
}

func busTimeout(o Options) time.Duration {
	if o.Timeout == 0 {
		return 60 * time.Second
	}
	return o.Timeout
}

// contentSecurityPolicy lets the console load its own scripts, styles and
// API only; nothing may frame it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the browser protections on every answer.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// limiter counts the requests in flight, overall and per token.
type limiter struct {
	all, perToken, streams int

	mu       sync.Mutex
	n        int
	byToken  map[[16]byte]int
	nStreams int
}

func newLimiter(l Limits) *limiter {
	return &limiter{all: l.MaxInFlight, perToken: l.MaxInFlightPerToken, streams: l.MaxStreams, byToken: map[[16]byte]int{}}
}

// tokenKey names a client by its credential without keeping it: the
// token's digest, or the peer's address when auth is off.
func tokenKey(r *http.Request) [16]byte {
	v := r.Header.Get("Authorization")
	if v == "" {
		v = "addr " + r.RemoteAddr
		if host, _, ok := cutLastColon(r.RemoteAddr); ok {
			v = "addr " + host
		}
	}
	sum := sha256.Sum256([]byte(v))
	var k [16]byte
	copy(k[:], sum[:])
	return k
}

func cutLastColon(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (l *limiter) acquire(k [16]byte, stream bool) (func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if stream {
		if l.nStreams >= l.streams {
			return nil, false
		}
		l.nStreams++
		return func() { l.mu.Lock(); l.nStreams--; l.mu.Unlock() }, true
	}
	if l.n >= l.all || l.byToken[k] >= l.perToken {
		return nil, false
	}
	l.n++
	l.byToken[k]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.n--
		if l.byToken[k]--; l.byToken[k] <= 0 {
			delete(l.byToken, k)
		}
	}, true
}

// limit answers 429 with Retry-After when the client, or everyone, has
// too many requests in flight. On the API it runs after auth, so only a
// known token has a share of its own. Event streams last: they are
// counted apart.
func (l *limiter) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/events")
		release, ok := l.acquire(tokenKey(r), stream)
		if !ok {
			w.Header().Set("Retry-After", strconv.Itoa(1))
			refuse(w)
			writeError(w, http.StatusTooManyRequests, "too many requests in flight; retry after a second")
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// streaming lifts the server's whole-response write deadline from a
// long answer and gives it idle seconds per write instead, so a large log
// or a live event stream lasts as long as its client reads it. The read
// deadline goes too: the body is read, and a stream may outlive it.
func streaming(idle time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		pw := &progressWriter{ResponseWriter: w, rc: rc, idle: idle}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			pw.lift()
		}
		_ = rc.SetWriteDeadline(time.Now().Add(idle))
		h(pw, r)
	}
}

// progressWriter pushes the write deadline on with every write. A
// request with a body keeps its read deadline until the answer starts:
// by then its body is read.
type progressWriter struct {
	http.ResponseWriter
	rc     *http.ResponseController
	idle   time.Duration
	lifted bool
}

func (p *progressWriter) lift() {
	if !p.lifted {
		p.lifted = true
		_ = p.rc.SetReadDeadline(time.Time{})
	}
}

func (p *progressWriter) WriteHeader(code int) {
	p.lift()
	p.ResponseWriter.WriteHeader(code)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.lift()
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.idle))
	return p.ResponseWriter.Write(b)
}

func (p *progressWriter) Flush() {
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.idle))
	_ = p.rc.Flush()
}

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// uploading is streaming for a large request body (a release tarball):
// every read of the body has idle seconds, so an upload lasts as long as
// bytes keep coming, and the answer's deadline starts when it is written.
func uploading(idle time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})
		r.Body = &progressBody{ReadCloser: r.Body, rc: rc, idle: idle}
		h(&progressWriter{ResponseWriter: w, rc: rc, idle: idle}, r)
	}
}

// progressBody pushes the read deadline on with every read.
type progressBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (p *progressBody) Read(b []byte) (int, error) {
	_ = p.rc.SetReadDeadline(time.Now().Add(p.idle))
	return p.ReadCloser.Read(b)
}
