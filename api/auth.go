package api

import (
	"net/http"
	"strings"
)

func (s *server) auth(next http.Handler) http.Handler {
	if s.o.AuthNone {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		name := ""
		if ok {
			name, ok = s.identify(strings.TrimSpace(tok))
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="deployment-engine"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token: send 'Authorization: Bearer <token>' (the token is in <data>/api-token)")
			return
		}
		next.ServeHTTP(w, r.WithContext(withActor(r.Context(), name)))
	})
}
