package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/deployment-engine/engine/services/contract"
)

func init() {
	commands["report"] = clientCommand("report", reportCmd)
}

// reportCmd: report ID — a deployment's timings.
func reportCmd(ctx context.Context, s *session) int {
	if len(s.args) != 1 {
		return s.usage("report needs a deployment ID")
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	r, raw, err := s.c.Report(ctx, s.args[0])
	if err != nil {
		return s.fail(err)
	}
	if s.json {
		s.printJSON(raw)
		return exitOK
	}
	w := s.stdout
	fmt.Fprintf(w, "deployment %s: %s, %.1f s in all, %d of %d steps ran\n", r.ID, r.State, r.TotalS, r.StepsTimed, r.StepsTotal)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, g := range []struct {
		title string
		list  []contract.TimingGroup
	}{{"NODE", r.Nodes}, {"COMPONENT", r.Components}, {"ACTION", r.Actions}} {
		fmt.Fprintf(tw, "\n%s\tSTEPS\tBUSY\tLONGEST\n", g.title)
		for _, x := range g.list {
			fmt.Fprintf(tw, "%s\t%d\t%.1fs\t%.1fs\n", x.Name, x.Steps, x.BusyS, x.MaxS)
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\ncritical path: %.1f s over %d steps\n", r.CriticalPathS, len(r.CriticalPath))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTART\tDURATION\tWAITED")
	for _, st := range r.CriticalPath {
		fmt.Fprintf(tw, "%s\t+%.1fs\t%.1fs\t%.1fs\n", st.ID, st.Started.Sub(r.Created).Seconds(), st.DurationS, st.WaitS)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nslowest %d steps:\n", len(r.Slowest))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATE\tDURATION")
	for _, st := range r.Slowest {
		fmt.Fprintf(tw, "%s\t%s\t%.1fs\n", st.ID, st.State, st.DurationS)
	}
	_ = tw.Flush()
	return exitOK
}
