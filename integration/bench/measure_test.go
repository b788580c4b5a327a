package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/planner/catalog"
)

// clkTck is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clkTck = 100

// procCPU is a process's CPU time so far (user + system).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck
}

// procRSS is a process's resident memory, in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// peakRSS samples a process's resident memory every 200 ms until the
// returned stop is called, which gives the most it saw.
func peakRSS(pid int) (stop func() int64) {
	done := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			peak = max(peak, procRSS(pid))
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); wg.Wait(); return peak }
}

// hostCPU is the whole machine's busy CPU time so far: every process of
// the engine, the nodes, ssh and ansible.
func hostCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var busy int64
	// cpu user nice system idle iowait irq softirq steal
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clkTck
}

// bedCPU is the CPU time the bed's nodes have used so far: every process
// in their cgroups (sshd, shells, monit, agents, the components), none of
// this machine's own (the engine, ssh, ansible).
func bedCPU(bed *testbed.Bed) time.Duration {
	for _, d := range bed.Cgroups {
		if b, err := os.ReadFile(filepath.Join(d, "cpuacct.usage")); err == nil {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return time.Duration(n)
		}
	}
	return 0
}

// usage is a run's wall time, the CPU it cost the machine, and the part of
// that its nodes spent.
type usage struct {
	Wall, HostCPU, NodeCPU time.Duration
}

// perNode is the nodes' CPU per node of the bed, in milliseconds.
func (u usage) perNode(n int) float64 {
	return u.NodeCPU.Seconds() * 1000 / float64(max(n, 1))
}

func measure(bed *testbed.Bed, run func() error) (usage, error) {
	h0, n0, t0 := hostCPU(), bedCPU(bed), time.Now()
	err := run()
	return usage{Wall: time.Since(t0), HostCPU: hostCPU() - h0, NodeCPU: bedCPU(bed) - n0}, err
}

var sleepRe = regexp.MustCompile(`(?m)^\s*sleep\s+([0-9.]+)\s*$`)

// declaredSleep is the time the catalog's scripts for component say they
// sleep: the part of a deploy no tool can shorten.
func declaredSleep(cat *catalog.Catalog, comp string) (time.Duration, error) {
	r, err := cat.Render(catalog.Input{Node: "10.0.0.1", Component: comp})
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, script := range []string{r.Install, r.Reload} {
		for _, m := range sleepRe.FindAllStringSubmatch(script, -1) {
			s, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, fmt.Errorf("sleep %q: %w", m[1], err)
			}
			total += time.Duration(s * float64(time.Second))
		}
	}
	return total, nil
}

// monitScript registers a check and starts its process, timing both on
// the node itself: what monit takes, without any tool's transport.
const monitScript = `set -eu
ms() { echo $(( $(date +%s%N) / 1000000 )); }
cat > /etc/monit/conf.d/bench-probe <<'EOF'
check process bench-probe with pidfile /run/bench-probe.pid
  start program = "/sbin/start-stop-daemon --start --oknodo --background --make-pidfile --pidfile /run/bench-probe.pid --exec /bin/sleep -- 100002"
  stop program = "/sbin/start-stop-daemon --stop --oknodo --pidfile /run/bench-probe.pid"
EOF
chmod 600 /etc/monit/conf.d/bench-probe
a=$(ms); monit reload >/dev/null
until monit status bench-probe >/dev/null 2>&1; do sleep 0.01; done
b=$(ms); monit start bench-probe
until monit status bench-probe 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+OK'; do sleep 0.01; done
c=$(ms)
monit stop bench-probe >/dev/null 2>&1 || true
until monit status bench-probe 2>/dev/null | grep -Eq 'Not monitored'; do sleep 0.01; done
rm -f /etc/monit/conf.d/bench-probe; monit reload >/dev/null
until ! monit status bench-probe >/dev/null 2>&1; do sleep 0.01; done
echo $((b-a)) $((c-b))
`

// monitTimes measures, one node at a time so that none waits on another,
// how long each node's monit takes to learn a new check and to start it.
func monitTimes(ctx context.Context, bed *testbed.Bed) (map[string][2]time.Duration, error) {
	out := map[string][2]time.Duration{}
	for _, n := range bed.Nodes {
		b, err := n.Exec(ctx, monitScript)
		if err != nil {
			return nil, err
		}
		var reload, start int64
		if _, err := fmt.Sscan(string(b), &reload, &start); err != nil {
			return nil, fmt.Errorf("monit times on %s: %q: %w", n.IP, b, err)
		}
		out[n.IP] = [2]time.Duration{time.Duration(reload) * time.Millisecond, time.Duration(start) * time.Millisecond}
	}
	return out, nil
}

// monitReloads counts, per node, the reloads its monit daemon has logged
// so far: a reload by monit's client and one by SIGHUP alike (the client
// logs a line of its own, the daemon this one).
func monitReloads(ctx context.Context, bed *testbed.Bed) (map[string]int, error) {
	out := map[string]int{}
	for _, n := range bed.Nodes {
		b, err := n.Exec(ctx, "grep -c 'Reinitializing Monit -- control file' /var/log/monit.log || true")
		if err != nil {
			return nil, err
		}
		if out[n.IP], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return nil, fmt.Errorf("monit reloads on %s: %q: %w", n.IP, b, err)
		}
	}
	return out, nil
}

// resetScript takes a node back to what it was before a run: nothing of
// the component, of the engine's state or of ansible's.
const resetScript = `for f in /etc/monit/conf.d/svc /etc/monit/conf.d/s[1-9] /etc/monit/conf.d/de-agent; do
  [ -e "$f" ] || continue
  c=$(awk '/^check process/{print $3; exit}' "$f"); monit stop "$c" >/dev/null 2>&1 || true
done
rm -f /etc/monit/conf.d/svc /etc/monit/conf.d/s[1-9] /etc/monit/conf.d/de-agent
monit reload >/dev/null 2>&1 || true
for f in /var/lib/deployment-engine/run/*.pgid; do [ -f "$f" ] && kill -KILL -- -"$(cat "$f")" 2>/dev/null; done
pkill -KILL -f '^/bin/sleep 10000[12]$' || true
pkill -KILL -f '^/usr/local/bin/de-agen[t] ' || true
pkill -KILL -f '[d]eployment-engine agent' || true
rm -rf /var/lib/deployment-engine /var/lib/bench /etc/bench-svc.conf /run/bench-*.pid /root/.ansible /usr/local/bin/de-agent /usr/local/bin/deployment-engine
until ! monit status bench-svc >/dev/null 2>&1; do sleep 0.05; done
true`

func reset(ctx context.Context, bed *testbed.Bed) error {
	var wg sync.WaitGroup
	errs := make([]error, len(bed.Nodes))
	sem := make(chan struct{}, 16)
	for i, n := range bed.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			_, errs[i] = n.Exec(ctx, resetScript)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
