package bosh

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

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

// BPMProcess is one process of a job's bpm config, checked.
type BPMProcess struct {
	Name       string
	Executable string
	Args       []string
	Env        map[string]string
	Workdir    string // "" for bpm's default, /var/vcap/jobs/JOB
	PreStart   string
	// Limits: "" when not given. Memory is kept as written (it is not
	// enforced); the others are decimal numbers.
	Memory, OpenFiles, Processes, CoreFileSize string
	EphemeralDisk, PersistentDisk              bool
	Privileged                                 bool
	ShutdownSignal                             string // TERM or INT
	// Notes name what the config asks and the stand-in does not give
	// (keys that only matter in a container): the process's stderr log
	// says them at each start.
	Notes []string
}

var (
	bpmNameRe   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	bpmEnvRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
	bpmCapRe    = regexp.MustCompile(`^[A-Z][A-Z_]{0,63}$`)
	bpmMemoryRe = regexp.MustCompile(`^(?i)[0-9]{1,15}(\.[0-9]{1,6})?\s?([KMGTPE]i?B?|B)$`)
)

var (
	bpmTopKeys     = []string{"processes"}
	bpmProcessKeys = []string{"name", "executable", "args", "env", "workdir", "hooks", "capabilities", "limits",
		"ephemeral_disk", "persistent_disk", "additional_volumes", "unsafe", "shutdown_signal"}
	bpmHooksKeys  = []string{"pre_start"}
	bpmLimitsKeys = []string{"memory", "open_files", "processes", "core_file_size"}
	bpmUnsafeKeys = []string{"privileged", "unrestricted_volumes", "host_pid_namespace"}
	bpmVolumeKeys = []string{"path", "writable", "allow_executions", "mount_only", "shared"}
)

// ParseBPM reads a job's config/bpm.yml (bpm's config format) and checks
// every value: it is a template's output, which whoever wrote the release
// or the properties controls. Process names are plain names, unique;
// paths absolute and clean, with no control character; environment names
// are shell names; limits numbers; an unknown key is refused, named by
// its path (processes[0].limits.memroy).
func ParseBPM(data []byte) ([]BPMProcess, error) {
	if len(data) > bpmMaxConfig {
		return nil, fmt.Errorf("%d bytes, more than bpm's config may hold here (%d)", len(data), bpmMaxConfig)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty: bpm needs processes")
	}
	top, err := bpmMap(doc.Content[0], "", bpmTopKeys)
	if err != nil {
		return nil, err
	}
	list := bpmDeref(top["processes"])
	if list == nil || isNull(list) {
		return nil, errors.New("processes: missing: bpm needs at least one process")
	}
	if list.Kind != yaml.SequenceNode {
		return nil, errors.New("processes: must be a list")
	}
	if len(list.Content) == 0 {
		return nil, errors.New("processes: empty: bpm needs at least one process")
	}
	if len(list.Content) > bpmMaxProcesses {
		return nil, fmt.Errorf("processes: %d, more than %d", len(list.Content), bpmMaxProcesses)
	}
	var out []BPMProcess
	seen := map[string]bool{}
	for i, n := range list.Content {
		p, err := bpmProcess(n, fmt.Sprintf("processes[%d]", i))
		if err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("processes[%d].name: %q twice", i, p.Name)
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	return out, nil
}

func bpmProcess(n *yaml.Node, at string) (BPMProcess, error) {
	var p BPMProcess
	// The process is named in every error, an unknown key's too.
	if n := bpmDeref(n); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := bpmDeref(n.Content[i]), bpmDeref(n.Content[i+1]); k.Value == "name" && v != nil && v.Kind == yaml.ScalarNode && bpmNameRe.MatchString(v.Value) {
				at = fmt.Sprintf("%s (%s)", at, v.Value)
				break
			}
		}
	}
	m, err := bpmMap(n, at, bpmProcessKeys)
	if err != nil {
		return p, err
	}
	if p.Name, err = bpmString(m["name"], at+".name"); err != nil {
		return p, err
	}
	if p.Name == "" {
		return p, fmt.Errorf("%s.name: missing", at)
	}
	if !bpmNameRe.MatchString(p.Name) {
		return p, fmt.Errorf("%s.name: %q is no plain name (letters, digits, _ . -, not first a dot; at most 128)", at, p.Name)
	}
	if p.Executable, err = bpmPath(m["executable"], at+".executable"); err != nil {
		return p, err
	}
	if p.Executable == "" {
		return p, fmt.Errorf("%s.executable: missing", at)
	}
	if p.Workdir, err = bpmPath(m["workdir"], at+".workdir"); err != nil {
		return p, err
	}
	if args := bpmDeref(m["args"]); args != nil && !isNull(args) {
		if args.Kind != yaml.SequenceNode {
			return p, fmt.Errorf("%s.args: must be a list", at)
		}
		for i, a := range args.Content {
			s, err := bpmString(a, fmt.Sprintf("%s.args[%d]", at, i))
			if err != nil {
				return p, err
			}
			p.Args = append(p.Args, s)
		}
	}
	if env := bpmDeref(m["env"]); env != nil && !isNull(env) {
		if env.Kind != yaml.MappingNode {
			return p, fmt.Errorf("%s.env: must be a map of NAME: value (bpm's format)", at)
		}
		p.Env = map[string]string{}
		for i := 0; i+1 < len(env.Content); i += 2 {
			k := bpmDeref(env.Content[i])
			if k.Kind != yaml.ScalarNode || !bpmEnvRe.MatchString(k.Value) {
				return p, fmt.Errorf("%s.env: %q is no environment variable name (letters, digits, _; not first a digit)", at, k.Value)
			}
			if _, dup := p.Env[k.Value]; dup {
				return p, fmt.Errorf("%s.env.%s: twice", at, k.Value)
			}
			v, err := bpmString(env.Content[i+1], at+".env."+k.Value)
			if err != nil {
				return p, err
			}
			p.Env[k.Value] = v
		}
	}
	if h := m["hooks"]; h != nil && !isNull(bpmDeref(h)) {
		hm, err := bpmMap(h, at+".hooks", bpmHooksKeys)
		if err != nil {
			return p, err
		}
		if p.PreStart, err = bpmPath(hm["pre_start"], at+".hooks.pre_start"); err != nil {
			return p, err
		}
	}
	if l := m["limits"]; l != nil && !isNull(bpmDeref(l)) {
		lm, err := bpmMap(l, at+".limits", bpmLimitsKeys)
		if err != nil {
			return p, err
		}
		if p.Memory, err = bpmString(lm["memory"], at+".limits.memory"); err != nil {
			return p, err
		}
		if p.Memory != "" && !bpmMemoryRe.MatchString(p.Memory) {
			return p, fmt.Errorf("%s.limits.memory: %q is no size (a number and a unit: 256M, 1G)", at, p.Memory)
		}
		if p.Memory != "" {
			p.Notes = append(p.Notes, "limits.memory "+p.Memory+" is not enforced: bpm's is a cgroup limit of its container, which the engine does not make")
		}
		for _, k := range []struct {
			key string
			to  *string
		}{{"open_files", &p.OpenFiles}, {"processes", &p.Processes}, {"core_file_size", &p.CoreFileSize}} {
			if *k.to, err = bpmCount(lm[k.key], at+".limits."+k.key); err != nil {
				return p, err
			}
		}
	}
	for _, k := range []struct {
		key string
		to  *bool
	}{{"ephemeral_disk", &p.EphemeralDisk}, {"persistent_disk", &p.PersistentDisk}} {
		if *k.to, err = bpmBool(m[k.key], at+"."+k.key); err != nil {
			return p, err
		}
	}
	if p.ShutdownSignal, err = bpmString(m["shutdown_signal"], at+".shutdown_signal"); err != nil {
		return p, err
	}
	switch p.ShutdownSignal {
	case "":
		p.ShutdownSignal = "TERM"
	case "TERM", "INT":
	default:
		return p, fmt.Errorf("%s.shutdown_signal: %q: TERM or INT (or none)", at, p.ShutdownSignal)
	}
	if c := bpmDeref(m["capabilities"]); c != nil && !isNull(c) {
		if c.Kind != yaml.SequenceNode {
			return p, fmt.Errorf("%s.capabilities: must be a list", at)
		}
		var caps []string
		for i, x := range c.Content {
			s, err := bpmString(x, fmt.Sprintf("%s.capabilities[%d]", at, i))
			if err != nil {
				return p, err
			}
			if !bpmCapRe.MatchString(s) {
				return p, fmt.Errorf("%s.capabilities[%d]: %q is no capability name (NET_BIND_SERVICE)", at, i, s)
			}
			caps = append(caps, s)
		}
		if len(caps) > 0 {
			p.Notes = append(p.Notes, "capabilities "+strings.Join(caps, ",")+" are not granted: the process runs as vcap with none (as root only with unsafe.privileged)")
		}
	}
	if n, err := bpmVolumes(m["additional_volumes"], at+".additional_volumes"); err != nil {
		return p, err
	} else if n > 0 {
		p.Notes = append(p.Notes, "additional_volumes are not mounted: without a container the process sees the machine's files as vcap may")
	}
	if u := m["unsafe"]; u != nil && !isNull(bpmDeref(u)) {
		um, err := bpmMap(u, at+".unsafe", bpmUnsafeKeys)
		if err != nil {
			return p, err
		}
		if p.Privileged, err = bpmBool(um["privileged"], at+".unsafe.privileged"); err != nil {
			return p, err
		}
		// Without a container every process shares the machine's PID
		// namespace: host_pid_namespace is what it gets anyway.
		if _, err := bpmBool(um["host_pid_namespace"], at+".unsafe.host_pid_namespace"); err != nil {
			return p, err
		}
		if n, err := bpmVolumes(um["unrestricted_volumes"], at+".unsafe.unrestricted_volumes"); err != nil {
			return p, err
		} else if n > 0 {
			p.Notes = append(p.Notes, "unsafe.unrestricted_volumes are not mounted: without a container the process sees the machine's files as its user may")
		}
	}
	return p, nil
}

// bpmVolumes checks a list of bpm volumes and counts them: the stand-in
// mounts none.
func bpmVolumes(n *yaml.Node, at string) (int, error) {
	n = bpmDeref(n)
	if n == nil || isNull(n) {
		return 0, nil
	}
	if n.Kind != yaml.SequenceNode {
		return 0, fmt.Errorf("%s: must be a list", at)
	}
	for i, v := range n.Content {
		vat := fmt.Sprintf("%s[%d]", at, i)
		vm, err := bpmMap(v, vat, bpmVolumeKeys)
		if err != nil {
			return 0, err
		}
		p, err := bpmString(vm["path"], vat+".path")
		if err != nil {
			return 0, err
		}
		if !strings.HasPrefix(p, "/") || bpmControl(p) {
			return 0, fmt.Errorf("%s.path: %q is no absolute path", vat, p)
		}
		for _, k := range bpmVolumeKeys[1:] {
			if _, err := bpmBool(vm[k], vat+"."+k); err != nil {
				return 0, err
			}
		}
	}
	return len(n.Content), nil
}

// bpmMap reads a mapping whose keys must be among known.
func bpmMap(n *yaml.Node, at string, known []string) (map[string]*yaml.Node, error) {
	n = bpmDeref(n)
	name := at
	if name == "" {
		name = "the config"
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: must be a map", name)
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := bpmDeref(n.Content[i])
		key := k.Value
		if k.Kind != yaml.ScalarNode || !slices.Contains(known, key) {
			return nil, fmt.Errorf("%s: unknown key %s (known: %s)", name, bpmShow(key), strings.Join(known, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s: key %s twice", name, bpmShow(key))
		}
		out[key] = n.Content[i+1]
	}
	return out, nil
}

// bpmString reads a scalar as bpm's YAML reads it into a string (a
// number as written): "" when absent or null. A NUL cannot go into an
// argument or the environment, and is refused.
func bpmString(n *yaml.Node, at string) (string, error) {
	n = bpmDeref(n)
	if n == nil || isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s: must be a single value, not a list or a map", at)
	}
	if strings.ContainsRune(n.Value, 0) {
		return "", fmt.Errorf("%s: holds a NUL byte", at)
	}
	return n.Value, nil
}

// bpmPath reads an absolute, clean path with no control character.
func bpmPath(n *yaml.Node, at string) (string, error) {
	p, err := bpmString(n, at)
	if err != nil || p == "" {
		return p, err
	}
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || bpmControl(p) || len(p) > 4096 {
		return "", fmt.Errorf("%s: %q is no absolute, clean path", at, p)
	}
	return p, nil
}

// bpmCount reads a limit: a whole number, "" when absent.
func bpmCount(n *yaml.Node, at string) (string, error) {
	s, err := bpmString(n, at)
	if err != nil || s == "" {
		return s, err
	}
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return "", fmt.Errorf("%s: %q is no whole number", at, s)
	}
	return strconv.FormatUint(v, 10), nil
}

// bpmBool reads a boolean as YAML has them; false when absent.
func bpmBool(n *yaml.Node, at string) (bool, error) {
	n = bpmDeref(n)
	if n == nil || isNull(n) {
		return false, nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		return false, fmt.Errorf("%s: must be true or false", at)
	}
	return b, nil
}

func bpmDeref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func bpmControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// bpmShow keeps a hostile key readable in an error: quoted, cut.
func bpmShow(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

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
  echo "usage: bpm start|stop|pid JOB [-p PROCESS] | bpm list | bpm version" >&2
  exit 1
}
plain() { [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]]; }
cmd=${1:-}
[ $# -gt 0 ] && shift
job= proc=
while [ $# -gt 0 ]; do
  case $1 in
    -p|--process) [ $# -ge 2 ] || usage; proc=$2; shift 2 ;;
    --process=*) proc=${1#--process=}; shift ;;
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
  start|stop|pid)
    [ -n "$job" ] || usage
    if ! plain "$job" || ! plain "$proc"; then echo "bpm: $job/$proc: not a plain job or process name" >&2; exit 1; fi
    pidfile=%[3]s/bpm/$job/$proc.pid ;;
  list|version) [ -z "$job" ] || usage ;;
  *) usage ;;
esac
case $cmd in
  start) start ;;
  stop) stop ;;
  pid) if running; then echo "$pid"; else echo "bpm: process is not running or could not be found" >&2; exit 1; fi ;;
  list) list ;;
  version) echo "deployment-engine bpm stand-in (no container)" ;;
esac
`, JobsDir, bpmDir, RunDir, LogDir, VcapDir, bpmStopWait)

// bpmFiles is a job's rendered files as the engine installs them: the job
// named bpm gets the engine's bpm as its bin/bpm (in place of its own, or
// beside its templates when it has none), and a job whose templates
// include config/bpm.yml a launch file per process (launch, in the job's
// dir under bpmDir). A bpm.yml the engine cannot run is an error.
func bpmFiles(job string, files []RenderedFile) (out, launch []RenderedFile, err error) {
	out = files
	if job == BPMJob {
		out = make([]RenderedFile, 0, len(files)+1)
		for _, f := range files {
			if f.Dest != "bin/bpm" {
				out = append(out, f)
			}
		}
		out = append(out, RenderedFile{Dest: "bin/bpm", Content: bpmStandIn})
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
