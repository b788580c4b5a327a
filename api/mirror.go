package api

import (
	"net/http"
	"strings"
)

// mirrorHandler serves the local apt repository read-only. Directory
// listings are off and dot files stay hidden.
func mirrorHandler(dir string) http.Handler {
	fs := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "the mirror is read-only")
			return
		}
		p := r.URL.Path
		if p == "" || strings.HasSuffix(p, "/") || strings.Contains(p, "/.") || strings.HasPrefix(p, ".") {
			writeError(w, http.StatusNotFound, "no such file in the mirror")
			return
		}
		fs.ServeHTTP(w, r)
	})
}
