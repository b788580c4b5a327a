package bosh

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// layoutScript makes BOSH's layout and its vcap user, as a stemcell has
// them, and records in diskFile the size of the node's persistent disk,
// diskMB (0: none). The size is in the script, so a change of it changes
// the step's hash and the step runs again, before any job step.
func layoutScript(diskMB int) string {
	return fmt.Sprintf(`set -eu
getent group vcap >/dev/null || groupadd --system vcap
id -u vcap >/dev/null 2>&1 || useradd --system -g vcap -d /var/vcap -s /bin/bash vcap
mkdir -p /var/vcap/packages /var/vcap/jobs /var/vcap/data/packages /var/vcap/data/jobs /var/vcap/data/compile /var/vcap/sys/log /var/vcap/sys/run /var/vcap/store
chown vcap:vcap /var/vcap/sys /var/vcap/sys/log /var/vcap/sys/run /var/vcap/store
%secho "BOSH layout ready under /var/vcap"
`, recordDisk(diskMB))
}

// diskFile is where a node records the size in MB of the persistent disk
// the config gives it, 0 when none: its layout step writes it, so that a
// drain script, run later by a step or by monit, is told the size the
// node has (BOSH_JOB_NEXT_STATE). A node laid out before the engine
// recorded it has no such file, read as 0 (what drains were told then).
const diskFile = VcapDir + "/bosh/persistent_disk_mb"

// versionDisk, in a job version's dir, is the size diskFile held when
// that version was applied, written by its apply once it is linked: what
// its drain is told the disk was (BOSH_JOB_STATE) when an update or a
// removal stops it, since the layout step, which runs first, has already
// recorded a new size in diskFile. A size change alone stops no job: the
// running version keeps the size before it, which its next update tells.
const versionDisk = ".de/persistent_disk_mb"

// recordDisk is a shell snippet that writes diskMB in diskFile whole (a
// reader never sees it half written).
func recordDisk(diskMB int) string {
	return fmt.Sprintf("mkdir -p %[1]s\necho %[2]d >%[3]s.new\nmv -f %[3]s.new %[3]s\n", VcapDir+"/bosh", max(diskMB, 0), diskFile)
}

// readMB is a shell snippet that sets variable v to the size in MB that
// file (a shell word) holds, or to def (a shell word) when it is missing
// or holds no plain number of at most 9 digits: the value goes into a
// JSON environment variable as it is. A builtin read, no process.
func readMB(v, file, def string) string {
	return fmt.Sprintf(`%[1]s=; read -r %[1]s 2>/dev/null <%[2]s || true
case $%[1]s in ''|*[!0-9]*|??????????*) %[1]s=%[3]s ;; *) %[1]s=$((10#$%[1]s)) ;; esac
`, v, file, def)
}

// compileScript compiles packages level by level (packageLevels): a
// level's packages at once, as many as the node has CPUs, each in a
// subshell of its own (packageScript) whose output is kept apart and put
// out whole, its lines prefixed with the package's name, once the level
// ended. A package that fails ends the step after its level, its output's
// end on stderr (the step's error); the next level is not begun.
func compileScript(node string, levels [][]release.Package, url, cache func(release.Package) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "set -u\nnode_ip=%s\n%s", kit.ShellQuote(node), compiledFunctions)
	b.WriteString(`max=$(nproc 2>/dev/null || echo 1)
out=$(mktemp -d /var/vcap/data/compile/.out-XXXXXX) || exit 1
trap 'rm -rf "$out"' EXIT
# level I...: compile packages I at once (pkg_I, named pkgname[I]), then put
# out their output.
level() {
  local i failed=""
  for i in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$max" ]; do wait -n 2>/dev/null || true; done
    ( ( "pkg_$i" ) >"$out/$i.log" 2>&1; echo $? >"$out/$i.rc" ) &
  done
  wait
  for i in "$@"; do
    sed "s|^|[${pkgname[$i]}] |" "$out/$i.log"
    [ "$(cat "$out/$i.rc" 2>/dev/null)" = 0 ] || failed="$failed $i"
  done
  for i in $failed; do tail -n 20 "$out/$i.log" | sed "s|^|[${pkgname[$i]}] |" >&2; done
  if [ -n "$failed" ]; then
    for i in $failed; do echo "package ${pkgname[$i]} failed to compile" >&2; done
    exit 1
  fi
}
`)
	n := 0
	var calls strings.Builder
	for _, lv := range levels {
		calls.WriteString("level")
		for _, p := range lv {
			fmt.Fprintf(&b, "pkgname[%d]=%s\npkg_%d() {\n%s}\n", n, kit.ShellQuote(p.Name), n, packageScript(p, url(p), cache(p)))
			fmt.Fprintf(&calls, " %d", n)
			n++
		}
		calls.WriteString("\n")
	}
	b.WriteString(calls.String())
	return b.String()
}

// packageScript fetches a package from the engine, checks its sha1 and
// runs its packaging script with BOSH's environment into a versioned
// directory, or, for a package of a compiled release, unpacks it there;
// only once that succeeded does /var/vcap/packages/<name> link to it, so
// that a failed compile leaves the running version's link, and the job
// that uses it, as they were. A version compiled before is not compiled
// again. cache, when set, is where the engine keeps this package compiled
// (compiledFunctions): a node fetches it from there for its OS instead of
// compiling, and puts there what it compiled.
func packageScript(p release.Package, url, cache string) string {
	build := `tar -xzf "$work.tgz" -C "$work"
rm -f "$work.tgz"
echo "compiling $name/$version"
cd "$work"
rc=0
BOSH_COMPILE_TARGET="$work" BOSH_INSTALL_TARGET="$dir" BOSH_PACKAGE_NAME="$name" \
  BOSH_PACKAGE_VERSION="$version" BOSH_PACKAGES_DIR=/var/vcap/packages bash ./packaging >&2 || rc=$?
cd /
if [ $rc -ne 0 ]; then
  rm -rf "$work" "$dir"
  echo "packaging script of $name failed (exit $rc); /var/vcap/packages/$name is unchanged" >&2
  exit $rc
fi
`
	if p.Compiled() {
		// The node's OS stands in for the stemcell it was compiled on.
		build = fmt.Sprintf(`echo "installing $name/$version as compiled on %[1]s"
rc=0
tar -xzf "$work.tgz" -C "$dir" >&2 || rc=$?
rm -f "$work.tgz"
if [ $rc -ne 0 ]; then
  rm -rf "$work" "$dir"
  echo "compiled package $name does not unpack (exit $rc); /var/vcap/packages/$name is unchanged" >&2
  exit $rc
fi
`, kit.ShellQuote(p.Stemcell))
	}
	fetch, share, shareKept := "", "", ""
	if cache != "" && !p.Compiled() {
		fetch = `if fetch_compiled; then
  touch "$done"
  ln -sfn "$dir" /var/vcap/packages/$name
  echo "fetched $name/$version compiled for $os from the engine"
  exit 0
fi
`
		share, shareKept = "share_compiled\n", "  share_compiled\n"
	}
	return fmt.Sprintf(`set -eu
name=%[1]s version=%[2]s sha1=%[3]s url=%[4]s cache=%[6]s
dir=/var/vcap/data/packages/$name/$version
done=/var/vcap/data/packages/$name/.compiled-$version
work=/var/vcap/data/compile/$name
if [ -e "$done" ] && [ -d "$dir" ]; then
  ln -sfn "$dir" /var/vcap/packages/$name
  echo "$name/$version is compiled already"
%[8]s  exit 0
fi
rm -rf "$work" "$dir" "$work.tgz"
mkdir -p "$work" "$dir"
%[7]scurl -fsS --retry 3 --max-time 3600 -o "$work.tgz" "$url"
if ! echo "$sha1  $work.tgz" | sha1sum -c --status; then echo "package $name: the download does not match sha1 $sha1" >&2; exit 1; fi
%[5]srm -rf "$work"
touch "$done"
ln -sfn "$dir" /var/vcap/packages/$name
echo "compiled $name/$version into $dir"
%[9]s`, kit.ShellQuote(p.Name), kit.ShellQuote(p.Version), kit.ShellQuote(p.SHA1), kit.ShellQuote(url), build, kit.ShellQuote(cache), fetch, shareKept, share)
}

// compiledFunctions are the shell functions a compile step shares its
// packages with, through the engine ($cache: <engine>/compiled/<fp>):
// os names the node's OS and machine (debian-12-x86_64), which a compiled
// package is kept for; fetch_compiled unpacks the engine's into $dir (no
// such package, or one that does not unpack, leaves $dir empty and
// fails); share_compiled puts $dir there, as node $node_ip (an engine that
// has it answers before the body is sent), with
// the node's upload token ($DE_SECRET_UPLOAD) read by curl from its
// stdin, never in argv. A share that fails is said and changes nothing:
// the next node compiles for itself.
const compiledFunctions = `os=$( . /etc/os-release 2>/dev/null; printf '%s-%s' "${ID:-linux}" "${VERSION_ID:-0}" )-$(uname -m)
os=$(printf '%s' "$os" | tr -c 'A-Za-z0-9._-' '_')
fetch_compiled() {
  curl -fsS --max-time 3600 -o "$work.ctgz" "$cache/$os.tgz" 2>/dev/null || { rm -f "$work.ctgz"; return 1; }
  if ! tar --no-same-owner -xzf "$work.ctgz" -C "$dir" >&2; then
    rm -rf "$work.ctgz" "$dir"; mkdir -p "$dir"
    echo "the engine's compiled $name/$version for $os does not unpack: compiling it here"
    return 1
  fi
  rm -f "$work.ctgz"
}
share_compiled() {
  [ -n "${DE_SECRET_UPLOAD:-}" ] || return 0
  local up=$work.up.tgz
  if tar -czf "$up" -C "$dir" . &&
    printf 'header = "Authorization: Bearer %s"\nheader = "X-DE-Node: %s"\n' "$DE_SECRET_UPLOAD" "$node_ip" |
      curl -fsS --max-time 3600 -K - -o /dev/null -T "$up" "$cache/$os.tgz"; then
    echo "put $name/$version compiled for $os on the engine"
  else
    echo "could not put $name/$version compiled for $os on the engine; other nodes compile it themselves"
  fi
  rm -f "$up"
}
`

// applyScript puts a job's new version in place. When another version
// runs, it is stopped as BOSH stops a job before an update: its pre-stop
// (told the VM, the instance and the deployment stay), its drain (a
// number of seconds to wait, or a negative one to ask again), monit's stop
// of every process, then its post-stop; a pre-stop or post-stop that fails
// fails the step. Then /var/vcap/jobs/<job> links to the new version, with
// its packages, and the new version records the node's disk size it was
// applied with (versionDisk). The drain is told the disk was what the
// running version recorded and will be what the node recorded (diskFile):
// the layout step, which runs before, records a changed size, so the
// running version's record is the size before the change.
func applyScript(job, hash string, packages []string) string {
	var links strings.Builder
	for _, p := range packages {
		fmt.Fprintf(&links, "ln -sfn /var/vcap/packages/%[1]s \"$new/packages/%[1]s\"\n", p)
	}
	return fmt.Sprintf(`set -eu
job=%[1]s
new=/var/vcap/data/jobs/$job/%[2]s
mkdir -p "$new" "$new/packages" "$new/.de"
cur=$(readlink /var/vcap/jobs/$job 2>/dev/null || true)
%[8]s%[4]sif [ -n "$cur" ] && [ "$cur" != "$new" ] && running; then
%[5]s  if [ $hrc -ne 0 ]; then echo "the running version of $job is left as it was" >&2; exit 1; fi
  if [ -x "$cur/bin/drain" ]; then
    echo "draining $job"
%[6]s  fi
%[7]s  if [ $hrc -ne 0 ]; then exit 1; fi
  echo "stopped the previous version of $job"
fi
%[3]smkdir -p /var/vcap/sys/log/$job /var/vcap/sys/run/$job /var/vcap/data/$job
chown vcap:vcap /var/vcap/sys/log/$job /var/vcap/sys/run/$job /var/vcap/data/$job
chmod 755 "$new" "$new"/*/ 2>/dev/null || true
if [ -d /var/vcap/jobs/$job ] && [ ! -L /var/vcap/jobs/$job ]; then rm -rf /var/vcap/jobs/$job; fi
ln -sfn "$new" /var/vcap/jobs/$job
echo "$disk_node" >"$new/%[9]s"
echo "$job applied: /var/vcap/jobs/$job -> $new"
`, kit.ShellQuote(job), hash, links.String(), processesOf, hookRun(`"$cur"`, "pre-stop", nextState("keep", "keep", "keep")),
		readMB("disk_was", `"$cur/`+versionDisk+`"`, "$disk_node")+drainScript(`"$cur/bin/drain"`, "$job", "job_changed hash_changed", "$disk_was", "$disk_node"),
		stopAndPostStop(`"$cur"`, "exit 1"), readMB("disk_node", diskFile, "0"), versionDisk)
}

// processesOf is a shell snippet that reads the processes of $job from its
// monit file into procs, and defines running: whether any of them runs.
const processesOf = `procs=$(awk '$1=="check" && $2=="process" {gsub(/"/,"",$3); print $3}' /etc/monit/conf.d/$job 2>/dev/null || true)
running() { for p in $procs; do monit status "$p" 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+OK' && return 0; done; return 1; }
`

// stopAndPostStop is a shell snippet that has monit stop every process of
// $job (its drain done: the stop wrappers skip theirs), waits up to 60 s
// for them to stop (else it runs stuck), then runs the post-stop of the
// job version in dir, leaving its exit code in hrc.
func stopAndPostStop(dir, stuck string) string {
	return `  # Pre-stop and drain are done: the stop programs' wrappers skip theirs.
  mkdir -p /var/vcap/sys/run/$job && touch /var/vcap/sys/run/$job/.de-drained
  for p in $procs; do monit stop "$p" || true; done
  for i in $(seq 1 120); do running || break; sleep 0.5; done
  if running; then echo "$job did not stop within 60 s" >&2; ` + stuck + `; fi
  rm -f /var/vcap/sys/run/$job/.de-drained
` + hookRun(dir, "post-stop", "")
}

// nextState is the environment BOSH gives a pre-stop script: whether the
// VM, the instance and the deployment are kept ("keep") or deleted
// ("delete") after the stop.
func nextState(vm, instance, deployment string) string {
	return "BOSH_VM_NEXT_STATE=" + vm + " BOSH_INSTANCE_NEXT_STATE=" + instance + " BOSH_DEPLOYMENT_NEXT_STATE=" + deployment + " "
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
// and in the step's own output; the step fails when it does.
func hookScript(job, hook string) string {
	return fmt.Sprintf("set -u\njob=%s\n%sexit $hrc\n", kit.ShellQuote(job), hookRun("/var/vcap/jobs/$job", hook, ""))
}

// hookRun is a shell snippet that runs bin/<hook> of the job version in
// dir (a shell word; $job names the job) as BOSH runs a lifecycle script:
// with env before it (assignments, or ""), its output appended to
// /var/vcap/sys/log/$job/<hook>.std{out,err}.log and in the step's own
// output. It leaves the script's exit code in hrc: 0 when the job has no
// such script.
func hookRun(dir, hook, env string) string {
	return fmt.Sprintf(`hrc=0
if [ ! -e %[1]s/bin/%[2]s ]; then
  echo "$job has no %[2]s"
else
  mkdir -p /var/vcap/sys/log/$job
  htmp=$(mktemp -d)
  echo "running %[2]s of $job"
  %[3]s%[1]s/bin/%[2]s >"$htmp/out" 2>"$htmp/err" || hrc=$?
  tee -a /var/vcap/sys/log/$job/%[2]s.stdout.log <"$htmp/out"
  tee -a /var/vcap/sys/log/$job/%[2]s.stderr.log <"$htmp/err" >&2
  rm -rf "$htmp"
  if [ $hrc -ne 0 ]; then echo "%[2]s of $job failed (exit $hrc)" >&2; fi
fi
`, dir, hook, env)
}

// NotDown is a start step's Holds (contract.Step): it fails when monit
// says one of procs does not run while it watches it (gone, or its start
// failed), so that a deploy starts an instance whose steps did not change
// but whose process went (a node rebooted, a check that only alerts). A
// process someone stopped (monit no longer watches it) holds, and so does
// one monit cannot be asked about now (it reloads): a start step run then
// would restart a running process.
//
// Every plan and every chain asks it of each start step, so in bash it
// asks monit's HTTP interface through /dev/tcp, with no process (monit's
// client costs 10–40 ms of CPU on a busy node); in another shell, or
// where monit answers otherwise (a password), it runs monit's client.
func NotDown(procs ...string) string {
	var parts []string
	for _, p := range procs {
		if p == "" {
			continue
		}
		client := "monit status " + kit.ShellQuote(p) + " 2>/dev/null | grep -Eq '^[[:space:]]+status[[:space:]]+.*(Does not exist|Execution failed)'"
		if !plainName.MatchString(p) {
			parts = append(parts, "! "+client)
			continue
		}
		parts = append(parts, fmt.Sprintf(`! { de_s=-; if [ -n "${BASH_VERSION:-}" ] && { exec 9<>/dev/tcp/%[1]s; } 2>/dev/null; then `+
			`printf 'GET /_status?format=text&service=%[2]s HTTP/1.0\r\n\r\n' >&9; de_s=; `+
			`while read -r de_k de_v <&9; do case $de_k in HTTP/*) case $de_v in 200*|400*) ;; *) de_s=-; break ;; esac ;; status) de_s=$de_v; break ;; esac; done; exec 9>&-; fi; `+
			`if [ "$de_s" = - ]; then %[3]s; else case $de_s in *"Does not exist"*|*"Execution failed"*) true ;; *) false ;; esac; fi; }`,
			nodefs.MonitHTTP, p, client))
	}
	return strings.Join(parts, " && ")
}

// plainName is a process name monit's HTTP interface takes as it is.
var plainName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

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
// places it on. A running job is stopped as BOSH stops an instance it
// deletes: its pre-stop, told the instance goes (BOSH_VM_NEXT_STATE and
// BOSH_INSTANCE_NEXT_STATE delete, BOSH_DEPLOYMENT_NEXT_STATE keep), its
// drain, monit's stop, its post-stop; a hook that fails is reported and
// the removal goes on, since a job that cannot stop cleanly must still
// leave. Then monit forgets it, and the job's files and step markers go.
// Compiled packages stay: another job may use them, and they are
// versioned. The drain is told the disk was what the running version
// recorded (versionDisk, else the node's diskFile) and will be 0: BOSH
// says 0 for an instance it deletes, and the engine's instance is the job
// on the node, which goes, as the pre-stop is told (delete), even when
// other jobs keep the node and its disk. The node's record stays: it is
// the node's, not the job's.
func RemoveScript(job string) string {
	return fmt.Sprintf(`set -u
job=%[1]s
f=/etc/monit/conf.d/$job
%[3]sif [ -e /var/vcap/jobs/$job ] && running; then
%[4]s  if [ -x /var/vcap/jobs/$job/bin/drain ]; then
    echo "draining $job"
%[5]s  fi
%[6]selse
  # Nothing of it runs (its start failed?): monit stops retrying it.
  for p in $procs; do monit stop "$p" || true; done
fi
rm -f "$f"
monit reload || true
rm -rf /var/vcap/jobs/$job /var/vcap/data/jobs/$job /var/vcap/sys/run/$job/.de-drained
%[2]s
echo "removed $job"
`, kit.ShellQuote(job), nodefs.ClearMarkers("bosh.job."+job+"."), processesOf,
		hookRun("/var/vcap/jobs/$job", "pre-stop", nextState("delete", "delete", "keep")),
		readMB("disk_node", diskFile, "0")+readMB("disk_was", "/var/vcap/jobs/$job/"+versionDisk, "$disk_node")+
			drainScript("/var/vcap/jobs/$job/bin/drain", "$job", "job_shutdown hash_unchanged", "$disk_was", "0"),
		stopAndPostStop("/var/vcap/jobs/$job", "echo 'removing it all the same' >&2"))
}

// drainScript runs a job's bin/drain with BOSH's protocol: its last line
// is a number of seconds to wait, or, negative, seconds until it is asked
// again with job_check_status; all of it bounded by 10 minutes. Its
// BOSH_JOB_STATE and BOSH_JOB_NEXT_STATE (jobState) give the persistent
// disk's size now and after the stop: was and next, shell words of a
// number (readMB's variables, or a literal).
func drainScript(bin, job, args, was, next string) string {
	return fmt.Sprintf(`n=$(%[4]s%[1]s %[3]s 2>>/var/vcap/sys/log/%[2]s/drain.stderr.log | tail -n 1 | tr -dc '0-9-')
deadline=$(( $(date +%%s) + 600 ))
while [ -n "$n" ] && [ "$n" -lt 0 ] && [ "$(date +%%s)" -lt $deadline ]; do
  sleep $(( -n ))
  n=$(%[4]s%[1]s job_check_status hash_unchanged 2>>/var/vcap/sys/log/%[2]s/drain.stderr.log | tail -n 1 | tr -dc '0-9-')
done
if [ -n "$n" ] && [ "$n" -gt 0 ]; then sleep $(( n < 600 ? n : 600 )); fi
`, bin, job, args, jobState(was, next))
}

// jobState is the environment BOSH gives a drain script: the job's state
// now and after the stop, as JSON ({"persistent_disk":MB}, 0 for no
// disk), in double quotes: was and next expand to digits alone.
func jobState(was, next string) string {
	return `BOSH_JOB_STATE="{\"persistent_disk\":` + was + `}" BOSH_JOB_NEXT_STATE="{\"persistent_disk\":` + next + `}" `
}

// drainedFor is how long the engine's own pre-stop and drain (before an
// update or a removal) stand in for the stop wrappers': a marker older
// than this, left by a step that failed, is ignored.
const drainedFor = "10"

// stopWrapper is the stop program monit runs in place of a job's own: the
// job's pre-stop (told everything is kept) and drain first, as BOSH runs
// them before it stops a job, unless the engine ran them already for an
// update or a removal (its marker, younger than drainedFor minutes, stays
// until every process stopped, so a job of several processes is not
// drained once per process). A pre-stop that fails is logged; the stop
// goes on. A stop changes no disk: the drain is told the node's recorded
// size (diskFile) now and after it.
func stopWrapper(job, stop string) string {
	return fmt.Sprintf(`#!/bin/bash
# Written by the deployment engine: the job's pre-stop and drain run
# before monit stops it (unless the engine ran them already).
job=%[1]s
marker=/var/vcap/sys/run/$job/.de-drained
if [ -z "$(find "$marker" -mmin -%[5]s 2>/dev/null)" ]; then
%[4]sif [ -x /var/vcap/jobs/$job/bin/drain ]; then
%[2]sfi
fi
exec %[3]s
`, kit.ShellQuote(job), readMB("disk_node", diskFile, "0")+drainScript("/var/vcap/jobs/$job/bin/drain", "$job", "job_shutdown hash_unchanged", "$disk_node", "$disk_node"), stop,
		hookRun("/var/vcap/jobs/$job", "pre-stop", nextState("keep", "keep", "keep")), drainedFor)
}

// storeDir is where an instance's persistent disk is, as BOSH puts it.
const storeDir = "/var/vcap/store"

// storeScript makes device the node's persistent disk: formatted ext4 the
// first time (when it holds no filesystem), mounted at /var/vcap/store,
// and in /etc/fstab (nofail) so that the machine mounts it at boot. It
// refuses, saying why, to mount over data already in the store, or a
// store another device holds: data is never hidden or formatted away. Its
// Holds (mounted) makes a deploy mount it again after a boot that did not.
func storeScript(device string) string {
	return fmt.Sprintf(`set -eu
dev=%[1]s
store=%[2]s
if [ ! -b "$dev" ]; then
  echo "$dev is no block device on this machine: the cloud config's disks name it for this machine" >&2
  exit 1
fi
mkdir -p "$store"
if mountpoint -q "$store"; then
  cur=$(findmnt -n -o SOURCE --target "$store")
  if [ "$(readlink -f "$cur")" != "$(readlink -f "$dev")" ]; then
    echo "$store is $cur, not $dev: left as it is; unmount it, or name $cur in the cloud config's disks" >&2
    exit 1
  fi
  echo "$dev is mounted on $store"
  exit 0
fi
if [ -n "$(ls -A "$store")" ]; then
  echo "$store holds data on the machine's own disk: $dev is not mounted over it; move the data onto $dev, then deploy again" >&2
  exit 1
fi
if ! blkid -p "$dev" >/dev/null 2>&1; then
  mkfs.ext4 -q -F -L vcap-store "$dev"
  echo "formatted $dev (ext4): it held no filesystem"
fi
mount "$dev" "$store"
uuid=$(blkid -s UUID -o value "$dev")
if [ -n "$uuid" ] && ! grep -qs " $store " /etc/fstab; then
  echo "UUID=$uuid $store ext4 defaults,nofail 0 2" >> /etc/fstab
fi
chown vcap:vcap "$store" 2>/dev/null || true
echo "mounted $dev on $store"
`, kit.ShellQuote(device), storeDir)
}
