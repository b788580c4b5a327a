package bosh

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/kit"
)

// bpm (bpm-release) runs a job's processes in runc containers from the
// job's config/bpm.yml; the engine runs on bare metal and ships no runc.
// It stands in for bpm: at render time it reads each job's bpm.yml here,
// in Go, and writes per process a launch file into the job's version dir
// (bpmDir/<process>: every value shell-quoted); the job named bpm gets
// the engine's stand-in (bpmStandIn) as its bin/bpm, which monit files
// call (`/var/vcap/jobs/bpm/bin/bpm start JOB [-p PROCESS]`) and which
// runs the process as bpm would, without a container.
const (
	// BPMJob is the job whose bin/bpm monit files run: bpm-release's.
	BPMJob = "bpm"
	// bpmConfigDest is where a job's bpm config is among its templates.
	bpmConfigDest = "config/bpm.yml"
	// bpmDir holds a job version's launch files, one per bpm process.
	bpmDir = ".de/bpm"
	// bpmBin is the path monit files run bpm by.
	bpmBin = JobsDir + "/" + BPMJob + "/bin/bpm"
	// bpmMaxConfig bounds a bpm.yml (a rendered template's output).
	bpmMaxConfig = 1 << 20
	// bpmMaxProcesses bounds a job's bpm processes.
	bpmMaxProcesses = 64
)

// bpmLaunchFile is a bpm process's launch file, which the stand-in
// sources: shell assignments whose every value is quoted. The
// environment is the config's, with bpm's defaults for TMPDIR, LANG,
// PATH and HOME when it does not set them.
func bpmLaunchFile(job string, p BPMProcess) string {
	env := map[string]string{
		"TMPDIR": VcapDir + "/data/" + job + "/tmp",
		"LANG":   "en_US.UTF-8",
		"PATH":   JobsDir + "/" + job + "/bin:/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin:.",
		"HOME":   VcapDir + "/data/" + job,
	}
	for k, v := range p.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	quote := func(xs []string) string {
		q := make([]string, len(xs))
		for i, x := range xs {
			q[i] = kit.ShellQuote(x)
		}
		return strings.Join(q, " ")
	}
	envs := make([]string, len(keys))
	for i, k := range keys {
		envs[i] = k + "=" + env[k]
	}
	workdir := p.Workdir
	if workdir == "" {
		workdir = JobsDir + "/" + job
	}
	user := "vcap"
	if p.Privileged {
		user = "root"
	}
	core := ""
	if p.CoreFileSize != "" {
		// bash's ulimit -c counts 1024-byte blocks.
		n, _ := strconv.ParseUint(p.CoreFileSize, 10, 63)
		core = strconv.FormatUint((n+1023)/1024, 10)
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	return fmt.Sprintf(`# Process %[1]s of job %[2]s, from its config/bpm.yml, as the
# deployment engine's bpm stand-in (%[3]s) runs it: no container.
executable=%[4]s
args=(%[5]s)
env=(%[6]s)
workdir=%[7]s
pre_start=%[8]s
user=%[9]s
open_files=%[10]s
processes=%[11]s
core_blocks=%[12]s
ephemeral_disk=%[13]s
persistent_disk=%[14]s
shutdown_signal=%[15]s
notes=(%[16]s)
`, p.Name, job, bpmBin, kit.ShellQuote(p.Executable), quote(p.Args), quote(envs), kit.ShellQuote(workdir),
		kit.ShellQuote(p.PreStart), user, kit.ShellQuote(p.OpenFiles), kit.ShellQuote(p.Processes), kit.ShellQuote(core),
		flag(p.EphemeralDisk), flag(p.PersistentDisk), p.ShutdownSignal, quote(p.Notes))
}

// bpmStopWait is how long the stand-in waits for a process to stop after
// its shutdown signal before it kills it: bpm's 20 s.
const bpmStopWait = 20

// bpmStandIn is the engine's bpm: bin/bpm of the job named bpm. It runs
// the processes of a job's bpm config from their launch files
// (bpmLaunchFile) with bpm's semantics and paths: PROCESS defaults to
// JOB; start runs the pre_start hook, then the executable with its args,
// environment and workdir, as vcap (root when unsafe.privileged), in a
// session of its own, its output appended to
// /var/vcap/sys/log/JOB/PROCESS.std{out,err}.log, its pid in
// /var/vcap/sys/run/bpm/JOB/PROCESS.pid; a running process is left as it
// is. stop sends the shutdown signal to its process group, waits up to
// 20 s, sends QUIT then KILL, and removes the pidfile. A lock per
// process keeps two calls from racing (monit, the engine).
var bpmStandIn = fmt.Sprintf(`#!/bin/bash
# bpm, as the deployment engine stands in for it on bare metal: the
# processes of a job's config/bpm.yml, run without a container (no runc).
# The engine wrote each process's launch file from the job's bpm.yml.
set -u
stop_wait=%[6]d
usage() {
  echo "usage: bpm start|stop|pid JOB [-p PROCESS] | bpm run JOB [-p PROCESS] [-e NAME=VALUE]... | bpm list | bpm version" >&2
  exit 1
}
plain() { [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]]; }
cmd=${1:-}
[ $# -gt 0 ] && shift
job= proc= extra=()
while [ $# -gt 0 ]; do
  case $1 in
    -p|--process) [ $# -ge 2 ] || usage; proc=$2; shift 2 ;;
    --process=*) proc=${1#--process=}; shift ;;
    -e|--env) [ $# -ge 2 ] && [ "$cmd" = run ] || usage; extra+=("$2"); shift 2 ;;
    -*) usage ;;
    *) [ -z "$job" ] || usage; job=$1; shift ;;
  esac
done
[ -n "$proc" ] || proc=$job
# Found on the caller's PATH, before a process's own PATH (its job's bin
# first) replaces it.
setsid=$(command -v setsid) setpriv=$(command -v setpriv) flock=$(command -v flock)

# running: whether the pidfile names a live process leading its own
# session (what start made), leaving its pid in pid.
running() {
  pid=
  read -r pid 2>/dev/null <"$pidfile" || true
  case $pid in ''|*[!0-9]*) return 1 ;; esac
  local st
  st=$(cat /proc/$pid/stat 2>/dev/null) || return 1
  st=${st##*) }
  set -- $st
  [ "$1" != Z ] && [ "$4" = "$pid" ]
}

# load: the launch file of $job's $proc, or exit naming what is missing.
load() {
  executable= args=() env=() workdir= pre_start= user=vcap open_files= processes= core_blocks=
  ephemeral_disk=0 persistent_disk=0 shutdown_signal=TERM notes=()
  launch=%[1]s/$job/%[2]s/$proc
  if [ ! -f "$launch" ]; then
    [ "${1:-}" = optional ] && return 0
    echo "bpm: process $proc is not in job $job's bpm config (no $launch)" >&2
    exit 1
  fi
  . "$launch"
}

lock() {
  mkdir -p %[3]s/bpm/$job
  exec 9>%[3]s/bpm/$job/$proc.lock
  "$flock" -w 60 9 || { echo "bpm: $job/$proc is locked by another bpm" >&2; exit 1; }
}

# as: the command that runs what follows as the process's user.
as() {
  if [ "$user" = root ]; then "$@"; else "$setpriv" --reuid=vcap --regid=vcap --init-groups -- "$@"; fi
}

# limited: in a subshell, the environment and limits of the process.
limited() {
  exec 9>&-
  local v
  for v in $(compgen -e); do unset "$v" 2>/dev/null; done
  export "${env[@]}"
  [ -z "$open_files" ] || ulimit -n "$open_files" || exit 1
  [ -z "$processes" ] || ulimit -u "$processes" || exit 1
  [ -z "$core_blocks" ] || ulimit -c "$core_blocks" || exit 1
  cd "$workdir" || exit 1
}

start() {
  load
  lock
  if running; then echo "bpm: $job/$proc runs already (pid $pid)"; exit 0; fi
  rm -f "$pidfile"
  log=%[4]s/$job/$proc
  mkdir -p %[4]s/$job %[5]s/data/$job/tmp
  chown vcap:vcap %[4]s/$job %[5]s/data/$job %[5]s/data/$job/tmp
  if [ "$persistent_disk" = 1 ] && [ -d %[5]s/store ]; then
    mkdir -p %[5]s/store/$job && chown vcap:vcap %[5]s/store/$job
  fi
  local n
  for n in "${notes[@]}"; do echo "bpm stand-in: $job/$proc: $n" >>"$log.stderr.log"; done
  if [ -n "$pre_start" ]; then
    local rc=0
    ( limited; as "$pre_start" ) </dev/null >>"$log.stdout.log" 2>>"$log.stderr.log" || rc=$?
    if [ $rc -ne 0 ]; then
      echo "bpm: the pre_start hook of $job/$proc failed (exit $rc): see $log.stderr.log" >&2
      exit 1
    fi
  fi
  # setsid does not fork (the subshell leads no process group), nor does
  # setpriv: the pid is the executable's, which leads its own session.
  (
    limited
    if [ "$user" = root ]; then exec "$setsid" -- "$executable" "${args[@]}"; fi
    exec "$setsid" -- "$setpriv" --reuid=vcap --regid=vcap --init-groups -- "$executable" "${args[@]}"
  ) </dev/null >>"$log.stdout.log" 2>>"$log.stderr.log" &
  echo $! >"$pidfile.new"
  mv -f "$pidfile.new" "$pidfile"
  echo "bpm: started $job/$proc (pid $!)"
}

# run: the process in the foreground, as an errand runs it: its output
# the caller's, its exit status bpm's; -e adds to its environment.
run() {
  load
  local kv
  for kv in "${extra[@]}"; do
    if [[ ! $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then echo "bpm: -e $kv: want NAME=VALUE" >&2; exit 1; fi
    env+=("$kv")
  done
  mkdir -p %[5]s/data/$job/tmp
  chown vcap:vcap %[5]s/data/$job %[5]s/data/$job/tmp
  if [ -n "$pre_start" ]; then
    ( limited; as "$pre_start" ) </dev/null || { echo "bpm: the pre_start hook of $job/$proc failed" >&2; exit 1; }
  fi
  ( limited; as "$executable" "${args[@]}" ) </dev/null
}

stop() {
  load optional
  lock
  if ! running; then rm -f "$pidfile"; echo "bpm: $job/$proc is not running"; exit 0; fi
  case $shutdown_signal in INT) sig=INT ;; *) sig=TERM ;; esac
  kill -$sig -- -$pid 2>/dev/null || kill -$sig $pid 2>/dev/null
  local i
  for ((i = 0; i < stop_wait * 10; i++)); do running || break; sleep 0.1; done
  if running; then
    echo "bpm: $job/$proc did not stop within $stop_wait s of SIG$sig: QUIT, then KILL" >&2
    kill -QUIT -- -$pid 2>/dev/null
    for ((i = 0; i < 10; i++)); do running || break; sleep 0.1; done
  fi
  # What is left of its process group goes with it, as a container's would.
  kill -KILL -- -$pid 2>/dev/null
  rm -f "$pidfile"
  echo "bpm: stopped $job/$proc"
}

list() {
  local f j p name st rows=() w=4
  for f in %[1]s/*/%[2]s/*; do
    [ -f "$f" ] || continue
    p=${f##*/}; j=${f%%/%[2]s/*}; j=${j##*/}
    name=$j; [ "$p" = "$j" ] || name=$j.$p
    pidfile=%[3]s/bpm/$j/$p.pid
    if running; then st="$pid running"; else st="- stopped"; fi
    rows+=("$name $st")
    [ ${#name} -le $w ] || w=${#name}
  done
  printf "%%-${w}s %%-7s %%s\n" Name Pid Status
  local r
  for r in "${rows[@]}"; do set -- $r; printf "%%-${w}s %%-7s %%s\n" "$1" "$2" "$3"; done
}

case $cmd in
  start|stop|pid|run)
    [ -n "$job" ] || usage
    if ! plain "$job" || ! plain "$proc"; then echo "bpm: $job/$proc: not a plain job or process name" >&2; exit 1; fi
    pidfile=%[3]s/bpm/$job/$proc.pid ;;
  list|version) [ -z "$job" ] || usage ;;
  *) usage ;;
esac
case $cmd in
  start) start ;;
  run) run ;;
  stop) stop ;;
  pid) if running; then echo "$pid"; else echo "bpm: process is not running or could not be found" >&2; exit 1; fi ;;
  list) list ;;
  version) echo "deployment-engine bpm stand-in (no container)" ;;
esac
`, JobsDir, bpmDir, RunDir, LogDir, VcapDir, bpmStopWait)

// bpmFiles is a job's rendered files as the engine installs them: the job
// named bpm is the engine's bpm, its bin/bpm alone (its own templates are
// not installed), and a job whose templates
// include config/bpm.yml a launch file per process (launch, in the job's
// dir under bpmDir). A bpm.yml the engine cannot run is an error.
func bpmFiles(job string, files []RenderedFile) (out, launch []RenderedFile, err error) {
	out = files
	if job == BPMJob {
		// The job is the engine's bpm alone: bpm-release's other
		// templates (a pre-start that sets up runc's cgroups) and its
		// packages (JobPackages) serve containers the engine runs none of.
		return []RenderedFile{{Dest: "bin/bpm", Content: bpmStandIn}}, nil, nil
	}
	for _, f := range files {
		if f.Dest != bpmConfigDest {
			continue
		}
		procs, err := ParseBPM([]byte(f.Content))
		if err != nil {
			return nil, nil, err
		}
		for _, p := range procs {
			launch = append(launch, RenderedFile{Dest: bpmDir + "/" + p.Name, Content: bpmLaunchFile(job, p)})
		}
	}
	return out, launch, nil
}
