package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/monitor/monit"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Nodes no agent ever reported from (an engine without --nats-listen) are
// read over SSH instead: usage from /proc and df, components from
// `monit summary`. A read is reused for sshTTL so that a console polling
// status does not open a stream of sessions.
const (
	sshTTL     = 5 * time.Second
	monitMark  = "--- monit"
	readScript = `set -u
read -r _ a b c d e f g h _ < /proc/stat; sleep 0.3; read -r _ a2 b2 c2 d2 e2 f2 g2 h2 _ < /proc/stat
echo "cpu $(( (a2+b2+c2+f2+g2+h2) - (a+b+c+f+g+h) )) $(( (d2+e2) - (d+e) ))"
awk '/^MemTotal:/{t=$2} /^MemAvailable:/{m=$2} END{print "mem", t, m}' /proc/meminfo
df -Pk / | awk 'NR==2{print "disk", $2, $3}'
echo "` + monitMark + `"
monit -B summary 2>&1 || true
`
)

// sshRead is one node as read over SSH.
type sshRead struct {
	at             time.Time
	err            error
	cpu, mem, disk float64
	services       []monit.Service
	monitErr       error
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
	r.services, r.monitErr = monit.ParseSummary([]byte(summary))
	return r, nil
}

func firstLines(s string) string {
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// sshCache keeps the latest SSH read of each node.
type sshCache struct {
	mu    sync.Mutex
	reads map[string]sshRead
}

// readOverSSH reads the nodes at once, reusing reads younger than sshTTL.
func (m *Monitor) readOverSSH(ctx context.Context, ips []string) map[string]sshRead {
	out := map[string]sshRead{}
	var ask []string
	m.ssh.mu.Lock()
	for _, ip := range ips {
		if r, ok := m.ssh.reads[ip]; ok && time.Since(r.at) < sshTTL {
			out[ip] = r
		} else {
			ask = append(ask, ip)
		}
	}
	m.ssh.mu.Unlock()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ip := range ask {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := m.readNode(ctx, ip)
			r.at = time.Now()
			mu.Lock()
			out[ip] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	m.ssh.mu.Lock()
	for _, ip := range ask {
		m.ssh.reads[ip] = out[ip]
	}
	m.ssh.mu.Unlock()
	return out
}

func (m *Monitor) readNode(ctx context.Context, ip string) sshRead {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rep, err := kit.Request(ctx, m.o.NC, subject.Cmd("installer", "exec"), contract.Exec{V: contract.Version, Node: ip, Script: readScript, TimeoutS: 10})
	if err != nil {
		return sshRead{err: fmt.Errorf("no installer to reach it over SSH: %w", err)}
	}
	var x contract.ExecReply
	if rep.Code != 200 || json.Unmarshal(rep.Body, &x) != nil {
		return sshRead{err: fmt.Errorf("the installer answered %d", rep.Code)}
	}
	if x.Error != "" {
		return sshRead{err: errors.New(x.Error)}
	}
	r, err := parseRead(x.Output)
	if err != nil {
		return sshRead{err: err}
	}
	return r
}

// entryFromSSH fills a status entry from a node read over SSH.
func entryFromSSH(e *StatusEntry, r sshRead, process string) {
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
	e.Reason = "not registered with monit on this node"
	for _, s := range r.services {
		if s.Name == process {
			if s.Running {
				e.Status, e.Reason = "RUNNING", ""
			} else {
				e.Reason = "monit: " + s.Status
			}
		}
	}
}
