package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

func init() {
	commands["errand"] = clientCommand("errand", errandCmd)
	commands["errands"] = clientCommand("errands", errandsCmd)
}

// errandsCmd lists the config's errands: NAME COMPONENT RELEASE NODES.
func errandsCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 0, "errands takes no argument"); code != exitOK {
		return code
	}
	l, raw, err := s.c.Errands(ctx)
	if err != nil {
		return s.fail(err)
	}
	if s.json {
		s.printJSON(raw)
		return exitOK
	}
	if len(l.Errands) == 0 {
		fmt.Fprintln(s.stderr, "the config places no errand")
		return exitOK
	}
	tw := table(s.stdout, "NAME\tCOMPONENT\tRELEASE\tNODES")
	for _, e := range l.Errands {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Component, e.Release, strings.Join(e.Nodes, ","))
	}
	_ = tw.Flush()
	return exitOK
}

// errandCmd is errand run NAME [--when-changed] [--timeout S]: it runs
// the errand, follows its deployment (progress on stderr) and prints each
// instance's exit code, stdout and stderr; exit 1 when any failed. With
// --json, the run steps as the engine has them.
func errandCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 2 && s.args[0] == "run", "errand run NAME [--when-changed] [--timeout S]"); code != exitOK {
		return code
	}
	started, _, err := s.c.RunErrand(ctx, s.args[1], s.whenChanged, s.timeout)
	if err != nil {
		return s.fail(err)
	}
	if !s.json {
		fmt.Fprintf(s.stderr, "errand %s on %s: deployment %s\n", started.Name, strings.Join(started.Nodes, ", "), started.ID)
	}
	d, steps, code := followFleet(ctx, s, started.ID)
	if code != exitOK {
		return code
	}
	var runs []contract.StepStatus
	for _, st := range steps {
		if st.Action == contract.ErrandAction {
			runs = append(runs, st)
		}
	}
	if s.json {
		raw, err := json.Marshal(runs)
		if err != nil {
			return s.fail(err)
		}
		s.printJSON(raw)
	} else {
		errandResults(s.stdout, runs)
		if d.State != contract.DeploySucceeded && d.Error != "" {
			fmt.Fprintf(s.stderr, "errand: %s\n", d.Error)
		}
	}
	if d.State != contract.DeploySucceeded {
		return exitFailed
	}
	return exitOK
}

// errandResults prints each instance's run: a header with its node and
// exit code (or why it has none), then its stdout and stderr as kept.
func errandResults(w io.Writer, runs []contract.StepStatus) {
	for i, st := range runs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := st.State
		switch {
		case st.State == contract.StateUnchanged:
			head = "skipped: unchanged since its last successful run"
		case st.ExitCode != nil:
			head = fmt.Sprintf("exit %d", *st.ExitCode)
		case st.Error != "":
			head += ": " + st.Error
		}
		fmt.Fprintf(w, "== %s %s: %s\n", st.Component, st.Node, head)
		for _, stream := range []struct{ name, text string }{{"stdout", st.Stdout}, {"stderr", st.Stderr}} {
			if stream.text == "" {
				continue
			}
			fmt.Fprintf(w, "-- %s\n%s", stream.name, stream.text)
			if !strings.HasSuffix(stream.text, "\n") {
				fmt.Fprintln(w)
			}
		}
	}
}
