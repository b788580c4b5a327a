package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/deploy/engine"
)

func init() { commands["token"] = tokenCmd }

// tokenUsage is the token command's usage line.
const tokenUsage = "usage: deployment-engine token add NAME [--role read|operate|deploy|admin] [--clusters NAME,...] | revoke NAME | list [--data DIR]\n"

// tokenCmd: token add NAME [--role ROLE] [--clusters a,b] | token revoke
// NAME | token list [--data DIR]. It edits <data>/api-tokens on the
// control machine; the engine reads the file again at once.
func tokenCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := fs.String("data", "./data", "the engine's data directory")
	roleName := fs.String("role", "deploy", "what a new token may do: read (GET routes and event streams), operate (also restart, stop, "+
		"cancel, heal, maintenance), deploy (also config, plan, deploy, scale, rollback, releases) or admin (everything)")
	clusterList := fs.String("clusters", "", "the clusters a new token reaches, comma-separated (default: every cluster)")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return exitUsage
	}
	role, err := api.ParseRole(*roleName)
	if err != nil {
		fmt.Fprintf(stderr, "token: --%v\n", err)
		return exitUsage
	}
	var clusters []string
	if *clusterList != "" {
		if clusters, err = engine.ParseClusters(*clusterList); err != nil {
			fmt.Fprintf(stderr, "token: --%v\n", err)
			return exitUsage
		}
	}
	path := filepath.Join(*data, engine.TokensFile)
	switch {
	case pos[0] == "add" && len(pos) == 2:
		tok, err := engine.AddToken(path, pos[1], role, clusters)
		if err != nil {
			fmt.Fprintf(stderr, "token add: %v\n", err)
			return exitFailed
		}
		fmt.Fprintln(stdout, tok)
		fmt.Fprintf(stderr, "token %s (role %s, clusters %s) added to %s (only its hash is kept: copy it now)\n",
			pos[1], role, reach(clusters), path)
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
		tw := table(stdout, "NAME\tROLE\tCLUSTERS\tSTATE")
		for _, e := range entries {
			state := "valid"
			if e.Revoked != "" {
				state = "revoked " + e.Revoked
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Role, reach(e.Clusters), state)
		}
		_ = tw.Flush()
		return exitOK
	}
	fmt.Fprint(stderr, tokenUsage)
	return exitUsage
}

// reach shows the clusters a token reaches: "*" for every one, which no
// cluster's name can be.
func reach(clusters []string) string {
	if clusters == nil {
		return "*"
	}
	return strings.Join(clusters, ",")
}
