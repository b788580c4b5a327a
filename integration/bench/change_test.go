package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// allAtOnce is the update policy of a change rolled out as an SSH script
// or a playbook does it: every node at once, no canary, healthy as soon
// as the process runs.
var allAtOnce = map[string]any{"canaries": 0, "max_in_flight": "100%", "update_watch_time": "0-30000"}

// changeRow is one line of BenchmarkChange's table.
type changeRow struct {
	N int
	// Engine is the change rolled out all at once, Default with the
	// default update policy (one canary, then one at a time, each
	// watched); SSH is one ssh session per node doing the same change.
	Engine, Default, SSH usage
	Ansible              *usage
	EngineCPU            time.Duration
	RSS                  int64   // the engine's most resident memory during the change
	SSHConns             float64 // SSH connections the engine opened for the change
	Steps                int
}

// BenchmarkChange changes the rendered file of the component on N nodes
// the engine deployed (their agents running, as by default) and restarts
// its process, and in the same run makes the same change with one ssh
// session per node and with ansible-playbook. Targets: ≤ 0.5 × the ssh
// sessions and ≥ 10 × faster than ansible-playbook.
func BenchmarkChange(b *testing.B) {
	if err := testbed.Check(); err != nil {
		b.Fatal(err)
	}
	var rows []changeRow
	b.Cleanup(func() { printChanges(b, rows) })
	for _, n := range []int{1, 16, 48, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				r := compareChange(b, n)
				rows = append(rows, r)
				b.ReportMetric(r.Engine.Wall.Seconds(), "wall-s")
				b.ReportMetric(r.SSH.Wall.Seconds(), "ssh-s")
				b.ReportMetric(r.Engine.Wall.Seconds()/r.SSH.Wall.Seconds(), "wall/ssh")
				if r.Ansible != nil {
					b.ReportMetric(r.Ansible.Wall.Seconds()/r.Engine.Wall.Seconds(), "ansible/wall")
				}
				b.ReportMetric(r.Default.Wall.Seconds(), "default-policy-s")
				b.ReportMetric(r.SSHConns, "engine-ssh-conns")
				b.ReportMetric(float64(r.RSS)/(1<<20), "rss-MB")
				b.ReportMetric(r.Engine.perNode(n), "node-cpu-ms/node")
				b.ReportMetric(r.SSH.perNode(n), "ssh-node-cpu-ms/node")
				b.ReportMetric(r.Engine.HostCPU.Seconds()*1000/float64(max(r.Steps, 1)), "host-cpu-ms/step")
			}
		})
	}
}

// compareChange brings up n fresh nodes, deploys the component on them
// with the engine's defaults, then changes it four ways, each changing
// the domain the rendered file names.
func compareChange(tb testing.TB, n int) changeRow {
	ctx := context.Background()
	bed, down := freshBed(ctx, tb, n)
	defer down()
	dir, cat := catalogDir(tb)
	r := changeRow{N: n}
	e := harness.Start(tb, harness.Options{Args: []string{"--catalog", dir}})
	defer e.Stop()
	configure := func(domain string, update map[string]any) {
		props := map[string]any{"catalog": "bench", "domain": domain, "home": bed.Home, "key": bed.KeyPath, "adduser": 0}
		if update != nil {
			props["update"] = update
		}
		cfg := map[string]any{"components": map[string][]string{comp: ips(bed)}, "properties": props}
		if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
			tb.Fatalf("config: %d %s", code, body)
		}
	}
	configure("v0.bench", allAtOnce)
	deploy(tb, e)
	waitAgents(tb, e, n)

	configure("v1.bench", allAtOnce)
	conns0, cpu0 := e.Metric(tb, "de_installer_ssh_connections_total"), procCPU(e.PID())
	var d contract.Deployment
	var requested time.Time
	var err error
	stopRSS := peakRSS(e.PID())
	if r.Engine, err = measure(bed, func() error { d, requested = deploy(tb, e); return nil }); err != nil {
		tb.Fatal(err)
	}
	r.RSS = stopRSS()
	r.Engine.Wall = d.Finished.Sub(requested)
	r.EngineCPU = procCPU(e.PID()) - cpu0
	r.SSHConns = e.Metric(tb, "de_installer_ssh_connections_total") - conns0
	r.Steps = len(d.Steps)
	if n == 1 {
		logSteps(tb, d, requested)
	}
	checkDomain(tb, bed, "v1.bench")

	configure("v2.bench", nil)
	if r.Default, err = measure(bed, func() error { d, requested = deploy(tb, e); return nil }); err != nil {
		tb.Fatal(err)
	}
	r.Default.Wall = d.Finished.Sub(requested)
	checkDomain(tb, bed, "v2.bench")

	scripts, err := changeScripts(cat, bed, "v3.bench")
	if err != nil {
		tb.Fatal(err)
	}
	if r.SSH, err = measure(bed, func() error { return agentless(ctx, bed, scripts) }); err != nil {
		tb.Fatal(err)
	}
	checkDomain(tb, bed, "v3.bench")
	if _, err := exec.LookPath("ansible-playbook"); err == nil {
		u, err := measure(bed, func() error { return ansibleChange(ctx, tb, cat, bed, "v4.bench") })
		if err != nil {
			tb.Fatal(err)
		}
		r.Ansible = &u
		checkDomain(tb, bed, "v4.bench")
	}
	tb.Logf("N=%d change: engine %s (%d steps, %.0f SSH connections), default policy %s, ssh %s",
		n, r.Engine.Wall.Round(time.Millisecond), r.Steps, r.SSHConns, r.Default.Wall.Round(time.Millisecond), r.SSH.Wall.Round(time.Millisecond))
	return r
}

// waitAgents waits until the agents of all n nodes report, so that the
// change finds them as a user's next change would.
func waitAgents(tb testing.TB, e *harness.Engine, n int) {
	tb.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		up := e.Metric(tb, "de_node_up")
		if int(up) >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%v of %d agents connected two minutes after the deploy", up, n)
		}
	}
}

// checkDomain fails unless every node's rendered file names domain: each
// way of changing it did its work.
func checkDomain(tb testing.TB, bed *testbed.Bed, domain string) {
	tb.Helper()
	for _, n := range bed.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b, err := n.Exec(ctx, "cat /etc/bench-svc.conf")
		cancel()
		if err != nil || !strings.HasSuffix(string(b), " in "+domain+"\n") {
			tb.Fatalf("node %s after the change to %s: %q %v", n.IP, domain, b, err)
		}
	}
}

// restartWait restarts the component's process and waits until monit
// reports a new one running.
const restartWait = `old=$(cat /run/%[1]s.pid 2>/dev/null || true)
monit restart %[1]s
until [ "$(cat /run/%[1]s.pid 2>/dev/null)" != "$old" ] && monit status %[1]s 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+OK'; do sleep 0.05; done`

// changeScripts are one script per node making the change as the engine
// makes it: the file, then the restart (the install script, unchanged,
// does not run again).
func changeScripts(cat *catalog.Catalog, bed *testbed.Bed, domain string) ([]string, error) {
	var out []string
	for i := range bed.Nodes {
		r, err := renderIn(cat, bed, i, domain)
		if err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("set -eu\ncat > %s <<'DE_EOF'\n%sDE_EOF\n%s\n", r.ConfPath, r.Conf, fmt.Sprintf(restartWait, r.Process)))
	}
	return out, nil
}

// ansibleChange makes the change with a playbook, in its best case (see
// ansible).
func ansibleChange(ctx context.Context, tb testing.TB, cat *catalog.Catalog, bed *testbed.Bed, domain string) error {
	inv, r0, err := inventory(cat, bed, domain)
	if err != nil {
		return err
	}
	play := fmt.Sprintf(`- hosts: nodes
  gather_facts: false
  tasks:
    - name: render
      copy:
        dest: %s
        content: "{{ conf }}"
        mode: "0644"
    - name: restart
      shell: %q
`, r0.ConfPath, fmt.Sprintf(restartWait, r0.Process))
	return runPlaybook(ctx, tb, bed, inv, play)
}

func printChanges(tb testing.TB, rows []changeRow) {
	if len(rows) == 0 {
		return
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "N\tengine, all at once\tssh sessions\tengine/ssh\tansible\tansible/engine\tengine, default policy\tSSH conns by the engine\thost CPU ms/step\tnode CPU ms/node: engine, ssh\tengine RSS")
	for _, r := range rows {
		ans, ratio := "—", "—"
		if r.Ansible != nil {
			ans, ratio = fmt.Sprintf("%.2f s", r.Ansible.Wall.Seconds()), fmt.Sprintf("%.1f×", r.Ansible.Wall.Seconds()/r.Engine.Wall.Seconds())
		}
		fmt.Fprintf(w, "%d\t%.2f s\t%.2f s\t%.2f\t%s\t%s\t%.2f s\t%.0f\t%.0f\t%.0f, %.0f\t%.0f MB\n", r.N, r.Engine.Wall.Seconds(), r.SSH.Wall.Seconds(),
			r.Engine.Wall.Seconds()/r.SSH.Wall.Seconds(), ans, ratio, r.Default.Wall.Seconds(), r.SSHConns,
			r.Engine.HostCPU.Seconds()*1000/float64(max(r.Steps, 1)), r.Engine.perNode(r.N), r.SSH.perNode(r.N), float64(r.RSS)/(1<<20))
	}
	w.Flush()
	tb.Logf("change benchmark:\n%s", b.String())
}
