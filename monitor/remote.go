package monitor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/monitor/monit"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeclient"
)

// Nodes no agent ever reported from (an engine without --nats-listen) are
// read over SSH instead: usage from /proc and df, components from
// `monit summary`, and the processes that run although monit does not
// supervise them. A read is reused for sshTTL so that a console polling
// status does not open a stream of sessions. Status waits for a node at
// most StatusWait; a node that has not answered is shown from its last
// read while that is younger than sshStale (as an agent may miss three
// heartbeats), and as unreachable after.
const (
	sshTTL      = 5 * time.Second
	sshStale    = 15 * time.Second
	readTimeout = 10 * time.Second
	monitMark   = "--- monit"
	checksMark  = "--- checks"
	probeMark   = "--- unsupervised"
	readScript  = `set -u
read -r _ a b c d e f g h _ < /proc/stat; sleep 0.3; read -r _ a2 b2 c2 d2 e2 f2 g2 h2 _ < /proc/stat
echo "cpu $(( (a2+b2+c2+f2+g2+h2) - (a+b+c+f+g+h) )) $(( (d2+e2) - (d+e) ))"
awk '/^MemTotal:/{t=$2} /^MemAvailable:/{m=$2} END{print "mem", t, m}' /proc/meminfo
df -Pk / | awk 'NR==2{print "disk", $2, $3}'
echo "` + monitMark + `"
monit -B summary 2>&1 || true
echo "` + checksMark + `"
for f in /etc/monit/conf.d/*; do [ -f "$f" ] && awk -v n="${f##*/}" '$1 == "check" && $2 == "process" { gsub(/"/, "", $3); print n, $3 } END { print n, "-" }' "$f"; done 2>/dev/null
for j in /var/vcap/jobs/*; do [ -e "$j" ] && [ ! -f "/etc/monit/conf.d/${j##*/}" ] && echo "${j##*/} -"; done 2>/dev/null
echo "` + probeMark + `"
set -- ` + monit.MarkDir + `
` + monit.ProbeScript
)

// slowRead is a read that the node did not finish within readTimeout
// (the installer killed it): a node busy or frozen, not one that refused.
type slowRead struct{ msg string }

func (e *slowRead) Error() string { return e.msg }

// sshRead is one node as read over SSH.
type sshRead struct {
	at             time.Time
	err            error
	cpu, mem, disk float64
	services       []monit.Service
	// checks are the processes each file of monit's conf.d checks: a
	// release's job is its file, of one or more processes.
	checks       map[string][]string
	monitErr     error
	unsupervised map[string]monit.Unsupervised
}

// parseRead reads readScript's output.
func parseRead(out string) (sshRead, error) {
	usage, summary, ok := strings.Cut(out, monitMark+"\n")
	if !ok {
		return sshRead{}, fmt.Errorf("unexpected output from the node: %q", firstLines(out))
	}
	var r sshRead
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(usage), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return sshRead{}, fmt.Errorf("unexpected usage line %q", line)
		}
		x, err1 := strconv.ParseFloat(f[1], 64)
		y, err2 := strconv.ParseFloat(f[2], 64)
		if err := errors.Join(err1, err2); err != nil || x < 0 || y < 0 {
			return sshRead{}, fmt.Errorf("unexpected usage line %q", line)
		}
		switch f[0] {
		case "cpu": // busy and idle ticks
			if x+y > 0 {
				r.cpu = 100 * x / (x + y)
			}
		case "mem": // total and available KiB
			if x > 0 && y <= x {
				r.mem = 100 * (x - y) / x
			}
		case "disk": // size and used KiB
			if x > 0 && y <= x {
				r.disk = 100 * y / x
			}
		default:
			return sshRead{}, fmt.Errorf("unexpected usage line %q", line)
		}
		seen++
	}
	if seen != 3 {
		return sshRead{}, fmt.Errorf("unexpected output from the node: %q", firstLines(out))
	}
	summary, probe, _ := strings.Cut(summary, probeMark+"\n")
	summary, checks, _ := strings.Cut(summary, checksMark+"\n")
	r.checks = map[string][]string{}
	for _, line := range strings.Split(checks, "\n") {
		// "JOB -" says the job is applied, of however many processes.
		if f := strings.Fields(line); len(f) == 2 && f[1] == "-" {
			r.checks[f[0]] = append(r.checks[f[0]], []string{}...)
		} else if len(f) == 2 {
			r.checks[f[0]] = append(r.checks[f[0]], f[1])
		}
	}
	r.services, r.monitErr = monit.ParseSummary([]byte(summary))
	// A probe that cannot be read only loses the unsupervised processes.
	r.unsupervised, _ = monit.ParseProbe(probe)
	return r, nil
}

func firstLines(s string) string {
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// sshCache keeps the latest SSH read of each node, and the read under way.
type sshCache struct {
	mu    sync.Mutex
	nodes map[string]*sshNode
}

type sshNode struct {
	last    sshRead       // the latest read that ended
	good    sshRead       // the latest read that succeeded
	lastOK  time.Time     // when a read last succeeded
	running chan struct{} // closed when the read under way ends; nil when none
	since   time.Time     // when the read under way started
}

// readOverSSH reads the nodes at once, each on its own and at most one read
// per node at a time, reusing reads younger than sshTTL. It returns within
// about wait: a node still being read then is shown from its last read
// while that is recent, else as unreachable; its read goes on and serves
// the next status.
func (m *Monitor) readOverSSH(ips []string, wait time.Duration) map[string]sshRead {
	now := time.Now()
	type read struct {
		done  chan struct{}
		until time.Time
	}
	var pending []read
	m.ssh.mu.Lock()
	for _, ip := range ips {
		n := m.ssh.nodes[ip]
		if n == nil {
			n = &sshNode{}
			m.ssh.nodes[ip] = n
		}
		if n.running == nil && (n.last.at.IsZero() || now.Sub(n.last.at) >= sshTTL) {
			n.running, n.since = make(chan struct{}), now
			go m.readInto(ip, n)
		}
		if n.running != nil {
			// A read is waited for until wait after it started: one that
			// hangs costs the first status wait, not every later one.
			pending = append(pending, read{n.running, n.since.Add(wait)})
		}
	}
	m.ssh.mu.Unlock()
	for _, r := range pending {
		t := time.NewTimer(time.Until(r.until))
		select {
		case <-r.done:
		case <-t.C:
		}
		t.Stop()
	}
	now = time.Now()
	out := map[string]sshRead{}
	m.ssh.mu.Lock()
	defer m.ssh.mu.Unlock()
	for _, ip := range ips {
		n := m.ssh.nodes[ip]
		shown := n.last
		if slow := (*slowRead)(nil); errors.As(shown.err, &slow) && !n.lastOK.IsZero() && now.Sub(n.lastOK) < sshStale {
			// A read that answered too late on a busy node, as an agent
			// may miss a heartbeat: the last good one stands for it
			// while it is recent.
			shown = n.good
		}
		switch {
		case n.running == nil || (!n.last.at.IsZero() && now.Sub(n.last.at) < sshStale && now.Sub(n.since) < readTimeout):
			out[ip] = shown
		default:
			since := n.since
			if !n.lastOK.IsZero() {
				since = n.lastOK
			}
			out[ip] = sshRead{at: now, err: fmt.Errorf("no answer for %s", now.Sub(since).Round(time.Second))}
		}
	}
	return out
}

// readInto reads a node and keeps the result, whoever waits for it.
func (m *Monitor) readInto(ip string, n *sshNode) {
	r := m.readNode(context.Background(), ip)
	r.at = time.Now()
	m.ssh.mu.Lock()
	n.last = r
	if r.err == nil {
		n.good, n.lastOK = r, r.at
	}
	close(n.running)
	n.running = nil
	m.ssh.mu.Unlock()
}

func (m *Monitor) readNode(ctx context.Context, ip string) sshRead {
	x, err := nodeclient.Exec(ctx, m.o.NC, ip, readScript, readTimeout)
	var answered *nodeclient.AnswerError
	if errors.As(err, &answered) {
		return sshRead{err: err}
	}
	if err != nil {
		return sshRead{err: fmt.Errorf("no installer to reach it over SSH: %w", err)}
	}
	if x.Error != "" {
		if x.TimedOut {
			return sshRead{err: &slowRead{x.Error}}
		}
		return sshRead{err: errors.New(x.Error)}
	}
	r, err := parseRead(x.Output)
	if err != nil {
		return sshRead{err: err}
	}
	return r
}

// entryFromSSH fills a status entry from a node read over SSH: the
// process a catalog names for the component, or, for a release's job
// (process ""), every process its monit file checks.
func entryFromSSH(e *contract.StatusEntry, r sshRead, process, comp string) {
	if r.err != nil {
		e.Reason = "unreachable over SSH (no agent reports from this node): " + r.err.Error()
		return
	}
	e.Cpu, e.Mem, e.Disk = pct(r.cpu), pct(r.mem), pct(r.disk)
	var de *monit.DaemonError
	switch {
	case errors.As(r.monitErr, &de):
		e.Reason = de.Error() + " — " + de.Hint()
		return
	case r.monitErr != nil:
		e.Reason = "monit's summary could not be read: " + r.monitErr.Error()
		return
	}
	procs, applied := []string{process}, true
	if process == "" {
		procs, applied = r.checks[comp]
	}
	e.Reason = "not registered with monit on this node"
	switch {
	case !applied:
		return
	case len(procs) == 0:
		// A release's job of no process, applied: as its agent says it.
		e.Status, e.Reason = "CONFIGURED", ""
		return
	}
	var notes []string
	for _, p := range procs {
		why := "not registered with monit on this node"
		for _, s := range r.services {
			if s.Name != p {
				continue
			}
			u, alive := r.unsupervised[p]
			switch {
			case s.Running:
				why = ""
			case alive:
				why, notes = "", append(notes, u.Reason(s.Status))
			default:
				why = "monit: " + s.Status
			}
		}
		if why != "" {
			if len(procs) > 1 {
				why += " (" + p + ")"
			}
			e.Reason = why
			return
		}
	}
	e.Status, e.Reason = "RUNNING", strings.Join(notes, "; ")
}
