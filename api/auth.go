package api

import (
	"net/http"
	"strings"
	"time"
)

// auth checks the token on the request's headers, before any handler
// reads a body. A refused request's connection is closed after the 401:
// the server neither reads nor waits for the body it announced.
func (s *server) auth(next http.Handler) http.Handler {
	if s.o.AuthNone {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		name := ""
		if ok {
			name, ok = s.identify(tok)
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="deployment-engine"`)
			refuse(w)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token: send 'Authorization: Bearer <token>' (the engine's token is in <data>/api-token, named ones in <data>/api-tokens)")
			return
		}
		next.ServeHTTP(w, r.WithContext(withActor(r.Context(), name)))
	})
}

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
