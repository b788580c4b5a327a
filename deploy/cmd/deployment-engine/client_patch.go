package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// patch [IP[,IP...]] [--max-in-flight N|N%] [--reboot if-required|always|never]
func init() { commands["patch"] = clientCommand("patch", patchCmd) }

// patchCmd upgrades the packages of every node (or of those named) from
// the engine's mirror, follows the deployment (progress on stderr) and
// prints a row per node step. Exit 1 when the patch failed.
func patchCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) <= 1, "patch takes at most IP[,IP...]"); code != exitOK {
		return code
	}
	x := contract.Patch{MaxInFlight: s.maxInFlight, Reboot: s.reboot}
	if len(s.args) == 1 {
		ips, ok := ipList(s.args[0])
		if !ok {
			return s.usage("patch takes IP[,IP...]: %s is not a list of IP addresses", s.args[0])
		}
		x.Nodes = ips
	}
	started, _, err := s.c.Patch(ctx, x)
	if err != nil {
		return s.fail(err)
	}
	if !s.json {
		fmt.Fprintf(s.stderr, "patch of %s, %d batch(es): deployment %s\n", strings.Join(started.Nodes, ", "), started.Batches, started.ID)
		if len(started.Held) > 0 {
			fmt.Fprintf(s.stderr, "left out, in maintenance: %s\n", strings.Join(started.Held, ", "))
		}
	}
	return s.fleetEnd(ctx, started.ID, "patch", patchTable)
}

// patchTable prints a row per node of a patch: NODE UPGRADE REBOOT BACK,
// each the step's state, then the last line of the upgrade's and the
// reboot's output.
func patchTable(w io.Writer, steps []contract.StepStatus) {
	type row struct{ upgrade, reboot, back, said string }
	rows := map[string]*row{}
	var order []string
	for _, st := range steps {
		r := rows[st.Node]
		switch st.Action {
		case "patch-upgrade", "patch-reboot", "patch-back":
		default:
			continue
		}
		if r == nil {
			r = &row{upgrade: "-", reboot: "-", back: "-"}
			rows[st.Node] = r
			order = append(order, st.Node)
		}
		said := lastLine(st.Output)
		if said == "" {
			said = st.Error
		}
		switch st.Action {
		case "patch-upgrade":
			r.upgrade = st.State
			if said != "" {
				r.said = said
			}
		case "patch-reboot":
			r.reboot = st.State
			if said != "" && st.State != contract.StatePending && st.State != contract.StateSkipped {
				r.said = said
			}
		case "patch-back":
			r.back = st.State
			if st.State == contract.StateFailed {
				r.said = said
			}
		}
	}
	tw := table(w, "NODE\tUPGRADE\tREBOOT\tBACK\tSAID")
	for _, ip := range order {
		r := rows[ip]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ip, r.upgrade, r.reboot, r.back, clipRunes(r.said, 80))
	}
	_ = tw.Flush()
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
