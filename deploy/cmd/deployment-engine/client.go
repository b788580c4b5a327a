package main

// The command-line client: every scenario of the API from a shell. Exit
// codes (also in clientUsage):
//
//	0 ok
//	1 the operation failed (the engine said no, or a deployment failed)
//	2 usage error
//	3 the cluster is not healthy (status: an instance is not RUNNING)
//	4 cannot reach the engine, or it refused the API token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

// Exit codes of the client commands.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnhealthy   = 3
	exitUnreachable = 4
)

const clientUsage = `Client commands talk to the engine at DE_SERVER (default http://127.0.0.1:50000)
with the token of DE_API_TOKEN, or else <data>/api-token (--data DIR, default ./data).

  config get                       print the stored config (secrets come back "<redacted>")
  config set FILE [--check=false]  submit a config (FILE or - for stdin); --check=false stores it
                                   without contacting the nodes; warnings (DNS, OS) go to stderr
  config edit [--check=false]      edit the stored config in $VISUAL or $EDITOR and submit it when
                                   changed; a refused config opens again with its problems on top
  config schema                    the config's JSON Schema
  precheck                         every pre-check again on the stored config: problems, warnings;
                                   exit 1 when a problem would refuse it
  plan [FILE]                      what a deployment of FILE (none: the stored config) would do,
                                   per node, as diffs, and the drift found; exit 10 when changes
                                   are pending, 0 when nothing would change
  deploy [--follow] [--plan ID]    start a deployment; --follow shows a progress bar on stderr and
                                   the live log on stdout until it ends; --plan refuses (exit 1)
                                   when the cluster no longer matches that plan
  deployments [ID] [--steps S,...] the deployments, newest first; with ID, its summary: steps per
                                   state and per component, the failed ones (exit 1 when it
                                   failed); --steps failed,running (or all) lists those steps,
                                   read a page at a time
  cancel ID                        end a running deployment: queued steps leave the queue,
                                   running ones are killed on their nodes
  status                           every component instance: state, CPU, memory, disk
  instances [--ps]                 every instance as BOSH shows them: group/index (a manifest's
                                   instance group, else the component), state, zone, IP; --ps: each
                                   job's monit processes too; exit 3 when one is failing
  hardware [COMP IP]               a node's hardware, or every node's
  restart COMP IP | stop COMP IP   monit restart|stop on that node ("all 0.0.0.0": the cluster;
                                   "COMP 0.0.0.0": every instance of COMP)
  restart COMP IP --max-in-flight N [--follow]
                                   a rolling restart: N (or N%) instances at a time, each out of its
                                   balancer, restarted, watched healthy and put back
  exec COMP|IP[,IP...] [--max-in-flight N|N%] [--timeout S] [--halt-on-failure] -- COMMAND...
                                   run COMMAND (as root, by bash) on every node of COMP, or on the
                                   nodes named, N at a time (default 1), each within S seconds
                                   (default 60); a table: NODE EXIT DURATION OUTPUT-TAIL (the
                                   config's secrets redacted); exit 1 when any node failed; --json:
                                   the steps as the engine has them
  patch [IP[,IP...]] [--max-in-flight N|N%] [--reboot if-required|always|never]
                                   upgrade every node's packages (or the nodes named) from the
                                   engine's mirror (mirror sync first), N nodes at a time (default
                                   1): each node's balanced instances drained, its packages
                                   upgraded, the node rebooted when it asks for it (or its
                                   processes restarted), waited for, its instances watched healthy
                                   and put back; a failed batch halts the rest; a table: NODE
                                   UPGRADE REBOOT BACK SAID; exit 1 when it failed
  errands                          the config's errands (its release's jobs with bin/run): NAME
                                   COMPONENT RELEASE NODES
  errand run NAME [--when-changed] [--timeout S]
                                   run errand NAME on every instance of it, all at once (a
                                   deployment of kind errand); prints each instance's exit code,
                                   stdout and stderr (each up to 64 KiB, the config's secrets
                                   redacted); exit 1 when any failed; --when-changed skips an
                                   instance whose rendered templates and packages are those of its
                                   last successful run; --json: the run steps
  disks                            the persistent disks: those the stored config gives its nodes
                                   (attached) and those deployments took from their nodes
                                   (orphaned: their data stays on the machine): NODE SIZE DEVICE
                                   STATE ORPHANED DEPLOYMENT
  disks delete IP                  delete the orphaned disk of node IP for good (a deployment of
                                   kind disk: the store unmounted and out of /etc/fstab, the
                                   device's filesystem erased, the store emptied); exit 1 when it
                                   failed
  copy COMP|IP[,IP...] --to PATH FILE [--mode 0640] [--max-in-flight N|N%]
  copy COMP|IP[,IP...] --from PATH DIR [--max-in-flight N|N%]
                                   put FILE (at most 4 MiB) at PATH on every node of COMP, or on the
                                   nodes named, N at a time (default 1), its size and SHA-256 checked
                                   on each node; a table: NODE SHA256 SIZE RESULT; exit 1 when any
                                   node failed or holds another checksum; --json: the steps;
                                   --from: read PATH back from each node into DIR/<ip>/<name>,
                                   checked against the node's SHA-256, in the same table
  rollback [--follow]              deploy the last config whose deployment succeeded again
  scale COMP IP [--follow]         add an instance on a new IP and deploy it
  logs [NAME]                      list the logs, or print one
  logs --follow COMP [IP] [--tail N]
                                   COMP's log lines (on IP alone) live from its nodes' agents, as
                                   NODE COMPONENT LINE, until Ctrl-C; --tail: each instance's last N
                                   lines first (at most 1000); --json: one JSON object a line
  audit [since=90m] [actor=NAME] [action=ACTION]
                                   the audit trail: who changed what, and auto-heal's actions
  heal [on|off]                    auto-heal's state (meltdown guard, failing instances), or switch it
  node maintenance [IP [on --reason TEXT | off]]
                                   the nodes in maintenance, or hold one out: auto-heal leaves it
                                   alone, deployments hold its steps, status says MAINTENANCE
  schedule add NAME --cron EXPR --action deploy|restart|rollback|exec|backup [--tz ZONE] [--args JSON]
           [--allow-overlap] [--missed run_once]
                                   run an action on a cron schedule, in a time zone (default UTC);
                                   --args is its route's body ('{"name": "web", "ip": "0.0.0.0",
                                   "max_in_flight": 1}' for restart); a run is skipped while the
                                   previous run's deployment runs, unless --allow-overlap
  schedule list | delete NAME      the schedules with their next and last run, or delete one
  certificates                     every certificate the engine made or serves (the agents' CA and
                                   listener, the API's): subject, expiry, days left ("!" under 30)
  certificates rotate NAME         issue api (--tls auto) or agents-listener again from the same CA,
                                   served from the next connection without a restart; agents-ca: a
                                   new CA the agents move to without a disconnection (admin)
  problems [--auto]                what is wrong (nodes unreachable, processes down, monit checks
                                   missing or unmonitored, agents silent or at another version, drift,
                                   disks over 90 %, orphans, certificates expiring, host keys changed),
                                   with the fixes that apply ("*": recommended); exit 3 when any;
                                   --auto: apply each recommended fix as a deployment, one at a time,
                                   followed to its end, never a changed host key's (exit 1 when a fix
                                   failed, 3 when problems are left to a person)
  problems resolve ID FIX [--follow]
                                   apply one fix of a problem (forget-host-key only this way)
  report ID                        a deployment's timings: per node, component and action, the
                                   critical path and the 20 slowest steps
  release upload FILE | list       upload a BOSH release tarball (progress on stderr), or list them
  version                          this binary's version, and the engine's when it answers

  clusters [create NAME | show NAME | delete NAME [--follow]]
                                   the engine's clusters (catalog, nodes), or make one (admin), or
                                   delete one (admin): its instances and the engine's agent and state
                                   go from its nodes, then the cluster; --follow waits for it; every
                                   other command acts on the cluster --cluster NAME (or DE_CLUSTER)
                                   names, the default cluster without one

Flags for every client command: --json (raw JSON output), --data DIR, --server URL, --cluster NAME.

Exit codes: 0 ok; 1 the operation failed (or the deployment failed); 2 usage error;
3 the cluster is not healthy (status found an instance that is not RUNNING);
4 cannot reach the engine, or it refused the token; 10 plan: changes are pending.
`

func init() {
	for name, h := range map[string]clientHandler{
		"config":   configCmd,
		"deploy":   deployCmd,
		"cancel":   cancelCmd,
		"takeover": takeoverCmd,
		"status":   statusCmd,
		"hardware": hardwareCmd,
		"restart":  monitCmd("restart"),
		"stop":     monitCmd("stop"),
		"scale":    scaleCmd,
		"logs":     logsCmd,
		"version":  versionCmd,
		"precheck": precheckCmd,
	} {
		commands[name] = clientCommand(name, h)
	}
}

// session is what a client command runs with.
type session struct {
	name           string
	c              *client.Client
	json           bool
	follow         bool
	check          bool
	plan           string
	maxInFlight    string
	reason         string
	reboot         string
	schedule       scheduleFlags
	timeout        int
	tail           int
	halt           bool
	whenChanged    bool
	steps          string
	auto           bool
	ps             bool
	to, from, mode string
	args           []string
	data, server   string
	cluster        string
	stdout, stderr io.Writer
}

type clientHandler func(ctx context.Context, s *session) int

// clientCommand parses the common flags (anywhere on the line), finds the
// server and the token, and runs h.
func clientCommand(name string, h clientHandler) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		s := &session{name: name, stdout: stdout, stderr: stderr}
		fs, data, server, help := clientFlags(s)
		pos, err := parseInterleaved(fs, args)
		if *help {
			fmt.Fprint(stdout, clientUsage)
			return exitOK
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n\n%s", name, err, clientUsage)
			return exitUsage
		}
		s.args, s.data, s.server = pos, *data, *server
		return h(ctx, s)
	}
}

// clientFlags are the flags of every client command (completion offers
// each where it means something).
func clientFlags(s *session) (fs *flag.FlagSet, data, server *string, help *bool) {
	fs = flag.NewFlagSet(s.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&s.json, "json", false, "print the engine's raw JSON")
	data = fs.String("data", "./data", "the engine's data directory (for its api-token)")
	fs.StringVar(&s.cluster, "cluster", "", "the cluster to act on (default DE_CLUSTER, else the default cluster)")
	server = fs.String("server", "", "the engine's URL (default DE_SERVER, else "+client.DefaultServer+")")
	fs.BoolVar(&s.follow, "follow", false, "follow the deployment until it ends; logs: follow a component's log lines")
	fs.BoolVar(&s.check, "check", true, "config set and edit: contact the nodes to check them")
	fs.StringVar(&s.plan, "plan", "", "deploy: only while the cluster still matches this plan's id")
	fs.StringVar(&s.maxInFlight, "max-in-flight", "", "restart: a rolling restart, this many (or this percentage) at a time; exec, copy, patch: nodes at a time")
	fs.IntVar(&s.timeout, "timeout", 0, "exec: seconds the command may run on each node (default 60, at most 3600); errand run: on each instance (default 600)")
	fs.BoolVar(&s.whenChanged, "when-changed", false, "errand run: skip the instances whose errand did not change since its last successful run")
	fs.IntVar(&s.tail, "tail", 0, "logs --follow: each instance's last N lines first")
	fs.BoolVar(&s.halt, "halt-on-failure", false, "exec: run no further batch once a node failed")
	fs.StringVar(&s.steps, "steps", "", "deployments ID: list its steps in these states, comma-separated (failed,running), or all")
	fs.BoolVar(&s.ps, "ps", false, "instances: each job's processes too")
	fs.BoolVar(&s.auto, "auto", false, "problems: apply each recommended fix, one deployment at a time (never a host key's)")
	fs.StringVar(&s.to, "to", "", "copy: the file's absolute path on the nodes")
	fs.StringVar(&s.from, "from", "", "copy: the absolute path of the file to read back from the nodes")
	fs.StringVar(&s.mode, "mode", "", "copy: the file's mode on the nodes, octal (default 0644)")
	fs.StringVar(&s.reboot, "reboot", "", "patch: if-required (default: a node with /var/run/reboot-required), always or never")
	fs.StringVar(&s.reason, "reason", "", "node maintenance IP on: why the node is held out")
	fs.StringVar(&s.schedule.cron, "cron", "", "schedule add: when, 5 cron fields or a descriptor (@daily, @every 1h)")
	fs.StringVar(&s.schedule.tz, "tz", "", "schedule add: the cron's IANA time zone (default UTC)")
	fs.StringVar(&s.schedule.action, "action", "", "schedule add: deploy, restart, rollback, exec or backup")
	fs.StringVar(&s.schedule.args, "args", "", "schedule add: the action's body, as JSON")
	fs.BoolVar(&s.schedule.allowOverlap, "allow-overlap", false, "schedule add: run even while the previous run's deployment runs")
	fs.StringVar(&s.schedule.missed, "missed", "", "schedule add: runs missed while no planner ran: skip (default) or run_once")
	help = fs.Bool("help", false, "show help")
	fs.BoolVar(help, "h", false, "show help")
	return fs, data, server, help
}

// connect finds the server and the token; a code other than exitOK ends
// the command (the reason is printed).
func (s *session) connect() int {
	tok, err := client.Token(s.data)
	if err != nil {
		fmt.Fprintf(s.stderr, "%s: %v\n", s.name, err)
		return exitUnreachable
	}
	srv := s.server
	if srv == "" {
		srv = os.Getenv("DE_SERVER")
	}
	s.c = client.New(srv, tok)
	s.c.Cluster = s.cluster
	if s.c.Cluster == "" {
		s.c.Cluster = os.Getenv("DE_CLUSTER")
	}
	if s.c.Cluster != "" {
		if err := contract.CheckClusterName(s.c.Cluster); err != nil {
			fmt.Fprintf(s.stderr, "%s: --cluster (or DE_CLUSTER): %v\n", s.name, err)
			return exitUsage
		}
	}
	return exitOK
}

// begin starts a command that talks to the engine: arguments it cannot
// take (argsOK false) end it with its usage, else it connects. A code
// other than exitOK ends the command.
func (s *session) begin(argsOK bool, format string, a ...any) int {
	if !argsOK {
		return s.usage(format, a...)
	}
	return s.connect()
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// usage reports a usage error for the command.
func (s *session) usage(format string, a ...any) int {
	fmt.Fprintf(s.stderr, "%s: %s\n\n%s", s.name, fmt.Sprintf(format, a...), clientUsage)
	return exitUsage
}

// fail prints err the human way and returns its exit code: the server's
// message and every problem on its own line.
func (s *session) fail(err error) int {
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Unauthorized():
		fmt.Fprintf(s.stderr, "%s: the engine refused the API token: %s\n", s.name, ae.Message)
		return exitUnreachable
	case errors.As(err, &ae):
		fmt.Fprintf(s.stderr, "%s: %s (HTTP %d)\n", s.name, ae.Message, ae.Status)
		for _, p := range ae.Problems {
			fmt.Fprintf(s.stderr, "  %s\n", formatProblem(p))
		}
		return exitFailed
	case client.IsUnreachable(err):
		fmt.Fprintf(s.stderr, "%s: %v\n", s.name, err)
		return exitUnreachable
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(s.stderr, "%s: interrupted\n", s.name)
		return exitFailed
	default:
		fmt.Fprintf(s.stderr, "%s: %v\n", s.name, err)
		return exitFailed
	}
}

func formatProblem(p contract.Problem) string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	var who []string
	if p.Component != "" {
		who = append(who, p.Component)
	}
	if p.IP != "" {
		who = append(who, p.IP)
	}
	if len(who) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(who, " on "))
	}
	return b.String()
}

// printJSON writes raw JSON indented (keys in the engine's order), or as it
// came if it is not JSON.
// answer ends a command with what the engine answered: an error the human
// way, the raw JSON with --json, else text's rendering.
func (s *session) answer(raw []byte, err error, text func()) int {
	if err != nil {
		return s.fail(err)
	}
	if s.json {
		s.printJSON(raw)
	} else {
		text()
	}
	return exitOK
}

// table starts an aligned table on w under its tab-separated header.
func table(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// readArg reads the file a command was given: stdin for "-".
func readArg(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

func (s *session) printJSON(raw []byte) {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(raw), "", "  "); err != nil || b.Len() == 0 {
		_, _ = s.stdout.Write(raw)
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			fmt.Fprintln(s.stdout)
		}
		return
	}
	out := unescapeHTML(b.Bytes())
	out = append(out, '\n')
	_, _ = s.stdout.Write(out)
}

// unescapeHTML turns the \u003c, \u003e and \u0026 escapes Go's encoder
// puts in JSON strings back into <, > and &: the same JSON, readable.
func unescapeHTML(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "003c":
				out = append(out, '<')
				i += 5
				continue
			case "003e":
				out = append(out, '>')
				i += 5
				continue
			case "0026":
				out = append(out, '&')
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}
