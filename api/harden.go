package api

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limits bound what clients may hold of the server. Zero fields take the
// defaults below.
type Limits struct {
	// MaxInFlight bounds the API's requests being answered at once, all
	// clients together (default 128); MaxInFlightPerToken those of one API
	// token (default 32). Beyond either: 429 with Retry-After.
	MaxInFlight         int
	MaxInFlightPerToken int
	// MaxAnonymous bounds the requests in flight on the routes that need
	// no token (the mirror, the agent's binary, release packages,
	// /healthz, /metrics, /version, the console), all clients together
	// (default 64);
	// MaxAnonymousPerAddr those of one peer address (default 16). They
	// are counted apart from the API's: anonymous clients never take its
	// slots.
	MaxAnonymous        int
	MaxAnonymousPerAddr int
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
	if l.MaxAnonymous <= 0 {
		l.MaxAnonymous = 64
	}
	if l.MaxAnonymousPerAddr <= 0 {
		l.MaxAnonymousPerAddr = 16
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

// limiter counts the requests in flight in two pools that never share a
// slot: the API's, whose clients proved a token, and the anonymous
// routes' (the mirror, release packages, health, metrics, the console),
// so that clients without a token can never starve the API. Within a
// pool each client has a share, keyed on who it was proven to be: a
// token's name, else the peer's address, never a header it merely sent.
type limiter struct {
	mu       sync.Mutex
	api      pool
	anon     pool
	streams  int
	nStreams int
}

// pool is one budget of requests in flight, all clients together and per
// client.
type pool struct {
	all, per int
	n        int
	byClient map[string]int
}

func newLimiter(l Limits) *limiter {
	return &limiter{
		api:     pool{all: l.MaxInFlight, per: l.MaxInFlightPerToken, byClient: map[string]int{}},
		anon:    pool{all: l.MaxAnonymous, per: l.MaxAnonymousPerAddr, byClient: map[string]int{}},
		streams: l.MaxStreams,
	}
}

// clientKey names a request's client: its token's name once auth has
// verified it, else its peer's address.
func clientKey(r *http.Request) string {
	if id, ok := identityOf(r.Context()); ok {
		return "token " + id.Name
	}
	return "addr " + peerHost(r)
}

// peerHost is the host of the connection's remote address, without the
// port: a client's connections share a share.
func peerHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func (l *limiter) acquire(p *pool, k string, stream bool) (func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if stream {
		if l.nStreams >= l.streams {
			return nil, false
		}
		l.nStreams++
		return func() { l.mu.Lock(); l.nStreams--; l.mu.Unlock() }, true
	}
	if p.n >= p.all || p.byClient[k] >= p.per {
		return nil, false
	}
	p.n++
	p.byClient[k]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		p.n--
		if p.byClient[k]--; p.byClient[k] <= 0 {
			delete(p.byClient, k)
		}
	}, true
}

// limit bounds the API's requests. It runs after auth, so a client's
// share is its token's. Event streams last: they are counted apart, as
// their route declares.
func (l *limiter) limit(next http.Handler) http.Handler { return l.middleware(&l.api, true, next) }

// limitAnon bounds the routes without a token, per peer address.
func (l *limiter) limitAnon(next http.Handler) http.Handler {
	return l.middleware(&l.anon, false, next)
}

// middleware answers 429 with Retry-After when the client, or everyone,
// has too many requests of p in flight.
func (l *limiter) middleware(p *pool, streams bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := streams && isStream(r)
		release, ok := l.acquire(p, clientKey(r), stream)
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
