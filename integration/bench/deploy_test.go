// Package bench measures the engine on the test bed against the physical
// limit of its work and against two other ways of doing the same work.
// Its benchmarks bring up their own nodes and run with `make bench`, not
// with the tests (a one-node smoke test does run with them).
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// comp is the benchmark's component: five steps per node.
const comp = "svc"

// row is one line of the benchmark's table.
type row struct {
	N int
	// Agents says the engine ran with its node agents, as it does by
	// default; a row without them is added beside, never in place.
	Agents            bool
	Limit             time.Duration // slowest node: declared sleeps + its monit reload + start
	Engine, Agentless usage
	Ansible           *usage // nil when ansible-playbook is missing
	EngineCPU         time.Duration
	StepsPerNode      int
	// Reloads is the most monit reloads one node's deploy by the engine
	// asked for.
	Reloads int
}

func (r row) overhead(than time.Duration) time.Duration {
	return (r.Engine.Wall - than) / time.Duration(r.StepsPerNode)
}

var (
	tableMu sync.Mutex
	table   []row
)

func catalogDir(tb testing.TB) (string, *catalog.Catalog) {
	dir, err := filepath.Abs("testdata/catalogs")
	if err != nil {
		tb.Fatal(err)
	}
	cat, err := catalog.Load("bench", dir)
	if err != nil {
		tb.Fatal(err)
	}
	return dir, cat
}

// BenchmarkDeploy deploys the five-step component on N fresh nodes with
// the engine, and in the same run, on the same nodes reset between runs,
// with one plain ssh session per node (the agentless limit) and with
// ansible-playbook (forks = N, pipelining, ControlPersist, no facts).
// Each row nodes=N runs the engine as `serve` starts with no flags (agents
// on, the agent pulled and started within the deploy); nodes=N/no-agents
// is an added row, never the headline. Targets: the first deploy within
// 1.3 × the SSH limit at 1, 16 and 48 nodes, and ≥ 4 × faster than
// ansible at 48.
func BenchmarkDeploy(b *testing.B) {
	if err := testbed.Check(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { printTable(b) })
	for _, n := range []int{1, 8, 16, 48, 100} {
		for _, agents := range []bool{true, false} {
			name := fmt.Sprintf("nodes=%d", n)
			if !agents {
				name += "/no-agents"
			}
			b.Run(name, func(b *testing.B) { benchDeploy(b, n, agents) })
		}
	}
}

// benchDeploy is one row of BenchmarkDeploy.
func benchDeploy(b *testing.B, n int, agents bool) {
	for range b.N {
		r := compare(b, n, true, agents)
		b.ReportMetric(r.Engine.Wall.Seconds(), "wall-s")
		b.ReportMetric(r.Limit.Seconds(), "limit-s")
		b.ReportMetric(r.Engine.Wall.Seconds()/r.Limit.Seconds(), "wall/limit")
		b.ReportMetric(r.Engine.Wall.Seconds()/r.Agentless.Wall.Seconds(), "wall/agentless")
		if r.Ansible != nil {
			b.ReportMetric(r.Ansible.Wall.Seconds()/r.Engine.Wall.Seconds(), "ansible/wall")
		}
		b.ReportMetric(r.EngineCPU.Seconds(), "engine-cpu-s")
		b.ReportMetric(r.Engine.HostCPU.Seconds(), "host-cpu-s")
		b.ReportMetric(r.Engine.perNode(n), "node-cpu-ms/node")
		b.ReportMetric(float64(r.overhead(r.Agentless.Wall).Milliseconds()), "ms/host-step")
		b.ReportMetric(float64(r.Reloads), "monit-reloads/node")
	}
}

// TestDeploySmoke runs the benchmark's comparison once on one node, so
// that `make test` keeps it working; its figures are not judged here.
func TestDeploySmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test bed")
	}
	if err := testbed.Check(); err != nil {
		t.Fatal(err)
	}
	_, err := exec.LookPath("ansible-playbook")
	r := compare(t, 1, err == nil, true)
	_, cat := catalogDir(t)
	if declared := declaredOf(t, cat); r.Engine.Wall < declared || r.Agentless.Wall < declared {
		t.Errorf("a run beat the sleeps the catalog declares (%s): engine %s, agentless %s — the limit is wrong", declared, r.Engine.Wall, r.Agentless.Wall)
	}
	// With the defaults the node gets the agent too: its monit check is
	// read by the same reload as the component's.
	if r.Reloads != 1 {
		t.Errorf("the engine's deploy reloaded monit %d times on the node, want once (the component's checks and the agent's together)", r.Reloads)
	}
	if r.StepsPerNode != 6 {
		t.Errorf("%d steps per node, want 6 (prepare, upload, install, register, start, agent)", r.StepsPerNode)
	}
	t.Logf("1 node: engine %s, agentless %s, limit %s", r.Engine.Wall, r.Agentless.Wall, r.Limit)
}

// freshBed brings up n fresh nodes named bench, and the function that
// takes them down (one bed of that name at a time: called when the run
// ends, not when the benchmark does).
func freshBed(ctx context.Context, tb testing.TB, n int) (*testbed.Bed, func()) {
	bed, err := testbed.Up(ctx, testbed.Options{Name: "bench", Nodes: n})
	if err != nil {
		tb.Fatal(err)
	}
	return bed, func() {
		if err := bed.Down(); err != nil {
			tb.Errorf("tear down: %v", err)
		}
	}
}

// declaredOf is the part of the physical limit no run can beat: the
// sleeps the bench catalog's component declares. (The rest, monit's own
// time, is measured on the node once, and a busy machine makes that one
// measure longer than a later run's: the smoke tests judge only this.)
func declaredOf(tb testing.TB, cat *catalog.Catalog) time.Duration {
	tb.Helper()
	sleep, err := declaredSleep(cat, comp)
	if err != nil {
		tb.Fatal(err)
	}
	return sleep
}

// physicalLimit is what the component's deploy intrinsically costs on the
// bed: its declared sleep and monit's start, on the slowest node.
func physicalLimit(ctx context.Context, tb testing.TB, bed *testbed.Bed, cat *catalog.Catalog) time.Duration {
	tb.Helper()
	sleep := declaredOf(tb, cat)
	monit, err := monitTimes(ctx, bed)
	if err != nil {
		tb.Fatal(err)
	}
	var limit time.Duration
	for _, m := range monit {
		limit = max(limit, sleep+m[0]+m[1])
	}
	return limit
}

// compare brings up n fresh nodes and deploys the component on them three
// ways, resetting the nodes between runs.
func compare(tb testing.TB, n int, withAnsible, agents bool) row {
	ctx := context.Background()
	bed, down := freshBed(ctx, tb, n)
	defer down()
	dir, cat := catalogDir(tb)
	r := row{N: n, Agents: agents, Limit: physicalLimit(ctx, tb, bed, cat)}

	// The engine.
	args := []string{"--catalog", dir}
	if !agents {
		args = append(args, "--no-agents")
	}
	e := harness.Start(tb, harness.Options{Args: args})
	cfg := map[string]any{"components": map[string][]string{comp: ips(bed)}, "properties": map[string]any{
		"catalog": "bench", "domain": "bench.local", "home": bed.Home, "key": bed.KeyPath, "adduser": 0}}
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		tb.Fatalf("config: %d %s", code, body)
	}
	reloads0, err := monitReloads(ctx, bed)
	if err != nil {
		tb.Fatal(err)
	}
	cpu0 := procCPU(e.PID())
	var d contract.Deployment
	var requested time.Time
	r.Engine, err = measure(bed, func() error { d, requested = deploy(tb, e); return nil })
	if err != nil {
		tb.Fatal(err)
	}
	r.EngineCPU = procCPU(e.PID()) - cpu0
	// From the request to the last step's end by the engine's clock (the
	// same machine's), without the polling's lag.
	r.Engine.Wall = d.Finished.Sub(requested)
	r.StepsPerNode = len(d.Steps) / n
	if n == 1 {
		logSteps(tb, d, requested)
	}
	reloads, err := monitReloads(ctx, bed)
	if err != nil {
		tb.Fatal(err)
	}
	for ip, c := range reloads {
		r.Reloads = max(r.Reloads, c-reloads0[ip])
	}
	e.Stop()
	if err := reset(ctx, bed); err != nil {
		tb.Fatal(err)
	}

	// One ssh per node, all at once.
	scripts, err := agentlessScripts(cat, bed)
	if err != nil {
		tb.Fatal(err)
	}
	r.Agentless, err = measure(bed, func() error { return agentless(ctx, bed, scripts) })
	if err != nil {
		tb.Fatal(err)
	}
	if err := reset(ctx, bed); err != nil {
		tb.Fatal(err)
	}

	if withAnsible {
		u, err := measure(bed, func() error { return ansible(ctx, tb, cat, bed) })
		if err != nil {
			tb.Fatal(err)
		}
		r.Ansible = &u
		if err := reset(ctx, bed); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("N=%d: engine %s (limit %s, agentless %s), engine CPU %s, host CPU %s, %d steps per node",
		n, r.Engine.Wall.Round(time.Millisecond), r.Limit.Round(time.Millisecond), r.Agentless.Wall.Round(time.Millisecond),
		r.EngineCPU, r.Engine.HostCPU, r.StepsPerNode)
	tableMu.Lock()
	table = append(table, r)
	tableMu.Unlock()
	return r
}

// logSteps logs where one node's time went, from the request.
func logSteps(tb testing.TB, d contract.Deployment, requested time.Time) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %-40s %7.3f s", "deployment created", d.Created.Sub(requested).Seconds())
	for _, st := range d.Steps {
		if st.Started != nil && st.Finished != nil {
			fmt.Fprintf(&b, "\n  %-40s %7.3f s → %7.3f s %s", st.ID, st.Started.Sub(requested).Seconds(), st.Finished.Sub(requested).Seconds(), st.State)
		}
	}
	tb.Logf("N=1 steps:%s", b.String())
}

func ips(bed *testbed.Bed) []string {
	var out []string
	for _, n := range bed.Nodes {
		out = append(out, n.IP)
	}
	return out
}

// deploy starts a deployment and waits for it to succeed; it answers the
// deployment and when it was asked for.
func deploy(tb testing.TB, e *harness.Engine) (contract.Deployment, time.Time) {
	requested := time.Now()
	id := harness.Deploy(tb, e)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// The wall is the engine's own clock (Finished), so polling slowly
	// costs the figure nothing, and spares the engine encoding a large
	// deployment's record many times a second.
	d, err := harness.Wait(ctx, e.Client(), id, 250*time.Millisecond)
	switch {
	case err != nil:
		tb.Fatalf("deployment did not finish within 15 minutes: %v", err)
	case d.State != contract.DeploySucceeded:
		tb.Fatalf("deployment %s:\n%s", d.State, harness.Failures(d))
	}
	return d, requested
}

// rendered is what the component's instance on one node consists of,
// rendered by the engine's own catalog code so that every tool does the
// same work.
type rendered struct {
	ConfPath, Conf, Install, Monit, Process string
}

// renderIn renders node i's instance of the component with the config's
// domain set to domain, by the engine's own catalog code.
func renderIn(cat *catalog.Catalog, bed *testbed.Bed, i int, domain string) (rendered, error) {
	r, err := cat.Render(catalog.Input{Node: bed.Nodes[i].IP, Index: i, Component: comp,
		Config: contract.Config{Properties: contract.Properties{Domain: domain}}})
	if err != nil {
		return rendered{}, err
	}
	if len(r.Files) != 1 {
		return rendered{}, fmt.Errorf("the bench component renders %d files, the references know one", len(r.Files))
	}
	return rendered{ConfPath: r.Files[0].Path, Conf: string(r.Files[0].Content), Install: r.Install, Monit: r.Monit,
		Process: cat.Components[comp].Process}, nil
}

// render renders node i's instance of the component as the deploy
// benchmark's config has it (its domain, bench.local).
func render(cat *catalog.Catalog, bed *testbed.Bed, i int) (rendered, error) {
	return renderIn(cat, bed, i, "bench.local")
}

// Waiting for monit: a short poll, as the engine's scripts do.
const (
	registerWait = `monit reload >/dev/null; until monit status %[1]s >/dev/null 2>&1; do sleep 0.05; done`
	startWait    = `monit start %[1]s; until monit status %[1]s 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+OK'; do sleep 0.05; done`
)

// agentlessScripts are one script per node doing all of the component's
// work: the file, the install script, the monit check and the start.
func agentlessScripts(cat *catalog.Catalog, bed *testbed.Bed) ([]string, error) {
	var out []string
	for i := range bed.Nodes {
		r, err := render(cat, bed, i)
		if err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("set -eu\ncat > %s <<'DE_EOF'\n%sDE_EOF\n(\n%s\n)\ncat > /etc/monit/conf.d/%s <<'DE_EOF'\n%s\nDE_EOF\nchmod 600 /etc/monit/conf.d/%s\n%s\n%s\n",
			r.ConfPath, r.Conf, r.Install, comp, strings.TrimRight(r.Monit, "\n"), comp,
			fmt.Sprintf(registerWait, r.Process), fmt.Sprintf(startWait, r.Process)))
	}
	return out, nil
}

func sshArgs(bed *testbed.Bed, ip string) []string {
	return []string{"-i", bed.KeyPath, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error",
		"-o", "BatchMode=yes", "root@" + ip}
}

func agentless(ctx context.Context, bed *testbed.Bed, scripts []string) error {
	errs := make([]error, len(bed.Nodes))
	var wg sync.WaitGroup
	for i, n := range bed.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, "ssh", append(sshArgs(bed, n.IP), "bash -s")...)
			cmd.Stdin = strings.NewReader(scripts[i])
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("agentless on %s: %v: %s", n.IP, err, out)
			}
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

// ansible runs the same work as a playbook, in its best case (see
// runPlaybook).
func ansible(ctx context.Context, tb testing.TB, cat *catalog.Catalog, bed *testbed.Bed) error {
	inv, r0, err := inventory(cat, bed, "bench.local")
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
    - name: install
      shell: |
%s
    - name: monit check
      copy:
        dest: /etc/monit/conf.d/%s
        mode: "0600"
        content: |
%s
    - name: register
      shell: %q
    - name: start
      shell: %q
`, r0.ConfPath, indentLines(r0.Install, 8), comp, indentLines(r0.Monit, 10), fmt.Sprintf(registerWait, r0.Process), fmt.Sprintf(startWait, r0.Process))
	return runPlaybook(ctx, tb, bed, inv, play)
}

// inventory is the playbooks' YAML inventory: every node with its
// rendered file (conf), the config's domain set to domain; and node 0's
// instance, whose paths and scripts every node shares.
func inventory(cat *catalog.Catalog, bed *testbed.Bed, domain string) (string, rendered, error) {
	var inv strings.Builder
	inv.WriteString("nodes:\n  hosts:\n")
	var r0 rendered
	for i, n := range bed.Nodes {
		r, err := renderIn(cat, bed, i, domain)
		if err != nil {
			return "", r0, err
		}
		if i == 0 {
			r0 = r
		}
		conf, _ := json.Marshal(r.Conf)
		fmt.Fprintf(&inv, "    %s: {conf: %s}\n", n.IP, conf) // JSON is YAML
	}
	return inv.String(), r0, nil
}

// indentLines indents every line of s by n spaces, for a YAML block.
func indentLines(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// runPlaybook runs play on the inventory's nodes in ansible's best case:
// forks = N, pipelining, one persistent connection per node, no facts
// gathered.
func runPlaybook(ctx context.Context, tb testing.TB, bed *testbed.Bed, inventory, play string) error {
	dir := tb.TempDir()
	cfg := fmt.Sprintf(`[defaults]
forks = %d
host_key_checking = False
gathering = explicit
interpreter_python = /usr/bin/python3
private_key_file = %s
remote_user = root
retry_files_enabled = False
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=error
control_path_dir = %s/cp
`, len(bed.Nodes), bed.KeyPath, dir)
	for name, data := range map[string]string{"inventory.yml": inventory, "ansible.cfg": cfg, "play.yml": play} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, "ansible-playbook", "-i", filepath.Join(dir, "inventory.yml"), filepath.Join(dir, "play.yml"))
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"), "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ansible-playbook: %v\n%s\nplaybook:\n%s", err, out, play)
	}
	// Ends the persistent connections it left behind.
	sockets, _ := filepath.Glob(filepath.Join(dir, "cp", "*"))
	for _, s := range sockets {
		_ = exec.Command("ssh", "-o", "ControlPath="+s, "-O", "exit", "x").Run()
	}
	return nil
}

func printTable(tb testing.TB) {
	tableMu.Lock()
	defer tableMu.Unlock()
	if len(table) == 0 {
		return
	}
	sort.SliceStable(table, func(i, j int) bool { return table[i].N < table[j].N })
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "N\tagents\twall\tlimit\twall/limit\tagentless\twall/agentless\tansible\tansible/wall\tengine CPU-s\thost CPU-s\tnode CPU ms/node: engine, agentless\tms/host-step vs limit\tms/host-step vs agentless\tmonit reloads/node")
	for _, r := range table {
		ans, ratio := "—", "—"
		if r.Ansible != nil {
			ans, ratio = fmt.Sprintf("%.2f s", r.Ansible.Wall.Seconds()), fmt.Sprintf("%.1f×", r.Ansible.Wall.Seconds()/r.Engine.Wall.Seconds())
		}
		fmt.Fprintf(w, "%d\t%v\t%.2f s\t%.2f s\t%.2f\t%.2f s\t%.2f\t%s\t%s\t%.2f\t%.2f\t%.0f, %.0f\t%d\t%d\t%d\n", r.N, r.Agents, r.Engine.Wall.Seconds(), r.Limit.Seconds(),
			r.Engine.Wall.Seconds()/r.Limit.Seconds(), r.Agentless.Wall.Seconds(), r.Engine.Wall.Seconds()/r.Agentless.Wall.Seconds(),
			ans, ratio, r.EngineCPU.Seconds(), r.Engine.HostCPU.Seconds(), r.Engine.perNode(r.N), r.Agentless.perNode(r.N), r.overhead(r.Limit).Milliseconds(), r.overhead(r.Agentless.Wall).Milliseconds(), r.Reloads)
	}
	w.Flush()
	tb.Logf("deploy benchmark (%d steps per node):\n%s", table[0].StepsPerNode, b.String())
}
