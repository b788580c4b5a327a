package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

// configCmd: config get | config set FILE [--check=false] | config edit | config schema.
func configCmd(ctx context.Context, s *session) int {
	if len(s.args) == 0 {
		return s.usage("say get, set FILE, edit or schema")
	}
	switch sub := s.args[0]; sub {
	case "get":
		if code := s.begin(len(s.args) == 1, "config get takes no argument"); code != exitOK {
			return code
		}
		_, raw, err := s.c.Config(ctx)
		if err != nil {
			if client.StatusOf(err) == 404 {
				fmt.Fprintf(s.stderr, "config: no config submitted yet; submit one with: deployment-engine config set FILE\n")
				return exitFailed
			}
			return s.fail(err)
		}
		s.printJSON(raw)
		return exitOK
	case "set":
		if len(s.args) != 2 {
			return s.usage("config set needs one FILE (- for stdin)")
		}
		body, err := readArg(s.args[1])
		if err != nil {
			fmt.Fprintf(s.stderr, "config set: %v\n", err)
			return exitUsage
		}
		if code := s.connect(); code != exitOK {
			return code
		}
		rep, raw, err := s.c.SetConfig(ctx, body, s.check)
		if err != nil {
			return s.fail(err)
		}
		s.stored(rep, raw)
		return exitOK
	case "edit":
		if len(s.args) != 1 {
			return s.usage("config edit takes no argument")
		}
		return configEdit(ctx, s)
	case "schema":
		if code := s.begin(len(s.args) == 1, "config schema takes no argument"); code != exitOK {
			return code
		}
		raw, err := s.c.ConfigSchema(ctx)
		if err != nil {
			return s.fail(err)
		}
		s.printJSON(raw)
		return exitOK
	default:
		return s.usage("unknown config command %q: say get, set FILE, edit or schema", sub)
	}
}

// deployCmd: deploy [--follow].
func deployCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 0, "deploy takes no argument"); code != exitOK {
		return code
	}
	id, raw, err := s.c.Deploy(ctx)
	if s.plan != "" {
		id, raw, err = s.c.DeployPlan(ctx, s.plan)
	}
	if err != nil {
		return s.fail(err)
	}
	return s.started(ctx, id, raw)
}

// cancelCmd: cancel ID. Exit 1 when there is no such running deployment.
func cancelCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 1, "cancel needs the deployment's ID"); code != exitOK {
		return code
	}
	d, raw, err := s.c.Cancel(ctx, s.args[0])
	return s.answer(raw, err, func() {
		fmt.Fprintf(s.stdout, "deployment %s %s: %s\n", d.ID, d.State, d.Error)
	})
}

// takeoverCmd: takeover ENGINE-ID [IP...] clears the claim of an engine
// that no longer runs. Exit 1 when a node could not be reached.
func takeoverCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) >= 1, "takeover needs the id of the engine whose claim to clear (a deploy's 409 names it), then optionally the nodes"); code != exitOK {
		return code
	}
	r, raw, err := s.c.Takeover(ctx, s.args[0], s.args[1:]...)
	code := s.answer(raw, err, func() {
		for _, n := range r.Nodes {
			switch {
			case n.Cleared:
				fmt.Fprintf(s.stdout, "%s\tcleared (was %s's)\n", n.IP, n.Owner)
			case n.Error != "":
				fmt.Fprintf(s.stdout, "%s\tnot changed: %s\n", n.IP, n.Error)
			case n.Owner != "":
				fmt.Fprintf(s.stdout, "%s\tnot changed: owned by %s\n", n.IP, n.Owner)
			default:
				fmt.Fprintf(s.stdout, "%s\tnot changed: no engine's\n", n.IP)
			}
		}
	})
	for _, n := range r.Nodes {
		if code == exitOK && n.Error != "" {
			code = exitFailed
		}
	}
	return code
}

// scaleCmd: scale COMP IP [--follow].
func scaleCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 2, "scale needs COMP IP"); code != exitOK {
		return code
	}
	id, raw, err := s.c.Scale(ctx, contract.ScaleItem{Comp: s.args[0], Ip: s.args[1]})
	if err != nil {
		return s.fail(err)
	}
	return s.started(ctx, id, raw)
}

// started reports a deployment that was accepted, and follows it when
// asked.
func (s *session) started(ctx context.Context, id string, raw []byte) int {
	if !s.follow {
		if s.json {
			s.printJSON(raw)
		} else {
			fmt.Fprintf(s.stdout, "deployment %s started; follow it with --follow or in the console\n", id)
		}
		return exitOK
	}
	return s.followDeployment(ctx, id)
}

// statusCmd: status. Exit 3 when an instance is not RUNNING (or CONFIGURED:
// a BOSH job with no process), unless its node is in maintenance: held out
// on purpose, it is counted apart.
func statusCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 0, "status takes no argument"); code != exitOK {
		return code
	}
	insts, raw, err := s.c.Status(ctx)
	if err != nil {
		if client.StatusOf(err) == 403 {
			fmt.Fprintf(s.stderr, "status: no config submitted yet (%v)\n", err)
			return exitFailed
		}
		return s.fail(err)
	}
	down, held := 0, 0
	for _, in := range insts {
		switch in.Status {
		case contract.StatusRunning, contract.StatusConfigured:
		case contract.StatusMaintenance:
			held++
		default:
			down++
		}
	}
	if s.json {
		s.printJSON(raw)
	} else {
		tw := table(s.stdout, "COMPONENT\tIP\tSTATUS\tCPU\tMEM\tDISK\tREASON")
		for _, in := range insts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Comp, in.Ip, in.Status, percent(in.Cpu), percent(in.Mem), percent(in.Disk), in.Reason)
		}
		_ = tw.Flush()
		fmt.Fprintf(s.stdout, "\n%d running, %d down", len(insts)-down-held, down)
		if held > 0 {
			fmt.Fprintf(s.stdout, ", %d in maintenance", held)
		}
		fmt.Fprintln(s.stdout)
		// Say so when auto-heal does not act (an engine without it answers
		// an error: nothing to add then).
		if st, _, err := s.c.Heal(ctx); err == nil && (st.Meltdown.Active || !st.Enabled || !st.ConfigEnabled || len(st.Instances) > 0) {
			printHeal(s, st)
		}
	}
	if down > 0 {
		return exitUnhealthy
	}
	return exitOK
}

// hardwareCmd: hardware [COMP IP].
func hardwareCmd(ctx context.Context, s *session) int {
	var comp, ip string
	switch len(s.args) {
	case 0:
	case 2:
		comp, ip = s.args[0], s.args[1]
	default:
		return s.usage("hardware takes no argument (every node) or COMP IP")
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	hw, raw, err := s.c.Hardware(ctx, comp, ip)
	return s.answer(raw, err, func() {
		tw := table(s.stdout, "IP\tCOMPONENT\tCPU\tRAM\tDISK\tERROR")
		for _, h := range hw {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", h.IP, dash(h.Comp), h.CPU, kib(h.RAM), mb(h.DISK), h.Error)
		}
		_ = tw.Flush()
	})
}

// monitCmd: restart COMP IP | stop COMP IP.
func monitCmd(verb string) clientHandler {
	return func(ctx context.Context, s *session) int {
		if code := s.begin(len(s.args) == 2, "%s needs COMP IP (all 0.0.0.0 for the whole cluster)", verb); code != exitOK {
			return code
		}
		comp, ip := s.args[0], s.args[1]
		if verb == "restart" && s.maxInFlight != "" {
			id, raw, err := s.c.RollingRestart(ctx, comp, ip, s.maxInFlight)
			if err != nil {
				return s.fail(err)
			}
			return s.started(ctx, id, raw)
		}
		var raw []byte
		var err error
		if verb == "restart" {
			raw, err = s.c.Restart(ctx, comp, ip)
		} else {
			raw, err = s.c.Stop(ctx, comp, ip)
		}
		if err != nil {
			return s.fail(err)
		}
		if s.json {
			if len(strings.TrimSpace(string(raw))) == 0 {
				raw = []byte(`{}`)
			}
			s.printJSON(raw)
			return exitOK
		}
		past := map[string]string{"restart": "restarted", "stop": "stopped"}[verb]
		fmt.Fprintf(s.stdout, "%s %s on %s\n", past, comp, ip)
		return exitOK
	}
}

// logsCmd: logs [NAME], or logs --follow COMP [IP].
func logsCmd(ctx context.Context, s *session) int {
	if s.follow {
		return s.followLogs(ctx)
	}
	if code := s.begin(len(s.args) <= 1, "logs takes at most one NAME"); code != exitOK {
		return code
	}
	switch len(s.args) {
	case 0:
		names, raw, err := s.c.Logs(ctx)
		return s.answer(raw, err, func() {
			for _, n := range names {
				fmt.Fprintln(s.stdout, n)
			}
		})
	case 1:
		text, err := s.c.Log(ctx, s.args[0])
		if err != nil {
			return s.fail(err)
		}
		if s.json {
			s.printJSON(logJSON(s.args[0], text))
			return exitOK
		}
		_, _ = s.stdout.Write(text)
		return exitOK
	default:
		return s.usage("logs takes at most one NAME")
	}
}

// logJSON wraps a log's text as {"name": ..., "text": ...}.
func logJSON(name string, text []byte) []byte {
	b, err := json.Marshal(struct {
		Name string `json:"name"`
		Text string `json:"text"`
	}{name, string(text)})
	if err != nil {
		return nil
	}
	return b
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// percent rounds one of the status's percentages to a tenth for the
// table ("12.3457%" → "12.3%"); the API keeps the manual's strings, and
// what is not a percentage ("N/A") is shown as it came.
func percent(s string) string {
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return dash(s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return s
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "%"
}

// kib formats a size in KiB (the manual's RAM unit).
func kib(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<20:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<10))
	}
}

// mb formats a size in MB (the manual's DISK unit).
func mb(n float64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1000:
		return fmt.Sprintf("%.1f GB", n/1000)
	default:
		return fmt.Sprintf("%.0f MB", n)
	}
}
