package main

import (
	"context"
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["instances"] = clientCommand("instances", instancesCmd) }

// instancesCmd is instances [--ps]: INSTANCE STATE AZ IP, as `bosh
// instances` prints them; --ps adds a row per monit process of each job
// (its name, monit's word for it). It exits 3 when an instance is failing.
func instancesCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 0, "instances takes no argument, only --ps"); code != exitOK {
		return code
	}
	list, raw, err := s.c.Instances(ctx)
	if err != nil {
		return s.fail(err)
	}
	failing := 0
	for _, in := range list {
		if in.State == contract.InstanceFailing {
			failing++
		}
	}
	if s.json {
		s.printJSON(raw)
	} else {
		printInstances(s, list)
	}
	if failing > 0 {
		return exitUnhealthy
	}
	return exitOK
}

func printInstances(s *session, list []contract.Instance) {
	if len(list) == 0 {
		fmt.Fprintln(s.stderr, "the config places no instance")
		return
	}
	header := "INSTANCE\tSTATE\tAZ\tIP"
	if s.ps {
		header = "INSTANCE\tPROCESS\tSTATE\tAZ\tIP"
	}
	tw := table(s.stdout, header)
	for _, in := range list {
		if !s.ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", in.ID, in.State, dash(in.AZ), in.IP)
			continue
		}
		fmt.Fprintf(tw, "%s\t-\t%s\t%s\t%s\n", in.ID, in.State, dash(in.AZ), in.IP)
		for _, j := range in.Jobs {
			if len(j.Processes) == 0 {
				state := j.Status
				if j.Reason != "" {
					state += ": " + j.Reason
				}
				fmt.Fprintf(tw, "~\t%s\t%s\t\t\n", j.Name, state)
			}
			for _, p := range j.Processes {
				fmt.Fprintf(tw, "~\t%s\t%s\t\t\n", p.Name, p.State)
			}
		}
	}
	_ = tw.Flush()
}
