package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

// exec COMPONENT|IP[,IP...] [--max-in-flight N|N%] [--timeout S]
// [--halt-on-failure] -- COMMAND...: everything after "--" is the command,
// untouched by the client's flags.
func init() {
	commands["exec"] = func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		i := slices.Index(args, "--")
		if i < 0 {
			return clientCommand("exec", func(_ context.Context, s *session) int {
				return s.usage("exec needs COMPONENT|IP[,IP...] -- COMMAND...")
			})(ctx, args, stdout, stderr)
		}
		command := strings.Join(args[i+1:], " ")
		return clientCommand("exec", func(ctx context.Context, s *session) int { return execCmd(ctx, s, command) })(ctx, args[:i], stdout, stderr)
	}
}

// execCmd runs command on a component's nodes or on the nodes named, follows
// its deployment (progress on stderr) and prints a row per node: its exit
// code, how long it ran, the last line of its output. With --json, the
// deployment's steps as the engine has them. Exit 1 when any node failed.
func execCmd(ctx context.Context, s *session, command string) int {
	if code := s.begin(len(s.args) == 1 && strings.TrimSpace(command) != "", "exec needs COMPONENT|IP[,IP...] -- COMMAND..."); code != exitOK {
		return code
	}
	x := contract.FleetExec{Command: command, MaxInFlight: s.maxInFlight, HaltOnFailure: s.halt}
	if s.timeout != 0 {
		x.Timeout = &s.timeout
	}
	if ips, ok := ipList(s.args[0]); ok {
		x.Nodes = ips
	} else {
		x.Component = s.args[0]
	}
	started, _, err := s.c.Exec(ctx, x)
	if err != nil {
		return s.fail(err)
	}
	if !s.json {
		fmt.Fprintf(s.stderr, "exec %q: deployment %s\n", started.Command, started.ID)
	}
	return s.fleetEnd(ctx, started.ID, "exec", execTable)
}

// fleetEnd follows deployment id of a fleet command to its end and prints
// its steps: as the engine has them with --json, else as table prints
// them, with the deployment's error on stderr. Exit 1 when it failed.
func (s *session) fleetEnd(ctx context.Context, id, what string, table func(io.Writer, []contract.StepStatus)) int {
	d, steps, code := followFleet(ctx, s, id)
	if code != exitOK {
		return code
	}
	if s.json {
		raw, err := json.Marshal(steps)
		if err != nil {
			return s.fail(err)
		}
		s.printJSON(raw)
	} else {
		table(s.stdout, steps)
		if d.State != contract.DeploySucceeded {
			fmt.Fprintf(s.stderr, "%s: %s\n", what, d.Error)
		}
	}
	if d.State != contract.DeploySucceeded {
		return exitFailed
	}
	return exitOK
}

// followFleet follows deployment id of a fleet command (exec, copy) to its
// end, its progress on stderr unless --json, and reads its steps; the code
// is exitOK, or what to exit with when it could not.
func followFleet(ctx context.Context, s *session, id string) (contract.DeploymentPage, []contract.StepStatus, int) {
	p := newProgress(s.stderr)
	d, err := s.c.Follow(ctx, id, func(ev client.Event) error {
		if s.json {
			return nil
		}
		switch {
		case ev.Summary != nil:
			p.summary(*ev.Summary)
		case ev.Step != nil:
			p.step(*ev.Step)
		}
		p.draw()
		return nil
	})
	p.clear()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(s.stderr, "stopped following; deployment %s goes on in the engine (cancel %s ends it)\n", id, id)
			return d, nil, exitFailed
		}
		return d, nil, s.fail(err)
	}
	steps, err := s.c.AllSteps(ctx, id)
	if err != nil {
		return d, nil, s.fail(err)
	}
	return d, steps, exitOK
}

// ipList reads "IP[,IP...]"; false when any of it is no IP (a component).
func ipList(arg string) ([]string, bool) {
	var out []string
	for _, f := range strings.Split(arg, ",") {
		if _, err := netip.ParseAddr(strings.TrimSpace(f)); err != nil {
			return nil, false
		}
		out = append(out, strings.TrimSpace(f))
	}
	return out, true
}

// execTable prints a row per node of an exec: NODE EXIT DURATION OUTPUT-TAIL.
// EXIT is the command's exit code, or the step's state when it has none
// (skipped, held); the tail is the last line of its output, else its error.
func execTable(w io.Writer, steps []contract.StepStatus) {
	tw := table(w, "NODE\tEXIT\tDURATION\tOUTPUT-TAIL")
	for _, st := range steps {
		exit := st.State
		if st.ExitCode != nil {
			exit = fmt.Sprint(*st.ExitCode)
		}
		dur := "-"
		if st.Started != nil && st.Finished != nil {
			dur = st.Finished.Sub(*st.Started).Round(10 * time.Millisecond).String()
		}
		tail := st.Output
		if i := strings.LastIndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		}
		if tail == "" {
			tail = st.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st.Node, exit, dur, clipRunes(tail, 80))
	}
	_ = tw.Flush()
}

// clipRunes cuts s to at most n runes, marking the cut.
func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
