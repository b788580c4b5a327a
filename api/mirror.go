package api

import (
	"net/http"
	"path"
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
		// apt asks for ./Packages of a flat repository.
		p := path.Clean("/" + r.URL.Path)
		r.URL.Path = p
		if p == "/" || strings.Contains(p, "/.") {
			writeError(w, http.StatusNotFound, "no such file in the mirror")
			return
		}
		fs.ServeHTTP(w, r)
	})
}
