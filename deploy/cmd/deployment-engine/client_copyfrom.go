package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// copyFromCmd reads the file at --from back from a component's nodes or
// the nodes named into DIR/<ip>/<name>, follows its deployment (progress
// on stderr) and prints a row per node: the SHA-256 and size the node
// computed, and "ok" once the file fetched from the engine is that. With
// --json, the deployment's steps. Exit 1 when any node failed or a file
// fetched is not what its node read.
func copyFromCmd(ctx context.Context, s *session) int {
	if why := contract.CopyPathProblem(s.from); why != "" {
		return s.fail(fmt.Errorf("--from %q: %s", s.from, why))
	}
	dir := s.args[1]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return s.fail(fmt.Errorf("%s is not a directory", dir))
	}
	if code := s.begin(true, copyUse); code != exitOK {
		return code
	}
	x := contract.FleetCopy{From: s.from, MaxInFlight: s.maxInFlight}
	if ips, ok := ipList(s.args[0]); ok {
		x.Nodes = ips
	} else {
		x.Component = s.args[0]
	}
	started, _, err := s.c.Copy(ctx, x)
	if err != nil {
		return s.fail(err)
	}
	if !s.json {
		fmt.Fprintf(s.stderr, "copy %s from %s into %s: deployment %s\n", started.From, strings.Join(started.Nodes, ", "), dir, started.ID)
	}
	d, steps, code := followFleet(ctx, s, started.ID)
	if code != exitOK {
		return code
	}
	out := s.stdout
	if s.json {
		out = io.Discard // the rows are counted all the same
	}
	tw := table(out, "NODE\tSHA256\tSIZE\tRESULT")
	bad := 0
	for _, st := range steps {
		sum, size, result := fetchCopied(ctx, s, started.ID, st, filepath.Join(dir, st.Node, path.Base(s.from)))
		if result != "ok" {
			bad++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st.Node, sum, size, clipRunes(strings.ReplaceAll(result, "\n", " "), 80))
	}
	_ = tw.Flush()
	return s.copyEnd(d, steps, bad)
}

// fetchCopied fetches the file deployment id read back from st's node and
// writes it to dst, once it is the SHA-256 and size the node computed (its
// step's output). It returns the row's checksum, size and result: "ok", or
// what went wrong.
func fetchCopied(ctx context.Context, s *session, id string, st contract.StepStatus, dst string) (string, string, string) {
	sum, size, ok := contract.ParseCopyOutput(st.Output)
	switch {
	case !ok && st.Error != "":
		return "-", "-", st.Error
	case !ok || st.State != contract.StateSucceeded:
		return "-", "-", st.State
	case !plainIP(st.Node):
		// It names a directory under DIR: never "..", never a path.
		return sum, fmt.Sprint(size), fmt.Sprintf("the engine named the node %q", st.Node)
	}
	b, err := s.c.CopiedFile(ctx, id, st.Node)
	if err != nil {
		return sum, fmt.Sprint(size), err.Error()
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != sum || int64(len(b)) != size {
		return sum, fmt.Sprint(size), "the file fetched differs from the node's"
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return sum, fmt.Sprint(size), err.Error()
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return sum, fmt.Sprint(size), err.Error()
	}
	return sum, fmt.Sprint(size), "ok"
}

// plainIP tells whether node is an IP address as written plainly.
func plainIP(node string) bool {
	a, err := netip.ParseAddr(node)
	return err == nil && a.String() == node
}
