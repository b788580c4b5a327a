package main

import (
	"context"
	"fmt"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["disks"] = clientCommand("disks", disksCmd) }

// disksCmd is disks (NODE SIZE DEVICE STATE ORPHANED DEPLOYMENT) or
// disks delete IP, which deletes an orphaned disk and follows its
// deployment; exit 1 when it failed.
func disksCmd(ctx context.Context, s *session) int {
	if len(s.args) > 0 {
		if code := s.begin(len(s.args) == 2 && s.args[0] == "delete", "disks [delete IP]"); code != exitOK {
			return code
		}
		started, _, err := s.c.DeleteDisk(ctx, s.args[1])
		if err != nil {
			return s.fail(err)
		}
		if !s.json {
			fmt.Fprintf(s.stderr, "deleting the orphaned disk of %s: deployment %s\n", started.IP, started.ID)
		}
		d, _, code := followFleet(ctx, s, started.ID)
		if code != exitOK {
			return code
		}
		if d.State != contract.DeploySucceeded {
			fmt.Fprintf(s.stderr, "disks delete %s: %s %s\n", started.IP, d.State, d.Error)
			return exitFailed
		}
		if !s.json {
			fmt.Fprintf(s.stdout, "deleted the persistent disk of %s\n", started.IP)
		}
		return exitOK
	}
	if code := s.begin(true, ""); code != exitOK {
		return code
	}
	l, raw, err := s.c.Disks(ctx)
	if err != nil {
		return s.fail(err)
	}
	if s.json {
		s.printJSON(raw)
		return exitOK
	}
	if len(l) == 0 {
		fmt.Fprintln(s.stderr, "no persistent disk: the config gives none, and no deployment orphaned one")
		return exitOK
	}
	tw := table(s.stdout, "NODE\tSIZE\tDEVICE\tSTATE\tORPHANED\tDEPLOYMENT")
	for _, d := range l {
		dev, when := d.Device, "-"
		if dev == "" {
			dev = "(directory)"
		}
		if d.Orphaned != nil {
			when = d.Orphaned.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%d MB\t%s\t%s\t%s\t%s\n", d.IP, d.SizeMB, dev, d.State, when, dash(d.Deployment))
	}
	_ = tw.Flush()
	return exitOK
}
