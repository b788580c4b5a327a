package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// revokeCheck is how often the tokens of requests in flight are verified
// again: a revoked token's event stream ends within it.
const revokeCheck = 250 * time.Millisecond

// errRevoked ends a request whose token stopped verifying while it ran.
var errRevoked = errors.New("the API token was revoked, or lost the role or the cluster this request needs, while the request ran")

// auth checks the token on the headers, before any handler reads a body.
// A refused request's connection is closed after the 401: the server
// neither reads nor waits for the body it announced. A named token's
// request lasts only while its token verifies (see revoker).
func (s *server) auth(next http.Handler) http.Handler {
	if s.o.AuthNone {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		var id identity
		if ok {
			id, ok = s.identify(tok)
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="deployment-engine"`)
			refuse(w)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token: send 'Authorization: Bearer <token>' (the engine's token is in <data>/api-token, named ones in <data>/api-tokens)")
			return
		}
		ctx := withIdentity(r.Context(), id)
		if id.Name != contract.ActorAdmin {
			var done func()
			ctx, done = s.revoker.hold(ctx, tok, needRole(r), s.clusterOf(r))
			defer done()
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authorize answers 403 to a token whose role is below what the request
// needs, or that does not reach the cluster it acts on, naming what is
// missing. It runs inside the audit, so a refused change is recorded with
// its actor.
func (s *server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := identityOf(r.Context())
		if !ok { // auth is off
			next.ServeHTTP(w, r)
			return
		}
		if err := id.Permit(needRole(r), s.clusterOf(r)); err != nil {
			if rt, found := routeOf(r.Context()); found && rt.reads != nil {
				rt.reads(unanswered{}, r)
			}
			writeError(w, http.StatusForbidden, r.Method+" "+contract.Clip(r.URL.Path)+" "+err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// unanswered drops what a refused request's reader would answer: the
// answer is the refusal.
type unanswered struct{}

func (unanswered) Header() http.Header         { return http.Header{} }
func (unanswered) Write(b []byte) (int, error) { return len(b), nil }
func (unanswered) WriteHeader(int)             {}

// bearer reads the token of an Authorization header; the scheme is
// case-insensitive (RFC 9110 §11.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// refuse makes the answer the connection's last and stops reading its
// body: the server would otherwise drain up to 256 KiB of it, as slowly
// as the client sends it, before closing.
func refuse(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// revoker ends the requests of a token that no longer verifies, or no
// longer holds the role or reaches the cluster its request needs: an event stream or a long
// command of a revoked token ends within a period, not when it is done.
// Each distinct token in use is checked once a period, and only while
// it has requests in flight.
type revoker struct {
	every    time.Duration
	identify func(tok string) (identity, bool)

	mu      sync.Mutex
	held    map[*heldRequest]struct{}
	running bool
}

type heldRequest struct {
	tok     string
	need    Role
	cluster string
	cancel  context.CancelCauseFunc
}

// hold returns ctx, cancelled with errRevoked once tok stops verifying
// with a role of at least need on cluster, and the function to call when
// the request ends.
func (v *revoker) hold(ctx context.Context, tok string, need Role, cluster string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	h := &heldRequest{tok: tok, need: need, cluster: cluster, cancel: cancel}
	v.mu.Lock()
	if v.held == nil {
		v.held = map[*heldRequest]struct{}{}
	}
	v.held[h] = struct{}{}
	if !v.running {
		v.running = true
		go v.watch()
	}
	v.mu.Unlock()
	return ctx, func() {
		v.mu.Lock()
		delete(v.held, h)
		v.mu.Unlock()
		cancel(nil)
	}
}

// watch checks the held tokens every period until none is held.
func (v *revoker) watch() {
	t := time.NewTicker(v.every)
	defer t.Stop()
	for range t.C {
		v.mu.Lock()
		if len(v.held) == 0 {
			v.running = false
			v.mu.Unlock()
			return
		}
		byTok := map[string][]*heldRequest{}
		for h := range v.held {
			byTok[h.tok] = append(byTok[h.tok], h)
		}
		v.mu.Unlock()
		// The lookups run unlocked: they read the tokens file.
		for tok, hs := range byTok {
			id, ok := v.identify(tok)
			for _, h := range hs {
				if !ok || id.Permit(h.need, h.cluster) != nil {
					h.cancel(errRevoked)
				}
			}
		}
	}
}
