package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/deployment-engine/engine/services/contract"
)

func init() {
	commands["report"] = clientCommand("report", reportCmd)
}

// reportCmd: report ID — a deployment's timings.
func reportCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 1, "report needs a deployment ID"); code != exitOK {
		return code
	}
	r, raw, err := s.c.Report(ctx, s.args[0])
	return s.answer(raw, err, func() { printReport(s.stdout, r) })
}

// printReport writes a deployment's timings as tables.
func printReport(w io.Writer, r contract.Report) {
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
	tw = table(w, "STEP\tSTART\tDURATION\tWAITED")
	for _, st := range r.CriticalPath {
		fmt.Fprintf(tw, "%s\t+%.1fs\t%.1fs\t%.1fs\n", st.ID, st.Started.Sub(r.Created).Seconds(), st.DurationS, st.WaitS)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nslowest %d steps:\n", len(r.Slowest))
	tw = table(w, "STEP\tSTATE\tDURATION")
	for _, st := range r.Slowest {
		fmt.Fprintf(tw, "%s\t%s\t%.1fs\n", st.ID, st.State, st.DurationS)
	}
	_ = tw.Flush()
}

func init() {
	commands["audit"] = clientCommand("audit", auditCmd)
	commands["heal"] = clientCommand("heal", healCmd)
}

// auditCmd: audit [since=90m] [actor=NAME] [action=ACTION] — the audit
// trail, oldest first.
func auditCmd(ctx context.Context, s *session) int {
	q := url.Values{}
	for _, a := range s.args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || (k != "since" && k != "actor" && k != "action" && k != "limit") {
			return s.usage("audit takes since=, actor=, action= and limit=, not %q", a)
		}
		q.Set(k, v)
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	list, raw, err := s.c.Audit(ctx, q)
	return s.answer(raw, err, func() {
		tw := table(s.stdout, "TIME\tACTOR\tACTION\tOBJECT\tRESULT\tDETAIL")
		for _, e := range list {
			obj := e.Object
			if e.Deployment != "" {
				obj += " " + e.Deployment
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %d\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, obj, e.Result, e.Code, e.Detail)
			for _, d := range e.Diff {
				fmt.Fprintf(tw, "\t\t\t  %s\t\t\n", d)
			}
		}
		_ = tw.Flush()
	})
}

// healCmd: heal [on|off] — auto-heal's state, or switch it.
func healCmd(ctx context.Context, s *session) int {
	switchTo := len(s.args) == 1 && (s.args[0] == "on" || s.args[0] == "off")
	if code := s.begin(len(s.args) == 0 || switchTo, "heal takes on or off, or nothing to show its state"); code != exitOK {
		return code
	}
	if switchTo {
		raw, err := s.c.SetHeal(ctx, s.args[0] == "on")
		return s.answer(raw, err, func() { fmt.Fprintf(s.stdout, "auto-heal %s\n", s.args[0]) })
	}
	st, raw, err := s.c.Heal(ctx)
	return s.answer(raw, err, func() { printHeal(s, st) })
}

func printHeal(s *session, st contract.HealState) {
	switch {
	case st.Meltdown.Active:
		fmt.Fprintf(s.stdout, "auto-heal: HELD by the meltdown guard: %s\n", st.Meltdown.Reason)
	case !st.ConfigEnabled:
		fmt.Fprintln(s.stdout, "auto-heal: off (the config's heal property)")
	case !st.Enabled:
		fmt.Fprintln(s.stdout, "auto-heal: off (switched off; `deployment-engine heal on` switches it on)")
	default:
		fmt.Fprintln(s.stdout, "auto-heal: on")
	}
	for _, in := range st.Instances {
		fmt.Fprintf(s.stdout, "  %s on %s: %s (attempts %d) %s\n", in.Component, in.IP, in.State, in.Attempts, in.Reason)
	}
}
