package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/deploy/client"
)

// Set by `make build` with -ldflags "-X main.version=... -X main.commit=... -X main.built=...".
var (
	version = "dev"
	commit  = ""
	built   = ""
)

// buildInfo is this binary's version; a plain `go build` still knows its
// commit and time from the module's VCS stamp.
func buildInfo() api.BuildInfo {
	b := api.BuildInfo{Version: version, Commit: commit, Built: built}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value[:min(len(s.Value), 12)]
			case s.Key == "vcs.time" && b.Built == "":
				b.Built = s.Value
			}
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Built == "" {
		b.Built = "unknown"
	}
	return b
}

// versionCmd: version [--json]: this binary's version, and the engine's
// when it answers.
func versionCmd(ctx context.Context, s *session) int {
	if len(s.args) != 0 {
		return s.usage("version takes no argument")
	}
	local := buildInfo()
	var remote *api.BuildInfo
	var remoteErr error
	// /version needs no token: ask even when none is at hand.
	tok, _ := client.Token(s.data)
	srv := s.server
	if srv == "" {
		srv = os.Getenv("DE_SERVER")
	}
	c := client.New(srv, tok)
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var r api.BuildInfo
	if _, err := c.Version(cctx, &r); err == nil {
		remote = &r
	} else {
		remoteErr = err
	}
	if s.json {
		b, _ := json.Marshal(struct {
			Client api.BuildInfo  `json:"client"`
			Engine *api.BuildInfo `json:"engine,omitempty"`
		}{local, remote})
		s.printJSON(b)
		return exitOK
	}
	fmt.Fprintf(s.stdout, "deployment-engine %s (commit %s, built %s)\n", local.Version, local.Commit, local.Built)
	if remote != nil {
		fmt.Fprintf(s.stdout, "engine at %s: %s (commit %s, built %s)\n", c.Server, remote.Version, remote.Commit, remote.Built)
	} else if remoteErr != nil {
		fmt.Fprintf(s.stdout, "engine: not reached (%v)\n", remoteErr)
	}
	return exitOK
}
