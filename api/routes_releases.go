package api

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
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
	// Dir is served read-only at /releases/ so that nodes fetch packages.
	Dir() string
}

// releaseRoutes registers the release routes under /deployment-engine.
func (s *server) releaseRoutes(r chi.Router) {
	r.Get("/releases", s.listReleases)
	r.Post("/releases", uploading(s.o.Limits.StreamIdle, s.uploadRelease))
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
	writeJSON(w, code, out)
}

// releaseFiles serves the stored releases' package tarballs to nodes,
// read-only: only <release>/<version>/packages/<name>.tgz.
func releaseFiles(dir string) http.Handler {
	return readOnlyFiles(dir, "releases are read-only here; upload at /deployment-engine/releases", "no such release file", func(p string) bool {
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		return len(parts) == 4 && parts[2] == "packages" && strings.HasSuffix(parts[3], ".tgz") && !strings.Contains(p, "/.")
	})
}
