package bosh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// BOSH's layout on a node.
const (
	VcapDir     = "/var/vcap"
	PackagesDir = VcapDir + "/packages"
	JobsDir     = VcapDir + "/jobs"
	LogDir      = VcapDir + "/sys/log"
	RunDir      = VcapDir + "/sys/run"
)

// Step is one step of a release's plan, with the steps it waits for (by
// id: node/component/action) and its priority among a node's ready steps.
type Step struct {
	Spec  contract.Step
	After []string
	Prio  int
}

// ID is a step's id, as the planner writes it.
func ID(node, comp, action string) string { return node + "/" + comp + "/" + action }

// PlanInput is what a release's plan is made from.
type PlanInput struct {
	Deployment *Deployment
	// PackageURL is where nodes fetch a package's tarball.
	PackageURL func(p release.Package) string
	// Base maps a node to the id of its last base step (prepare, agent).
	Base map[string]string
	// NodeComponent names a node's own steps.
	NodeComponent string
	// CompileTimeout bounds compiling one package.
	CompileTimeout time.Duration
}

// Instance is one job instance as planned: its rendered files and the
// monit processes it runs.
type Instance struct {
	Job, Node string
	Index     int
	Files     []contract.StepFile
	Monit     string
	Processes []string
	Hash      string
}

// Plan is a release's steps, and per node the jobs with their processes
// (for the node agent).
type Plan struct {
	Steps     []Step
	Instances []Instance
	// Packages lists per node the packages compiled there, in order.
	Packages map[string][]string
}

var (
	stopRe    = regexp.MustCompile(`(stop\s+program\s*=?\s*)"([^"]*)"`)
	destRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./+-]*$`)
	processRe = regexp.MustCompile(`(?m)^\s*check\s+process\s+"?([^\s"]+)"?`)
)

// Processes lists the processes a monit file checks.
func Processes(monit string) []string {
	var out []string
	for _, m := range processRe.FindAllStringSubmatch(monit, -1) {
		out = append(out, m[1])
	}
	return out
}

// drainOnStop points each stop program of a job's monit file at a wrapper
// (.de/stop-N in the job's dir) that runs the job's drain first, as BOSH
// does before it stops a job, then the release's own stop program.
func drainOnStop(job, monit string) (string, map[string]string) {
	files := map[string]string{}
	out := stopRe.ReplaceAllStringFunc(monit, func(m string) string {
		sub := stopRe.FindStringSubmatch(m)
		name := fmt.Sprintf(".de/stop-%d", len(files)+1)
		files[name] = stopWrapper(job, sub[2])
		return sub[1] + `"` + JobsDir + "/" + job + "/" + name + `"`
	})
	return out, files
}

// drainScript runs a job's bin/drain with BOSH's protocol: its last line
// is a number of seconds to wait, or, negative, seconds until it is asked
// again with job_check_status; all of it bounded by 10 minutes.
func drainScript(bin, job, args string) string {
	return fmt.Sprintf(`n=$(%[1]s %[3]s 2>>/var/vcap/sys/log/%[2]s/drain.stderr.log | tail -n 1 | tr -dc '0-9-')
deadline=$(( $(date +%%s) + 600 ))
while [ -n "$n" ] && [ "$n" -lt 0 ] && [ "$(date +%%s)" -lt $deadline ]; do
  sleep $(( -n ))
  n=$(%[1]s job_check_status hash_unchanged 2>>/var/vcap/sys/log/%[2]s/drain.stderr.log | tail -n 1 | tr -dc '0-9-')
done
if [ -n "$n" ] && [ "$n" -gt 0 ]; then sleep $(( n < 600 ? n : 600 )); fi
`, bin, job, args)
}

func stopWrapper(job, stop string) string {
	return fmt.Sprintf(`#!/bin/bash
# Written by the deployment engine: the job's drain runs before monit
# stops it (unless the engine drained it already for a re-deploy).
marker=/var/vcap/sys/run/%[1]s/.de-drained
if [ -e "$marker" ]; then
  rm -f "$marker"
elif [ -x /var/vcap/jobs/%[1]s/bin/drain ]; then
%[2]sfi
exec %[3]s
`, job, drainScript("/var/vcap/jobs/"+job+"/bin/drain", job, "job_shutdown hash_unchanged"), stop)
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func stepFile(path string, mode uint32, content []byte) contract.StepFile {
	sum := sha256.Sum256(content)
	return contract.StepFile{Path: path, Mode: mode, Content: content, SHA256: hex.EncodeToString(sum[:])}
}

// RenderAll renders every instance of the deployment in one run of the
// renderer; the problems name each instance whose templates fail.
func RenderAll(ctx context.Context, d *Deployment) ([]Instance, []contract.Problem, error) {
	var jobs []RenderJob
	var insts []Instance
	for _, job := range contract.SortedKeys(d.Jobs) {
		for i, ip := range d.Jobs[job] {
			jobs = append(jobs, RenderJob{Job: d.Release.Specs[job], Spec: d.Spec(job, i)})
			insts = append(insts, Instance{Job: job, Node: ip, Index: i})
		}
	}
	if len(jobs) == 0 {
		return nil, nil, nil
	}
	out, err := Render(ctx, jobs)
	if err != nil {
		return nil, nil, err
	}
	var ps []contract.Problem
	for k, r := range out {
		in := &insts[k]
		if r.Error != "" {
			ps = append(ps, contract.Problem{Path: "properties.jobs." + in.Job, Component: in.Job, IP: in.Node,
				Reason: fmt.Sprintf("job %s (instance %d): %s", in.Job, in.Index, r.Error)})
			continue
		}
		spec := d.Release.Specs[in.Job]
		pkgHashes := []string{}
		for _, p := range spec.Packages {
			pk, _ := d.Release.Package(p)
			pkgHashes = append(pkgHashes, p+"@"+pk.Version+"@"+pk.SHA1)
		}
		var sum strings.Builder
		for _, f := range r.Files {
			if !destRe.MatchString(f.Dest) || bad(f.Dest) {
				ps = append(ps, contract.Problem{Path: "components." + in.Job, Component: in.Job, Reason: fmt.Sprintf("template destination %q is not a plain path", f.Dest)})
				continue
			}
			fmt.Fprintf(&sum, "%s %x\n", f.Dest, sha256.Sum256([]byte(f.Content)))
		}
		in.Hash = hashOf(d.Release.Name, d.Release.Version, in.Job, spec.Version, sum.String(), r.Monit, strings.Join(pkgHashes, ","))
		dir := fmt.Sprintf("%s/data/jobs/%s/%s", VcapDir, in.Job, in.Hash)
		for _, f := range r.Files {
			mode := uint32(0o644)
			if strings.HasPrefix(f.Dest, "bin/") {
				mode = 0o755
			}
			in.Files = append(in.Files, stepFile(dir+"/"+f.Dest, mode, []byte(f.Content)))
		}
		monit, wrappers := drainOnStop(in.Job, r.Monit)
		for _, name := range contract.SortedKeys(wrappers) {
			in.Files = append(in.Files, stepFile(dir+"/"+name, 0o755, []byte(wrappers[name])))
		}
		sort.Slice(in.Files, func(a, b int) bool { return in.Files[a].Path < in.Files[b].Path })
		in.Monit = monit
		in.Processes = Processes(r.Monit)
	}
	return insts, ps, nil
}

func bad(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "" {
			return true
		}
	}
	return false
}

// MakePlan renders the deployment and orders its steps: per node a layout
// step, then the packages its jobs need (dependencies first), then per
// job instance apply (files in place, the old version drained and
// stopped), pre-start, register (monit) and start (then post-start):
// monit starts a process it learns of, so it learns of it only after
// pre-start. A
// job that consumes a link applies after every instance of its provider
// has started.
func MakePlan(ctx context.Context, in PlanInput) (*Plan, error) {
	d := in.Deployment
	insts, ps, err := RenderAll(ctx, d)
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		reasons := make([]string, len(ps))
		for i, p := range ps {
			reasons[i] = p.Reason
		}
		return nil, fmt.Errorf("render: %s", strings.Join(reasons, "; "))
	}
	plan := &Plan{Instances: insts, Packages: map[string][]string{}}
	add := func(s Step) string {
		s.Spec.ID = ID(s.Spec.Node, s.Spec.Component, s.Spec.Action)
		plan.Steps = append(plan.Steps, s)
		return s.Spec.ID
	}
	nodeJobs := map[string][]string{}
	for _, job := range contract.SortedKeys(d.Jobs) {
		for _, ip := range d.Jobs[job] {
			nodeJobs[ip] = append(nodeJobs[ip], job)
		}
	}
	compileTimeout := int(in.CompileTimeout / time.Second)
	if compileTimeout == 0 {
		compileTimeout = 3600
	}
	lastOf := map[string]string{} // node → its layout step
	pkgStep := map[string]string{}
	for _, ip := range contract.SortedKeys(nodeJobs) {
		layout := Step{Spec: contract.Step{Node: ip, Component: in.NodeComponent, Action: "vcap", Key: "bosh.vcap", Script: layoutScript}, Prio: -50}
		layout.Spec.Hash = hashOf(layoutScript)
		if b := in.Base[ip]; b != "" {
			layout.After = []string{b}
		}
		lastOf[ip] = add(layout)
		order, owner, err := d.NodePackages(ip)
		if err != nil {
			return nil, err
		}
		hashes := map[string]string{}
		for i, p := range order {
			comp := owner[p.Name]
			if comp == "" {
				// A dependency only: its log goes with the first job that needs
				// something on this node.
				comp = nodeJobs[ip][0]
				for _, q := range order[i:] {
					if owner[q.Name] != "" {
						comp = owner[q.Name]
						break
					}
				}
			}
			comp = d.CompOf(comp)
			deps := []string{}
			after := []string{lastOf[ip]}
			for _, dep := range p.Dependencies {
				deps = append(deps, dep+"="+hashes[dep])
				after = append(after, pkgStep[ip+"/"+dep])
			}
			hashes[p.Name] = hashOf(p.Name, p.Version, p.SHA1, strings.Join(deps, ","))
			s := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "compile-" + p.Name, Key: "bosh.package." + p.Name,
				Hash: hashes[p.Name], Script: compileScript(p, in.PackageURL(p)), TimeoutS: compileTimeout}, After: after, Prio: i}
			pkgStep[ip+"/"+p.Name] = add(s)
			plan.Packages[ip] = append(plan.Packages[ip], p.Name)
		}
	}
	for k, inst := range insts {
		ip, job := inst.Node, inst.Job
		spec := d.Release.Specs[job]
		comp := d.CompOf(job)
		prio := 1000 + 10*jobOrder(d, job)
		apply := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "apply", Key: "bosh.job." + job + ".apply", Hash: inst.Hash,
			Files: inst.Files, Script: applyScript(job, inst.Hash, spec.Packages)}, After: []string{lastOf[ip]}, Prio: prio}
		for _, p := range spec.Packages {
			apply.After = append(apply.After, pkgStep[ip+"/"+p])
		}
		for _, prov := range d.linkProviders(job) {
			for _, pip := range d.Jobs[prov] {
				apply.After = append(apply.After, ID(pip, d.CompOf(prov), "start"))
			}
		}
		monitFile := stepFile("/etc/monit/conf.d/"+job, 0o600, []byte(inst.Monit))
		register := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "register", Key: "bosh.job." + job + ".register",
			Hash: hashOf(inst.Hash, inst.Monit), Files: []contract.StepFile{monitFile}, Script: registerScript(inst.Processes)},
			After: []string{ID(ip, comp, "pre-start")}, Prio: prio + 2}
		pre := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "pre-start", Key: "bosh.job." + job + ".pre-start",
			Hash: inst.Hash, Script: hookScript(job, "pre-start")}, After: []string{ID(ip, comp, "apply")}, Prio: prio + 1}
		start := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "start", Key: "bosh.job." + job + ".start",
			Hash: inst.Hash, Script: startScript(job, inst.Processes)}, After: []string{ID(ip, comp, "register")}, Prio: prio + 3}
		add(apply)
		add(pre)
		add(register)
		add(start)
		insts[k] = inst
	}
	return plan, nil
}

// NodePackages lists the packages a node's jobs need, with their
// dependencies, each after what it depends on; owner names, for each
// package a job names itself, the first such job on the node.
func (d *Deployment) NodePackages(ip string) ([]release.Package, map[string]string, error) {
	var want []string
	owner := map[string]string{}
	for _, job := range d.NodeJobs(ip) {
		for _, p := range d.Release.Specs[job].Packages {
			if owner[p] == "" {
				owner[p] = job
				want = append(want, p)
			}
		}
	}
	order, err := release.PackageOrder(d.Release.Packages, want)
	return order, owner, err
}

// NodeJobs lists the jobs placed on a node, by name.
func (d *Deployment) NodeJobs(ip string) []string {
	var out []string
	for _, job := range contract.SortedKeys(d.Jobs) {
		for _, x := range d.Jobs[job] {
			if x == ip {
				out = append(out, job)
			}
		}
	}
	return out
}

func jobOrder(d *Deployment, job string) int {
	for i, j := range d.Release.Jobs {
		if j.Name == job {
			return i
		}
	}
	return 0
}

// layoutScript makes BOSH's layout and its vcap user, as a stemcell has them.
const layoutScript = `set -eu
getent group vcap >/dev/null || groupadd --system vcap
id -u vcap >/dev/null 2>&1 || useradd --system -g vcap -d /var/vcap -s /bin/bash vcap
mkdir -p /var/vcap/packages /var/vcap/jobs /var/vcap/data/packages /var/vcap/data/jobs /var/vcap/data/compile /var/vcap/sys/log /var/vcap/sys/run /var/vcap/store
chown vcap:vcap /var/vcap/sys /var/vcap/sys/log /var/vcap/sys/run /var/vcap/store
echo "BOSH layout ready under /var/vcap"
`

// compileScript fetches a package from the engine, checks its sha1 and
// runs its packaging script with BOSH's environment, into a versioned
// directory that /var/vcap/packages/<name> links to. A version compiled
// before is not compiled again.
func compileScript(p release.Package, url string) string {
	return fmt.Sprintf(`set -eu
name=%[1]s version=%[2]s sha1=%[3]s url=%[4]s
dir=/var/vcap/data/packages/$name/$version
done=/var/vcap/data/packages/$name/.compiled-$version
if [ -e "$done" ] && [ -d "$dir" ]; then
  ln -sfn "$dir" /var/vcap/packages/$name
  echo "$name/$version is compiled already"
  exit 0
fi
work=/var/vcap/data/compile/$name
rm -rf "$work" "$dir" "$work.tgz"
mkdir -p "$work" "$dir"
curl -fsS --retry 3 --max-time 3600 -o "$work.tgz" "$url"
if ! echo "$sha1  $work.tgz" | sha1sum -c --status; then echo "package $name: the download does not match sha1 $sha1" >&2; exit 1; fi
tar -xzf "$work.tgz" -C "$work"
rm -f "$work.tgz"
ln -sfn "$dir" /var/vcap/packages/$name
echo "compiling $name/$version"
cd "$work"
rc=0
BOSH_COMPILE_TARGET="$work" BOSH_INSTALL_TARGET=/var/vcap/packages/$name BOSH_PACKAGE_NAME="$name" \
  BOSH_PACKAGE_VERSION="$version" BOSH_PACKAGES_DIR=/var/vcap/packages bash ./packaging >&2 || rc=$?
if [ $rc -ne 0 ]; then echo "packaging script of $name failed (exit $rc)" >&2; exit $rc; fi
cd /
rm -rf "$work"
touch "$done"
echo "compiled $name/$version into $dir"
`, kit.ShellQuote(p.Name), kit.ShellQuote(p.Version), kit.ShellQuote(p.SHA1), kit.ShellQuote(url))
}

// applyScript puts a job's new version in place: when another version
// runs, its drain script runs first (BOSH's protocol: a number of seconds
// to wait, or a negative one to ask again) and monit stops it; then
// /var/vcap/jobs/<job> links to the new version, with its packages.
func applyScript(job, hash string, packages []string) string {
	var links strings.Builder
	for _, p := range packages {
		fmt.Fprintf(&links, "ln -sfn /var/vcap/packages/%[1]s \"$new/packages/%[1]s\"\n", p)
	}
	return fmt.Sprintf(`set -eu
job=%[1]s
new=/var/vcap/data/jobs/$job/%[2]s
mkdir -p "$new" "$new/packages"
cur=$(readlink /var/vcap/jobs/$job 2>/dev/null || true)
procs=$(awk '$1=="check" && $2=="process" {gsub(/"/,"",$3); print $3}' /etc/monit/conf.d/$job 2>/dev/null || true)
running() { for p in $procs; do monit status "$p" 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+OK' && return 0; done; return 1; }
if [ -n "$cur" ] && [ "$cur" != "$new" ] && running; then
  if [ -x "$cur/bin/drain" ]; then
    echo "draining $job"
%[4]s  fi
  # The stop program's own drain is done already.
  mkdir -p /var/vcap/sys/run/$job && touch /var/vcap/sys/run/$job/.de-drained
  for p in $procs; do monit stop "$p" || true; done
  for i in $(seq 1 120); do running || break; sleep 0.5; done
  if running; then echo "$job did not stop within 60 s" >&2; exit 1; fi
  echo "stopped the previous version of $job"
fi
%[3]smkdir -p /var/vcap/sys/log/$job /var/vcap/sys/run/$job /var/vcap/data/$job
chown vcap:vcap /var/vcap/sys/log/$job /var/vcap/sys/run/$job /var/vcap/data/$job
chmod 755 "$new" "$new"/*/ 2>/dev/null || true
if [ -d /var/vcap/jobs/$job ] && [ ! -L /var/vcap/jobs/$job ]; then rm -rf /var/vcap/jobs/$job; fi
ln -sfn "$new" /var/vcap/jobs/$job
echo "$job applied: /var/vcap/jobs/$job -> $new"
`, kit.ShellQuote(job), hash, links.String(), drainScript(`"$cur/bin/drain"`, "$job", "job_changed hash_changed"))
}

// registerScript makes monit read a job's check and waits until it knows
// every process; a job without processes only has monit check its files.
func registerScript(procs []string) string {
	if len(procs) == 0 {
		return "set -eu\nmonit -t\nmonit reload\necho 'no process to supervise: the job is configured'\n"
	}
	q := make([]string, len(procs))
	for i, p := range procs {
		q[i] = kit.ShellQuote(p)
	}
	return fmt.Sprintf(`set -eu
monit -t
for i in $(seq 0 239); do
  known=1
  for p in %[1]s; do monit status "$p" >/dev/null 2>&1 || known=0; done
  if [ $known -eq 1 ]; then exit 0; fi
  if [ $((i %% 20)) -eq 0 ]; then monit reload; fi
  sleep 0.5
done
echo "monit does not know every process of the job 120 s after reload: %[1]s" >&2
exit 1
`, strings.Join(q, " "))
}

// hookScript runs a job's bin/<hook> (pre-start, post-start) as BOSH
// does, keeping its output in /var/vcap/sys/log/<job>/<hook>.std{out,err}.log
// and in the step's own output.
func hookScript(job, hook string) string {
	return fmt.Sprintf(`set -u
job=%[1]s hook=%[2]s
bin=/var/vcap/jobs/$job/bin/$hook
if [ ! -e "$bin" ]; then echo "$job has no $hook"; exit 0; fi
log=/var/vcap/sys/log/$job
mkdir -p "$log"
tmp=$(mktemp -d)
echo "running $hook of $job"
rc=0
"$bin" >"$tmp/out" 2>"$tmp/err" || rc=$?
tee -a "$log/$hook.stdout.log" <"$tmp/out"
tee -a "$log/$hook.stderr.log" <"$tmp/err" >&2
rm -rf "$tmp"
if [ $rc -ne 0 ]; then echo "$hook of $job failed (exit $rc)" >&2; fi
exit $rc
`, kit.ShellQuote(job), hook)
}

// startScript has monit start every process of a job and waits until each
// runs, then runs post-start.
func startScript(job string, procs []string) string {
	post := hookScript(job, "post-start")
	if len(procs) == 0 {
		return "echo 'no process to start: the job is configured'\n" + post
	}
	q := make([]string, len(procs))
	for i, p := range procs {
		q[i] = kit.ShellQuote(p)
	}
	return fmt.Sprintf(`set -u
procs=(%[1]s)
ok() { monit status "$1" 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+OK'; }
for p in "${procs[@]}"; do ok "$p" || monit start "$p"; done
failed=0
for i in $(seq 1 240); do
  all=1
  for p in "${procs[@]}"; do
    ok "$p" && continue
    all=0
    # monit drops a request that meets its reload: ask again every 10 s.
    if [ $((i %% 20)) -eq 0 ] && monit status "$p" 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+Not monitored'; then monit start "$p"; fi
    # monit could not run the start program: say so now, not in 120 s.
    if monit status "$p" 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+.*Execution failed'; then failed=$((failed+1)); fi
  done
  if [ $all -eq 1 ]; then echo "running: ${procs[*]}"; break; fi
  if [ $failed -ge 4 ]; then break; fi
  sleep 0.5
done
if [ $all -ne 1 ]; then
  for p in "${procs[@]}"; do monit status "$p" || true; done
  echo "not every process of the job runs after monit start (monit could not start it, or 120 s passed)" >&2
  for p in "${procs[@]}"; do
    echo "$p: monit says$(monit status "$p" 2>&1 | awk '/^[[:space:]]+status[[:space:]]/{$1=""; printf "%%s", $0}')" >&2
  done
  exit 1
fi
`, strings.Join(q, " ")) + post
}

// RemoveScript takes a job off a node that a later config no longer
// places it on: monit stops its processes (its drain runs first), forgets
// it, and the job's files and step markers go. Compiled packages stay:
// another job may use them, and they are versioned.
func RemoveScript(job string) string {
	return fmt.Sprintf(`set -u
job=%[1]s
f=/etc/monit/conf.d/$job
procs=$(awk '$1=="check" && $2=="process" {gsub(/"/,"",$3); print $3}' $f 2>/dev/null || true)
for p in $procs; do monit stop "$p" || true; done
for i in $(seq 1 120); do
  up=0
  for p in $procs; do monit status "$p" 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+OK' && up=1; done
  [ $up -eq 0 ] && break
  sleep 0.5
done
rm -f "$f"
monit reload || true
rm -rf /var/vcap/jobs/$job /var/vcap/data/jobs/$job
%[2]s
echo "removed $job"
`, kit.ShellQuote(job), nodefs.ClearMarkers("bosh.job."+job+"."))
}
