package api

import (
	"io"
	"net/http"
	"time"
)

// AgentBinary is the node agent's binary, which the nodes fetch from the
// engine with no token, as they fetch the mirror, at AgentPath(SHA256).
type AgentBinary struct {
	// SHA256 is the hex SHA-256 of the binary's Size bytes in Content.
	SHA256  string
	Content io.ReaderAt
	Size    int64
	ModTime time.Time
}

// AgentPath is where the engine serves the agent binary of that SHA-256:
// a new binary is at a new path, so that no node or cache mistakes an old
// one for it.
func AgentPath(sha256 string) string { return "/agent/" + sha256 + "/de-agent" }

// agentHandler serves a's binary read-only at its path, and nothing else:
// no directory listing, no other name, no other version.
func agentHandler(a *AgentBinary) http.Handler {
	path := AgentPath(a.SHA256)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "the node agent's binary is read-only")
			return
		}
		if r.URL.Path != path {
			writeError(w, http.StatusNotFound, "no such agent binary: this engine serves "+path)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		// The path names the content: it never changes.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "de-agent", a.ModTime, io.NewSectionReader(a.Content, 0, a.Size))
	})
}
