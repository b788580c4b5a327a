package api

import (
	"net/http"
	"path"
	"strings"
)

// mirrorHandler serves the local apt repository read-only. Directory
// listings are off and dot files stay hidden.
func mirrorHandler(dir string) http.Handler {
	// apt asks for ./Packages of a flat repository: the path is cleaned.
	return readOnlyFiles(dir, "the mirror is read-only", "no such file in the mirror", func(p string) bool {
		return p != "/" && !strings.Contains(p, "/.")
	})
}

// readOnlyFiles serves dir's files for GET and HEAD (other methods get 405
// refused), at cleaned paths that allow accepts (others get 404 missing).
func readOnlyFiles(dir, refused, missing string, allow func(p string) bool) http.Handler {
	fs := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, refused)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		if !allow(p) {
			writeError(w, http.StatusNotFound, missing)
			return
		}
		r.URL.Path = p
		fs.ServeHTTP(w, r)
	})
}
