// Package agent is the node agent: the engine's one process on every node
// a deployment installed, which monit supervises.
//
// It reports the node's hardware, usage and components over NATS and
// serves them to Prometheus (metrics.go, sample.go), follows the
// components' log files (logs.go), runs monit restart and stop when the
// engine asks, and serves the installer's commands (deployment steps) sent
// on the node's own subjects, sealed by the engine (package execd).
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deployment-engine/engine/monitor/monit"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodeexec/execd"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

// Defaults of an agent config.
const (
	DefaultListen   = ":9280"
	DefaultInterval = 5 * time.Second
	defaultMonitURL = "http://127.0.0.1:2812/_status?format=xml&level=full"
)

// Options are what a test changes; the zero value is the node's own setup.
type Options struct {
	Logger *slog.Logger
	// MonitURL is monit's XML status; MonitCmd its command line tool
	// and the arguments that come before the action.
	MonitURL string
	MonitCmd []string
	// MonitVerbose is where the engine's steps keep monit -v -t's output
	// (nodefs.MonitVerbose where MonitCmd is the node's own monit; none
	// where it is another).
	MonitVerbose string
	// StateFile keeps the log followers' offsets across restarts.
	StateFile string
	// Ready, when set, receives the metrics address once it serves.
	Ready func(addr string)
	// ConfigFile and Binary, when set, are watched: when a deployment
	// changes either, Run returns ErrRestart so that the agent starts
	// again as the new binary with the new config.
	ConfigFile string
	Binary     string
	// MarkDir is where failed stops are noted (default monit.MarkDir).
	MarkDir string
	// Version is the agent binary's build version, sent in every
	// heartbeat and in its hello: the engine tells by it an agent that
	// runs its own build, and the installer sends its commands only to
	// such an agent.
	Version string
	// ExecShell, when set, runs the installer's commands ("-c CMD" is
	// appended) instead of the login shell; MaxExecs bounds how many run
	// at once (default execd.DefaultMaxExecs).
	ExecShell []string
	MaxExecs  int
}

// restartWait is how long a restart waits for the installer's commands
// in flight to end: past it, the agent restarts under them, which the
// installer sees as a dropped session.
const restartWait = 10 * time.Minute

// ErrRestart says the agent's config or binary changed on disk.
var ErrRestart = errors.New("agent: config or binary changed")

// fingerprint identifies the files a deployment may change under the agent.
func fingerprint(o Options) string {
	var b strings.Builder
	if o.ConfigFile != "" {
		c, _ := os.ReadFile(o.ConfigFile)
		b.Write(c)
	}
	if o.Binary != "" {
		if st, err := os.Stat(o.Binary); err == nil {
			fmt.Fprintf(&b, "|%d|%d", st.Size(), st.ModTime().UnixNano())
		}
	}
	return b.String()
}

// LoadConfig reads and checks an agent config file.
func LoadConfig(path string) (contract.AgentConfig, error) {
	var c contract.AgentConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("agent config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("agent config %s: %w", path, err)
	}
	if _, err := subject.IPToken(c.IP); err != nil {
		return c, fmt.Errorf("agent config %s: ip: %w", path, err)
	}
	if c.NATS == "" || c.User == "" {
		return c, fmt.Errorf("agent config %s: nats and user are required", path)
	}
	for _, comp := range c.Components {
		// A process-less component (a BOSH job with an empty monit file)
		// has Process "": it is configured, with nothing to supervise.
		if !subject.ValidToken(comp.Name) {
			return c, fmt.Errorf("agent config %s: bad component %q", path, comp.Name)
		}
		for _, p := range append([]string{comp.Process}, comp.Processes...) {
			if strings.ContainsAny(p, " \t\n'\"") {
				return c, fmt.Errorf("agent config %s: bad component %q (process %q)", path, comp.Name, p)
			}
		}
	}
	return c, nil
}

// Agent is a running node agent.
type Agent struct {
	cfg     contract.AgentConfig
	o       Options
	log     *slog.Logger
	nc      *nats.Conn
	sampler *sampler
	metrics *metrics
	exec    *execd.Executor
	// trust is what the agent verifies the engine's NATS with (nil over
	// plain NATS); trustKey opens the engine's trust commands, guard
	// refuses their replays.
	trust    *trustedCAs
	trustKey []byte
	guard    nodeexec.Guard

	mu   sync.Mutex
	last contract.Heartbeat
	beat chan struct{}

	// pfMu guards pf, monit's pidfiles as read with monit's config
	// whose files pfKey describes.
	pfMu  sync.Mutex
	pf    []monit.PidFile
	pfKey string

	// fpMu guards fp, the fingerprint of the config and binary the agent
	// runs with: a deployment that changes them restarts the agent, the
	// agent's own write of its config (a trust command) does not.
	fpMu sync.Mutex
	fp   string
}

// Run runs the agent until ctx ends.
func Run(ctx context.Context, cfg contract.AgentConfig, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MonitURL == "" {
		o.MonitURL = defaultMonitURL
	}
	if len(o.MonitCmd) == 0 {
		o.MonitCmd = []string{"monit"}
		if o.MonitVerbose == "" {
			o.MonitVerbose = nodefs.MonitVerbose
		}
	}
	if o.MarkDir == "" {
		o.MarkDir = monit.MarkDir
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.IntervalS <= 0 {
		cfg.IntervalS = int(DefaultInterval / time.Second)
	}
	a := &Agent{cfg: cfg, o: o, log: o.Logger.With("service", "agent", "node", cfg.IP), sampler: newSampler(), beat: make(chan struct{}, 1)}

	pass, err := os.ReadFile(cfg.PasswordFile)
	if err != nil {
		return fmt.Errorf("agent: read the NATS password: %w", err)
	}
	tlsOpt, trust, err := pinnedTLS(cfg.CA)
	if err != nil {
		return err
	}
	a.trust, a.trustKey = trust, nodeexec.TrustKey(strings.TrimSpace(string(pass)), cfg.IP)
	a.fp = fingerprint(o) // before the trust command may write the config
	// The engine may be down when the node boots: keep trying, forever.
	a.nc, err = nats.Connect(cfg.NATS, tlsOpt, nats.Name("agent "+cfg.IP), nats.UserInfo(cfg.User, strings.TrimSpace(string(pass))),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { a.log.Warn("lost the engine", "err", err) }),
		nats.ReconnectHandler(func(*nats.Conn) { a.log.Info("reached the engine again") }))
	if err != nil {
		return fmt.Errorf("agent: connect to %s: %w", cfg.NATS, err)
	}
	defer a.nc.Close()
	sub, err := a.nc.Subscribe(subject.Node(cfg.IP, subject.VerbControl), a.control)
	if err != nil {
		return fmt.Errorf("agent: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	tsub, err := a.nc.Subscribe(subject.Node(cfg.IP, subject.VerbTrust), a.trustCmd)
	if err != nil {
		return fmt.Errorf("agent: subscribe: %w", err)
	}
	defer func() { _ = tsub.Unsubscribe() }()
	a.exec, err = execd.Serve(a.nc, cfg.IP, nodeexec.Key(strings.TrimSpace(string(pass)), cfg.IP),
		execd.Options{Logger: a.log, Version: o.Version, Shell: o.ExecShell, MaxExecs: o.MaxExecs})
	if err != nil {
		return err
	}
	defer a.exec.Stop()

	reg := prometheus.NewRegistry()
	a.metrics = newMetrics(a)
	reg.MustRegister(a.metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, addr, err := serveMetrics(cfg.Listen, reg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if o.Ready != nil {
		o.Ready(addr)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the wait: the log follower ends with ctx
	wg.Add(1)
	go func() { defer wg.Done(); a.followLogs(ctx) }()

	tick := time.NewTicker(time.Duration(cfg.IntervalS) * time.Second)
	defer tick.Stop()
	var changed time.Time
	a.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if a.changedOnDisk() {
				if changed.IsZero() {
					changed = time.Now()
				}
				// The deployment that changed them may still run its
				// steps through this agent: restart between them.
				if n := a.exec.InFlight(); n > 0 && time.Since(changed) < restartWait {
					a.log.Info("config or binary changed: restarting once the installer's commands end", "running", n)
					break
				}
				a.log.Info("config or binary changed: restarting")
				return ErrRestart
			}
		case <-a.beat:
		}
		a.heartbeat(ctx)
	}
}

// changedOnDisk says a deployment changed the agent's config or binary
// since it started.
func (a *Agent) changedOnDisk() bool {
	a.fpMu.Lock()
	defer a.fpMu.Unlock()
	return fingerprint(a.o) != a.fp
}

// heartbeat reads the node and monit and publishes what it saw.
func (a *Agent) heartbeat(ctx context.Context) {
	hb := a.sampler.sample(ctx, a.cfg.IP)
	hb.IntervalS, hb.Version = a.cfg.IntervalS, a.o.Version
	svcs, merr := a.readMonit(ctx)
	if merr != nil {
		hb.MonitError = merr.Error()
		var de *monit.DaemonError
		if errors.As(merr, &de) {
			hb.MonitError += " — " + de.Hint()
		}
	}
	states := make([][]procState, len(a.cfg.Components))
	down := false
	for i, c := range a.cfg.Components {
		for _, p := range c.AllProcesses() {
			ps := procState{name: p, monit: "unknown"}
			if merr == nil {
				ps.monit = "not registered with monit"
				for _, s := range svcs {
					if s.Name == p {
						ps.monit, ps.running = s.Status, s.Running
					}
				}
				down = down || !ps.running
			}
			states[i] = append(states[i], ps)
		}
	}
	// What monit does not run may run all the same (a stop that failed
	// leaves its process unsupervised): status reports what runs.
	if down {
		alive := a.unsupervised(ctx)
		for _, procs := range states {
			for j, ps := range procs {
				if u, ok := alive[ps.name]; ok && !ps.running {
					procs[j].running, procs[j].reason = true, u.Reason(ps.monit)
				}
			}
		}
	}
	// A list, never null, also on a node with no component yet: the
	// heartbeat's documented shape.
	hb.Components = make([]contract.ComponentState, 0, len(a.cfg.Components))
	for i, c := range a.cfg.Components {
		hb.Components = append(hb.Components, componentState(c, states[i]))
	}
	a.mu.Lock()
	a.last = hb
	a.mu.Unlock()
	a.metrics.beats.Inc()
	b, _ := json.Marshal(hb)
	if err := a.nc.Publish(subject.Node(a.cfg.IP, subject.VerbHeartbeat), b); err != nil {
		a.log.Warn("publish heartbeat", "err", err)
	}
}

// readMonit asks monit's HTTP interface, then its command line.
func (a *Agent) readMonit(ctx context.Context) ([]monit.Service, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.o.MonitURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if svcs, err := monit.ParseXML(resp.Body); err == nil {
				return svcs, nil
			}
		}
	}
	out, _ := runMonit(ctx, a.o.MonitCmd, "-B", "summary")
	return monit.ParseSummary(out)
}

// actions are what the engine asks of an agent: the API's restart and stop.
var actions = []string{"restart", "stop"}

// control runs one monit action on one of this node's components.
func (a *Agent) control(m *nats.Msg) {
	reply := func(r contract.ControlReply) {
		r.V = contract.Version
		b, _ := json.Marshal(r)
		_ = m.Respond(b)
	}
	var c contract.Control
	if err := json.Unmarshal(m.Data, &c); err != nil {
		reply(contract.ControlReply{Error: "bad control request: " + err.Error()})
		return
	}
	if !slices.Contains(actions, c.Action) {
		reply(contract.ControlReply{Error: fmt.Sprintf("unknown action %q (want one of %s)", c.Action, strings.Join(actions, ", "))})
		return
	}
	known := false
	for _, comp := range a.cfg.Components {
		known = known || slices.Contains(comp.AllProcesses(), c.Process)
	}
	if !known {
		reply(contract.ControlReply{Error: fmt.Sprintf("process %q is not one of this node's components", c.Process)})
		return
	}
	wait := monit.Wait(c.Action)
	if c.TimeoutS > 0 && c.TimeoutS <= 600 {
		wait = time.Duration(c.TimeoutS) * time.Second
	}
	// monit acts after it answers: the script waits for the outcome on
	// the node, in a goroutine of its own so that actions on several
	// components do not queue here.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait+10*time.Second)
		defer cancel()
		out, err := a.script(ctx, monit.ControlScript, monit.ControlArgs(c.Action, c.Process, wait, a.o.MarkDir)...)
		code := 0
		if err != nil {
			code = -1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
		}
		why := monit.Outcome(string(out), code)
		a.log.Info("monit control", "action", c.Action, "process", c.Process, "error", why)
		if why != "" {
			reply(contract.ControlReply{Output: string(out), Error: why})
		} else {
			reply(contract.ControlReply{OK: true, Output: string(out)})
		}
		a.soon()
	}()
}

// soon reports the node's state soon, not a whole interval later.
func (a *Agent) soon() {
	time.AfterFunc(time.Second, func() {
		select {
		case a.beat <- struct{}{}:
		default:
		}
	})
}

// script runs one of the engine's fixed node scripts with monit's command
// line in $MONIT; its arguments are never parsed by a shell.
func (a *Agent) script(ctx context.Context, script string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "de-agent"}, args...)...)
	cmd.Env = append(os.Environ(), "MONIT="+strings.Join(a.o.MonitCmd, " "))
	cmd.WaitDelay = 5 * time.Second
	return cmd.Output()
}

// unsupervised reads which of monit's processes run whatever monit says:
// the pidfiles of monit's checks (monit -v -t, read again only when monit's
// config files change) and the processes they name, in the agent's own
// process. It is asked at every heartbeat that finds a process down (each
// restart, every stopped component), where ProbeScript cost a dozen
// processes each time.
func (a *Agent) unsupervised(ctx context.Context) map[string]monit.Unsupervised {
	files, err := a.pidfiles(ctx)
	if err != nil {
		a.log.Warn("probe unsupervised processes", "err", err)
		return nil
	}
	alive, err := monit.ParseProbe(monit.ProbeLocal(files, a.o.MarkDir))
	if err != nil {
		a.log.Warn("probe unsupervised processes", "err", err)
	}
	return alive
}

// pidfiles are monit's process checks and their pidfiles, as its verbose
// config check lists them; kept until monit's config files change. The
// check a step ran before its reload stands in while it is newer than
// every file of the config: a first deploy's agent starts before its
// components, and would run the check again at its first heartbeat.
func (a *Agent) pidfiles(ctx context.Context) ([]monit.PidFile, error) {
	key, newest := monitConfig(a.o.MonitCmd)
	a.pfMu.Lock()
	defer a.pfMu.Unlock()
	if a.pf != nil && key == a.pfKey {
		return a.pf, nil
	}
	if out, ok := verboseSince(a.o.MonitVerbose, newest); ok {
		a.pf, a.pfKey = monit.PidFiles(out), key
		return a.pf, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.o.MonitCmd[0], append(slices.Clip(a.o.MonitCmd[1:]), "-v", "-t")...)
	cmd.WaitDelay = 5 * time.Second
	// As ProbeScript: what monit printed counts, whatever its status (it
	// fails the check of a config it still runs with).
	out, err := cmd.Output()
	if len(out) == 0 && err != nil {
		return nil, fmt.Errorf("%s -v -t: %w", strings.Join(a.o.MonitCmd, " "), err)
	}
	a.pf, a.pfKey = monit.PidFiles(string(out)), key
	return a.pf, nil
}

// monitConfig says when monit's config may have changed: the size and
// time of its control files (the usual places, and any file its command
// line names) and of every check in /etc/monit/conf.d, where the engine
// puts its own; and the newest of those times.
func monitConfig(cmd []string) (string, time.Time) {
	var b strings.Builder
	var newest time.Time
	stat := func(p string) {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
			if st.ModTime().After(newest) {
				newest = st.ModTime()
			}
		}
	}
	for _, p := range append([]string{"/etc/monit/monitrc", "/etc/monitrc", "/etc/monit/conf.d"}, cmd...) {
		if filepath.IsAbs(p) {
			stat(p)
		}
	}
	entries, _ := os.ReadDir("/etc/monit/conf.d")
	for _, e := range entries {
		stat(filepath.Join("/etc/monit/conf.d", e.Name()))
	}
	return b.String(), newest
}

// verboseSince is the output of monit -v -t that a step kept at path, when
// it is whole (monit's last line says the config is OK) and was written
// after newest, the newest file of monit's config.
func verboseSince(path string, newest time.Time) (string, bool) {
	if path == "" {
		return "", false
	}
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || !st.ModTime().After(newest) || st.Size() > maxVerbose {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(strings.TrimRight(string(b), "\n"), "Control file syntax OK") {
		return "", false
	}
	return string(b), true
}

// maxVerbose bounds the kept check the agent reads: a node's thousand
// process checks print about 1 MB.
const maxVerbose = 8 << 20
