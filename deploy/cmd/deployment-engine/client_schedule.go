package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/deployment-engine/engine/deploy/client"
)

func init() { commands["schedule"] = clientCommand("schedule", scheduleCmd) }

// scheduleFlags are schedule add's own flags.
type scheduleFlags struct {
	cron, tz, action, args, missed string
	allowOverlap                   bool
}

// scheduleCmd: schedule add NAME --cron EXPR [--tz ZONE] --action ACTION
// [--args JSON] [--allow-overlap] [--missed skip|run_once] | schedule list
// | schedule delete NAME.
func scheduleCmd(ctx context.Context, s *session) int {
	const use = "schedule add NAME --cron EXPR --action deploy|restart|rollback|exec|backup [--tz ZONE] [--args JSON] [--allow-overlap] [--missed run_once] | schedule list | schedule delete NAME"
	a := s.args
	sub := ""
	if len(a) > 0 {
		sub = a[0]
	}
	adding := sub == "add"
	f := s.schedule
	if !adding && (f.cron != "" || f.tz != "" || f.action != "" || f.args != "" || f.missed != "" || f.allowOverlap) {
		return s.usage("--cron, --tz, --action, --args, --allow-overlap and --missed go with schedule add")
	}
	switch {
	case adding && len(a) == 2 && f.cron != "" && f.action != "":
	case sub == "list" && len(a) == 1, sub == "delete" && len(a) == 2:
	default:
		return s.usage("%s", use)
	}
	var args json.RawMessage
	if f.args != "" {
		if !json.Valid([]byte(f.args)) {
			return s.usage("--args must be JSON, the action's body: '{\"name\": \"web\", \"ip\": \"0.0.0.0\", \"max_in_flight\": 1}'")
		}
		args = json.RawMessage(f.args)
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	switch sub {
	case "add":
		sc, raw, err := s.c.AddSchedule(ctx, client.ScheduleSpec{Name: a[1], Cron: f.cron, TimeZone: f.tz, Action: f.action,
			Args: args, ProhibitOverlap: !f.allowOverlap, Missed: f.missed})
		return s.answer(raw, err, func() {
			fmt.Fprintf(s.stdout, "schedule %s added: %s at %q (%s), next run %s\n", sc.Name, sc.Action, sc.Cron, sc.TimeZone, when(sc.NextRun))
		})
	case "delete":
		sc, raw, err := s.c.DeleteSchedule(ctx, a[1])
		return s.answer(raw, err, func() { fmt.Fprintf(s.stdout, "schedule %s deleted\n", sc.Name) })
	}
	list, raw, err := s.c.Schedules(ctx)
	return s.answer(raw, err, func() {
		if len(list) == 0 {
			fmt.Fprintln(s.stdout, "no schedule")
			return
		}
		tw := table(s.stdout, "NAME\tCRON\tZONE\tACTION\tNEXT RUN\tLAST RUN\tRESULT\tDEPLOYMENT")
		for _, sc := range list {
			last, result, dep := "-", "-", "-"
			if l := sc.LastRun; l != nil {
				last, result = when(&l.Due), l.Result
				if l.Deployment != "" {
					dep = l.Deployment
					if l.DeploymentState != "" {
						dep += " (" + l.DeploymentState + ")"
					}
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sc.Name, printable(sc.Cron), sc.TimeZone, sc.Action, when(sc.NextRun), last, result, dep)
		}
		_ = tw.Flush()
	})
}

// when is t in the local time, "-" for none.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}
