package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
)

// drainRefused is how much of a refused upload's body is still read, so
// that a client that is still sending reads the answer rather than a reset
// connection; past it the connection is closed.
const drainRefused = 8 << 20

// Releases stores uploaded BOSH releases. The engine wires the planner's
// release store in; the API only streams bodies to it.
type Releases interface {
	// Upload reads one release tarball from r and answers the HTTP code
	// and body: 201 (stored) or 200 (already stored) with the release,
	// 400 naming the file at fault, 409 for a version stored with other
	// contents, 413 naming the limit passed and the flag that raises it,
	// 507 when the disk lacks the room. It stops reading r where it
	// refuses, and bounds r's size itself.
	Upload(ctx context.Context, r io.Reader) (int, any)
	// List answers 200 and every stored release.
	List(ctx context.Context) (int, any)
	// PackageFile is the local file of a stored release's package, served
	// read-only at /releases/ so that nodes fetch it from any API process.
	// One the engine does not hold is an error of fs.ErrNotExist.
	PackageFile(ctx context.Context, release, version, pkg string) (string, error)
}

func (s *server) listReleases(w http.ResponseWriter, r *http.Request) {
	if s.o.Releases == nil {
		writeError(w, http.StatusServiceUnavailable, "this engine keeps no releases")
		return
	}
	code, body := s.o.Releases.List(r.Context())
	writeJSON(w, code, body)
}

func (s *server) uploadRelease(w http.ResponseWriter, r *http.Request) {
	if s.o.Releases == nil {
		writeError(w, http.StatusServiceUnavailable, "this engine keeps no releases")
		return
	}
	code, out := s.o.Releases.Upload(r.Context(), r.Body)
	if code >= 400 {
		_, _ = io.CopyN(io.Discard, r.Body, drainRefused)
	}
	recordOf(r).named(releaseName(out))
	writeJSON(w, code, out)
}

// releaseName is "name/version" of the release an upload answered, ""
// for a refusal. The store's answer is JSON for the client, of a type the
// API does not know.
func releaseName(out any) string {
	b, _ := json.Marshal(out)
	var rel struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	_ = json.Unmarshal(b, &rel)
	return strings.Trim(rel.Name+"/"+rel.Version, "/")
}

// releaseFiles serves the stored releases' package tarballs to nodes,
// read-only: only <release>/<version>/packages/<name>.tgz.
func releaseFiles(rels Releases) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "releases are read-only here; upload at /deployment-engine/releases")
			return
		}
		p := path.Clean("/" + r.URL.Path)
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		pkg, ok := strings.CutSuffix(parts[len(parts)-1], ".tgz")
		if len(parts) != 4 || parts[2] != "packages" || !ok || strings.Contains(p, "/.") {
			writeError(w, http.StatusNotFound, "no such release file")
			return
		}
		file, err := rels.PackageFile(r.Context(), parts[0], parts[1], pkg)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			writeError(w, http.StatusNotFound, "no such release file")
			return
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "the release's package could not be read from the bus; try again")
			return
		}
		f, err := os.Open(file)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "the release's package could not be read; try again")
			return
		}
		defer func() { _ = f.Close() }()
		st, err := f.Stat()
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "the release's package could not be read; try again")
			return
		}
		http.ServeContent(w, r, path.Base(p), st.ModTime(), f)
	})
}
