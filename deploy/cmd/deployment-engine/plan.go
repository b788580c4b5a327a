package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// exitPending is plan's exit code when a deployment would change something.
const exitPending = 10

func init() {
	commands["plan"] = clientCommand("plan", planCmd)
	commands["rollback"] = clientCommand("rollback", rollbackCmd)
}

// rollbackCmd: rollback [--follow].
func rollbackCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 0, "rollback takes no argument"); code != exitOK {
		return code
	}
	id, raw, err := s.c.Rollback(ctx)
	if err != nil {
		return s.fail(err)
	}
	return s.started(ctx, id, raw)
}

// planCmd: plan [FILE] prints what a deployment would do, like git diff:
// exit 0 when nothing would change, 10 when changes are pending.
func planCmd(ctx context.Context, s *session) int {
	if len(s.args) > 1 {
		return s.usage("plan takes at most one FILE (- for stdin; none: the stored config)")
	}
	var body []byte
	if len(s.args) == 1 {
		var err error
		if body, err = readArg(s.args[0]); err != nil {
			fmt.Fprintf(s.stderr, "plan: %v\n", err)
			return exitUsage
		}
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	p, raw, err := s.c.Plan(ctx, body)
	if err != nil {
		return s.fail(err)
	}
	if s.json {
		s.printJSON(raw)
	} else {
		printPlan(s.stdout, p)
	}
	if p.Changes > 0 {
		return exitPending
	}
	return exitOK
}

// printPlan writes a plan as git diff would: per node its actions, each
// file's diff, then the drift.
func printPlan(w io.Writer, p contract.Plan) {
	for _, n := range p.Nodes {
		if len(n.Actions) == 0 && len(n.Drift) == 0 && n.Error == "" {
			continue
		}
		fmt.Fprintf(w, "node %s\n", n.IP)
		if n.Error != "" {
			fmt.Fprintf(w, "  ! %s\n", n.Error)
		}
		for _, a := range n.Actions {
			fmt.Fprintf(w, "  %-9s %-10s %s\n", a.Action, a.Component, a.Why)
			if len(a.Packages) > 0 {
				fmt.Fprintf(w, "            packages: %s\n", strings.Join(a.Packages, " "))
			}
			for _, f := range a.Files {
				fmt.Fprintf(w, "diff --engine %s\n%s", f.Path, withNewline(f.Diff))
			}
			if a.Script != "" && strings.HasPrefix(a.Script, "---") {
				fmt.Fprint(w, withNewline(a.Script))
			}
		}
		for _, d := range n.Drift {
			fmt.Fprintf(w, "  drift     %-10s %s (found %s, the engine wrote %s)\n", d.Component, d.Path, short(d.Found), short(d.Want))
			if d.Diff != "" {
				fmt.Fprint(w, withNewline(d.Diff))
			}
		}
	}
	switch {
	case p.Changes == 0 && p.Drifted == 0:
		fmt.Fprintf(w, "plan %s: no changes\n", p.ID)
	default:
		fmt.Fprintf(w, "plan %s: %d action(s), %d drifted file(s); deploy it with: deployment-engine deploy --plan %s\n", p.ID, p.Changes, p.Drifted, p.ID)
	}
}

func withNewline(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		return s + "\n"
	}
	return s
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
