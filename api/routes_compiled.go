package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"
)

// CompiledPrefix is where nodes fetch and put compiled packages:
// <prefix><fingerprint>/<os>.tgz.
const CompiledPrefix = "/compiled/"

// Compiled keeps the packages nodes compiled, so that other nodes of the
// same OS fetch them instead of compiling again.
type Compiled interface {
	// CompiledFile is the local file of a compiled package; one the
	// engine does not hold is an error of fs.ErrNotExist.
	CompiledFile(ctx context.Context, fp, osKey string) (string, error)
	// KeepCompiled reads a compiled package from r and answers the HTTP
	// code and body: 201 kept, 200 kept already (r unread), 400 a key or
	// tarball refused, 413 past a limit, 507 no room.
	KeepCompiled(ctx context.Context, fp, osKey string, r io.Reader) (int, any)
	// UploadToken is the token node ip puts compiled packages with ("" for
	// none: uploads are refused).
	UploadToken(ip string) string
}

// compiledFiles serves compiled packages to nodes (GET, HEAD) and takes
// them from nodes (PUT) that show their node's upload token, as
// "Authorization: Bearer <token>" with the node's IP in X-DE-Node: a
// compiled package runs as root on every node that fetches it.
func compiledFiles(c Compiled, idle time.Duration) http.Handler {
	serve := streaming(idle, func(w http.ResponseWriter, r *http.Request) {
		fp, osKey, ok := compiledKey(r)
		if !ok {
			writeError(w, http.StatusNotFound, "no such compiled package: the path is /compiled/<fingerprint>/<os>.tgz")
			return
		}
		file, err := c.CompiledFile(r.Context(), fp, osKey)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			writeError(w, http.StatusNotFound, "no such compiled package")
			return
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "the compiled package could not be read; try again")
			return
		}
		f, err := os.Open(file)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "the compiled package could not be read; try again")
			return
		}
		defer func() { _ = f.Close() }()
		st, err := f.Stat()
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "the compiled package could not be read; try again")
			return
		}
		http.ServeContent(w, r, osKey+".tgz", st.ModTime(), f)
	})
	put := uploading(idle, func(w http.ResponseWriter, r *http.Request) {
		fp, osKey, ok := compiledKey(r)
		if !ok {
			writeError(w, http.StatusBadRequest, "the path is /compiled/<fingerprint>/<os>.tgz")
			return
		}
		if !uploadAllowed(c, r) {
			writeError(w, http.StatusForbidden, "a compiled package is put by a node of this engine with its upload token (Authorization: Bearer <token>, X-DE-Node: <its IP>)")
			return
		}
		code, body := c.KeepCompiled(r.Context(), fp, osKey, r.Body)
		if code >= 400 {
			_, _ = io.CopyN(io.Discard, r.Body, drainRefused)
		}
		writeJSON(w, code, body)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			serve(w, r)
		case http.MethodPut:
			put(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT")
			writeError(w, http.StatusMethodNotAllowed, "compiled packages are fetched (GET) and put by nodes (PUT)")
		}
	})
}

// compiledKey reads <fingerprint>/<os>.tgz below the prefix; the store
// checks each part.
func compiledKey(r *http.Request) (fp, osKey string, ok bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, CompiledPrefix)
	if !ok {
		return "", "", false
	}
	fp, file, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	osKey, ok = strings.CutSuffix(file, ".tgz")
	return fp, osKey, ok && osKey != "" && !strings.Contains(osKey, "/")
}

func uploadAllowed(c Compiled, r *http.Request) bool {
	ip, err := netip.ParseAddr(r.Header.Get("X-DE-Node"))
	if err != nil {
		return false
	}
	want := c.UploadToken(ip.String())
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
