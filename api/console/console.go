// Package console is the engine's web console: plain HTML, CSS and
// JavaScript modules, embedded in the binary and served at / with no build
// step. It talks to the API under /deployment-engine with the API token the
// operator signs in with (kept in the tab's sessionStorage only).
package console

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the console's files, index.html at the root.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The directory is embedded above: it always exists.
		panic(err)
	}
	return sub
}
