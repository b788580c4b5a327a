package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/deploy/engine"
)

func init() { commands["token"] = tokenCmd }

// tokenCmd: token add NAME [--role read|write] | token revoke NAME |
// token list [--data DIR]. It edits <data>/api-tokens on the control
// machine; the engine reads the file again at once.
func tokenCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := fs.String("data", "./data", "the engine's data directory")
	roleName := fs.String("role", "write", "what a new token may do: read (GET routes and event streams) or write (everything)")
	pos, err := parseInterleaved(fs, args)
	usage := "usage: deployment-engine token add NAME [--role read|write] | revoke NAME | list [--data DIR]\n"
	if err != nil || len(pos) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	role, err := api.ParseRole(*roleName)
	if err != nil {
		fmt.Fprintf(stderr, "token: --%v\n", err)
		return exitUsage
	}
	path := filepath.Join(*data, engine.TokensFile)
	switch {
	case pos[0] == "add" && len(pos) == 2:
		tok, err := engine.AddToken(path, pos[1], role)
		if err != nil {
			fmt.Fprintf(stderr, "token add: %v\n", err)
			return exitFailed
		}
		fmt.Fprintln(stdout, tok)
		fmt.Fprintf(stderr, "token %s (role %s) added to %s (only its hash is kept: copy it now)\n", pos[1], role, path)
		return exitOK
	case pos[0] == "revoke" && len(pos) == 2:
		if err := engine.RevokeToken(path, pos[1]); err != nil {
			fmt.Fprintf(stderr, "token revoke: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "token %s revoked\n", pos[1])
		return exitOK
	case pos[0] == "list" && len(pos) == 1:
		entries, err := engine.ListTokens(path)
		if err != nil {
			fmt.Fprintf(stderr, "token list: %v\n", err)
			return exitFailed
		}
		tw := table(stdout, "NAME\tROLE\tSTATE")
		for _, e := range entries {
			state := "valid"
			if e.Revoked != "" {
				state = "revoked " + e.Revoked
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, e.Role, state)
		}
		_ = tw.Flush()
		return exitOK
	}
	fmt.Fprint(stderr, usage)
	return exitUsage
}
