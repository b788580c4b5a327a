package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// copy COMPONENT|IP[,IP...] --to PATH FILE [--mode 0640] [--max-in-flight N|N%]
// copy COMPONENT|IP[,IP...] --from PATH DIR [--max-in-flight N|N%]
func init() { commands["copy"] = clientCommand("copy", copyCmd) }

const copyUse = "copy needs COMPONENT|IP[,IP...] --to PATH FILE, or --from PATH DIR"

// copyCmd puts FILE at --to on a component's nodes or on the nodes named,
// follows its deployment (progress on stderr) and prints a row per node:
// the SHA-256 and size of the file the node has, and whether it is FILE's.
// With --json, the deployment's steps as the engine has them. Exit 1 when
// any node failed or holds another checksum.
func copyCmd(ctx context.Context, s *session) int {
	if len(s.args) == 2 && s.from != "" && s.to == "" && s.mode == "" {
		return copyFromCmd(ctx, s)
	}
	if len(s.args) != 2 || s.to == "" || s.from != "" {
		return s.usage(copyUse)
	}
	content, err := readCopied(s.args[1])
	if err != nil {
		return s.fail(err)
	}
	if code := s.begin(true, copyUse); code != exitOK {
		return code
	}
	x := contract.FleetCopy{To: s.to, Content: content, Mode: s.mode, MaxInFlight: s.maxInFlight}
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
		fmt.Fprintf(s.stderr, "copy %s (%d bytes, sha256 %s) to %s: deployment %s\n", s.args[1], started.Size, started.SHA256, started.To, started.ID)
	}
	d, steps, code := followFleet(ctx, s, started.ID)
	if code != exitOK {
		return code
	}
	sum := sha256.Sum256(content)
	table := s.stdout
	if s.json {
		table = io.Discard // the rows are counted all the same
	}
	bad := copyTable(table, steps, hex.EncodeToString(sum[:]), int64(len(content)))
	return s.copyEnd(d, steps, bad)
}

// readCopied reads the file to copy, refusing one over the engine's bound
// before it is sent.
func readCopied(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, contract.MaxCopyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > contract.MaxCopyBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes (4 MiB), the most a copy takes", name, contract.MaxCopyBytes)
	}
	return b, nil
}

// copyTable prints a row per node of a copy: NODE SHA256 SIZE RESULT, the
// checksum and size the node reported for its file, and "ok" when they
// are sum and size, else what went wrong. It returns the rows not ok.
func copyTable(w io.Writer, steps []contract.StepStatus, sum string, size int64) int {
	tw := table(w, "NODE\tSHA256\tSIZE\tRESULT")
	bad := 0
	for _, st := range steps {
		got, n, ok := contract.ParseCopyOutput(st.Output)
		shown, result := "-", "ok"
		switch {
		case ok:
			shown = got
			if got != sum || n != size {
				result = "differs from the file sent"
			}
		case st.Error != "":
			result = st.Error
		default:
			result = st.State
		}
		size := "-"
		if ok {
			size = fmt.Sprint(n)
		}
		if result != "ok" || (st.State != contract.StateSucceeded && st.State != contract.StateUnchanged) {
			bad++
			if result == "ok" {
				result = st.State
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st.Node, shown, size, clipRunes(strings.ReplaceAll(result, "\n", " "), 80))
	}
	_ = tw.Flush()
	return bad
}

// copyEnd ends a copy either way: the steps as JSON with --json, else the
// deployment's error when it failed; exit 1 when it failed or bad rows
// were not ok.
func (s *session) copyEnd(d contract.DeploymentPage, steps []contract.StepStatus, bad int) int {
	switch {
	case s.json:
		raw, err := json.Marshal(steps)
		if err != nil {
			return s.fail(err)
		}
		s.printJSON(raw)
	case d.State != contract.DeploySucceeded:
		fmt.Fprintf(s.stderr, "copy: %s\n", d.Error)
	}
	if bad > 0 || d.State != contract.DeploySucceeded {
		return exitFailed
	}
	return exitOK
}
