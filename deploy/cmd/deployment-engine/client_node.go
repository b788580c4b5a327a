package main

import (
	"context"
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["node"] = clientCommand("node", nodeCmd) }

// nodeCmd: node maintenance [IP [on --reason TEXT | off]] — the nodes in
// maintenance, one node's maintenance, or put it in or out.
func nodeCmd(ctx context.Context, s *session) int {
	a := s.args
	if len(a) == 0 || a[0] != "maintenance" {
		return s.usage("node takes maintenance: node maintenance [IP [on --reason TEXT | off]]")
	}
	a = a[1:]
	switchTo := len(a) == 2 && (a[1] == "on" || a[1] == "off")
	if code := s.begin(len(a) <= 1 || switchTo, "node maintenance takes an IP, then on or off"); code != exitOK {
		return code
	}
	if s.reason != "" && !(switchTo && a[1] == "on") {
		return s.usage("--reason goes with node maintenance IP on")
	}
	switch {
	case len(a) == 0:
		list, raw, err := s.c.Maintenance(ctx)
		return s.answer(raw, err, func() {
			if len(list) == 0 {
				fmt.Fprintln(s.stdout, "no node is in maintenance")
				return
			}
			tw := table(s.stdout, "IP\tBY\tSINCE\tREASON")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.IP, m.Actor, since(m), m.Reason)
			}
			_ = tw.Flush()
		})
	case switchTo:
		m, raw, err := s.c.SetMaintenance(ctx, a[0], a[1] == "on", s.reason)
		return s.answer(raw, err, func() { printMaintenance(s, m) })
	default:
		m, raw, err := s.c.NodeMaintenance(ctx, a[0])
		return s.answer(raw, err, func() { printMaintenance(s, m) })
	}
}

func printMaintenance(s *session, m contract.NodeMaintenance) {
	if !m.On {
		fmt.Fprintf(s.stdout, "%s: in service\n", m.IP)
	} else {
		fmt.Fprintf(s.stdout, "%s: %s\n", m.IP, m.Describe())
	}
	if m.Deployment != "" {
		what := "puts its instances back in their balancers, once healthy"
		if m.On {
			what = "takes its instances out of their balancers"
		}
		fmt.Fprintf(s.stdout, "deployment %s %s\n", m.Deployment, what)
	}
	if m.Warning != "" {
		fmt.Fprintf(s.stderr, "warning: %s\n", m.Warning)
	}
}

func since(m contract.NodeMaintenance) string {
	if m.Since == nil {
		return "-"
	}
	return m.Since.Local().Format("2006-01-02 15:04:05")
}
