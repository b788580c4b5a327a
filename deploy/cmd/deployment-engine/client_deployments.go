package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["deployments"] = clientCommand("deployments", deploymentsCmd) }

// deploymentsCmd: deployments lists the deployments, newest first;
// deployments ID prints one's summary (its steps counted per state and per
// component, its failed steps), or with --steps the steps in those states,
// read a page at a time: a deployment of thousands of steps is never read
// whole. Exit 1 when the deployment shown failed.
func deploymentsCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) <= 1, "deployments takes at most one deployment ID"); code != exitOK {
		return code
	}
	if len(s.args) == 0 {
		if s.steps != "" {
			return s.usage("--steps needs a deployment ID")
		}
		list, raw, err := s.c.Deployments(ctx)
		return s.answer(raw, err, func() { listDeployments(s.stdout, list) })
	}
	id := s.args[0]
	if s.steps != "" {
		return s.listSteps(ctx, id)
	}
	d, raw, err := s.c.Summary(ctx, id)
	if code := s.answer(raw, err, func() { printSummary(s.stdout, d) }); code != exitOK {
		return code
	}
	if d.State == contract.DeployFailed {
		return exitFailed
	}
	return exitOK
}

// listSteps prints the steps of deployment id in the states --steps names
// ("all": every step), in the deployment's order.
func (s *session) listSteps(ctx context.Context, id string) int {
	var states []string
	if s.steps != "all" {
		states = strings.Split(s.steps, ",")
	}
	st, err := s.c.AllSteps(ctx, id, states...)
	if err != nil {
		return s.fail(err)
	}
	if s.json {
		if st == nil {
			st = []contract.StepStatus{}
		}
		raw, err := json.Marshal(st)
		if err != nil {
			return s.fail(fmt.Errorf("encode the steps: %w", err))
		}
		s.printJSON(raw)
		return exitOK
	}
	tw := table(s.stdout, "NODE\tCOMPONENT\tACTION\tSTATE\tATTEMPT\tEXIT\tTOOK\tERROR")
	for _, x := range st {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", x.Node, x.Component, x.Action, x.State, x.Attempt, exitOf(x), tookOf(x), printable(x.Error))
	}
	_ = tw.Flush()
	return exitOK
}

// listDeployments prints one line a deployment, newest first.
func listDeployments(w io.Writer, list []contract.DeploymentSummary) {
	sort.Slice(list, func(i, j int) bool { return list[i].Created.After(list[j].Created) })
	tw := table(w, "ID\tKIND\tSTATE\tCHANGED\tCREATED\tTOOK")
	for _, d := range list {
		took := "-"
		if d.Finished != nil && !d.Created.IsZero() {
			took = d.Finished.Sub(d.Created).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, cmp.Or(d.Kind, "deploy"), d.State, d.Changed, d.Created.Local().Format("2006-01-02 15:04:05"), took)
	}
	_ = tw.Flush()
}

// printSummary prints a deployment's summary: its head, its steps per
// state, a table of them per component, and its failed steps.
func printSummary(w io.Writer, d contract.DeploymentPage) {
	summarize(w, d, d.Failed)
	if more := d.Counts[contract.StateFailed] - len(d.Failed); more > 0 {
		fmt.Fprintf(w, "  … and %d more failed: deployments %s --steps failed\n", more, d.ID)
	}
	states := slices.DeleteFunc(slices.Clone(contract.StepStates), func(st string) bool { return d.Counts[st] == 0 })
	var counts []string
	for _, st := range states {
		counts = append(counts, fmt.Sprintf("%d %s", d.Counts[st], st))
	}
	fmt.Fprintf(w, "%d step(s): %s\n", d.Total, strings.Join(counts, ", "))
	if len(d.Components) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := table(w, "COMPONENT\tSTEPS\t"+strings.ToUpper(strings.Join(states, "\t")))
	comps := make([]string, 0, len(d.Components))
	for c := range d.Components {
		comps = append(comps, c)
	}
	sort.Strings(comps)
	for _, c := range comps {
		n, row := 0, ""
		for _, st := range states {
			n += d.Components[c][st]
			row += fmt.Sprintf("\t%d", d.Components[c][st])
		}
		fmt.Fprintf(tw, "%s\t%d%s\n", c, n, row)
	}
	_ = tw.Flush()
}

func exitOf(st contract.StepStatus) string {
	if st.ExitCode == nil {
		return "-"
	}
	return fmt.Sprint(*st.ExitCode)
}

func tookOf(st contract.StepStatus) string {
	if st.Started == nil || st.Finished == nil {
		return "-"
	}
	return st.Finished.Sub(*st.Started).Round(time.Millisecond).String()
}
