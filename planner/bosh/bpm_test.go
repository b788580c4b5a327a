package bosh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// hostileBPM is a bpm.yml whose values try to break out of the launch
// file: quotes, command substitutions, newlines, globs, a dash first.
const hostileBPM = `processes:
- name: web
  executable: /var/vcap/packages/web/bin/web
  args: ["--name", "it's \"quoted\"", "$(touch @ROOT@/owned)", "` + "`touch @ROOT@/owned`" + `", "line1\nline2", "*", "-n", 2424, true, ""]
  env:
    FOO: BAR
    EVIL: "'; touch @ROOT@/owned; echo '"
    MULTI: "a\nb"
    TMPDIR: /var/vcap/data/web/mytmp
  limits: {memory: 1G, open_files: 1234, core_file_size: 4096}
  ephemeral_disk: true
  persistent_disk: true
  capabilities: [NET_BIND_SERVICE]
  additional_volumes: [{path: /var/vcap/data/sockets, writable: true}]
  hooks: {pre_start: /var/vcap/jobs/web/bin/bpm-pre-start}
- name: worker
  executable: /var/vcap/packages/web/bin/worker
  workdir: /var/vcap/data/web
  shutdown_signal: INT
  unsafe: {privileged: true, host_pid_namespace: true}
`

func TestParseBPM(t *testing.T) {
	procs, err := ParseBPM([]byte(hostileBPM))
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 2 {
		t.Fatalf("%d processes: %+v", len(procs), procs)
	}
	web, worker := procs[0], procs[1]
	wantArgs := []string{"--name", `it's "quoted"`, "$(touch @ROOT@/owned)", "`touch @ROOT@/owned`", "line1\nline2", "*", "-n", "2424", "true", ""}
	if web.Name != "web" || web.Executable != "/var/vcap/packages/web/bin/web" || !slices.Equal(web.Args, wantArgs) ||
		web.Env["EVIL"] != "'; touch @ROOT@/owned; echo '" || web.Env["MULTI"] != "a\nb" || web.OpenFiles != "1234" ||
		web.Memory != "1G" || web.CoreFileSize != "4096" || !web.EphemeralDisk || !web.PersistentDisk || web.Privileged ||
		web.PreStart != "/var/vcap/jobs/web/bin/bpm-pre-start" || web.ShutdownSignal != "TERM" || web.Workdir != "" {
		t.Errorf("web: %+v", web)
	}
	if len(web.Notes) != 3 || !strings.Contains(web.Notes[0], "memory 1G is not enforced") ||
		!strings.Contains(web.Notes[1], "NET_BIND_SERVICE") || !strings.Contains(web.Notes[2], "additional_volumes") {
		t.Errorf("web's notes: %q", web.Notes)
	}
	if worker.ShutdownSignal != "INT" || !worker.Privileged || worker.Workdir != "/var/vcap/data/web" || len(worker.Notes) != 0 {
		t.Errorf("worker: %+v", worker)
	}
	golden(t, "bpm-launch-web.sh", bpmLaunchFile("web", web))
}

func TestParseBPMRefuses(t *testing.T) {
	proc := func(extra string) string {
		return "processes:\n- name: web\n  executable: /bin/web\n" + extra
	}
	for _, tc := range []struct{ name, in, want string }{
		{"not YAML", "processes: [", "not YAML"},
		{"empty", "", "empty"},
		{"no processes", "processes: []", "processes: empty"},
		{"processes missing", "{}", "processes: missing"},
		{"processes a map", "processes: {name: web}", "processes: must be a list"},
		{"a top-level key bpm does not know", "processes: []\nsysctl: {a: b}", `the config: unknown key "sysctl" (known: processes)`},
		{"a process key bpm does not know", proc("  exec: /bin/x\n"), `processes[0] (web): unknown key "exec"`},
		{"a limit bpm does not know", proc("  limits: {memroy: 1G}\n"), `processes[0] (web).limits: unknown key "memroy" (known: memory, open_files, processes, core_file_size)`},
		{"a hook bpm does not know", proc("  hooks: {post_start: /bin/x}\n"), `processes[0] (web).hooks: unknown key "post_start"`},
		{"an unsafe key bpm does not know", proc("  unsafe: {root: true}\n"), `processes[0] (web).unsafe: unknown key "root"`},
		{"a volume key bpm does not know", proc("  additional_volumes: [{path: /var/vcap/data/x, size: 1}]\n"), `additional_volumes[0]: unknown key "size"`},
		{"a key with a newline", proc("  \"a\\nb\": 1\n"), `unknown key "a\nb"`},
		{"a name with a slash", "processes: [{name: a/b, executable: /bin/x}]", `processes[0].name: "a/b" is no plain name`},
		{"a name that climbs", "processes: [{name: .., executable: /bin/x}]", `processes[0].name: ".." is no plain name`},
		{"a hidden name", "processes: [{name: .x, executable: /bin/x}]", `is no plain name`},
		{"a name with a space", "processes: [{name: 'a b', executable: /bin/x}]", `is no plain name`},
		{"a name with a command", "processes: [{name: '$(id)', executable: /bin/x}]", `is no plain name`},
		{"no name", "processes: [{executable: /bin/x}]", "processes[0].name: missing"},
		{"a name twice", "processes: [{name: a, executable: /bin/x}, {name: a, executable: /bin/y}]", `processes[1].name: "a" twice`},
		{"a name that is a list", "processes: [{name: [a], executable: /bin/x}]", "processes[0].name: must be a single value"},
		{"no executable", "processes: [{name: a}]", "processes[0] (a).executable: missing"},
		{"a name twice in a process", "processes: [{name: a, name: b, executable: /bin/x}]", `processes[0] (a): key "name" twice`},
		{"a relative executable", "processes: [{name: a, executable: bin/x}]", `executable: "bin/x" is no absolute, clean path`},
		{"an executable that climbs", "processes: [{name: a, executable: /var/vcap/../../bin/x}]", "is no absolute, clean path"},
		{"an executable with a newline", "processes: [{name: a, executable: \"/bin/x\\n/bin/y\"}]", "is no absolute, clean path"},
		{"a relative workdir", proc("  workdir: tmp\n"), `workdir: "tmp" is no absolute, clean path`},
		{"a relative hook", proc("  hooks: {pre_start: ./setup}\n"), `hooks.pre_start: "./setup" is no absolute, clean path`},
		{"args a string", proc("  args: --port 80\n"), "args: must be a list"},
		{"an arg that is a map", proc("  args: [{a: b}]\n"), "args[0]: must be a single value"},
		{"an arg with a NUL", proc("  args: [\"a\\0b\"]\n"), "args[0]: holds a NUL byte"},
		{"env as bpm's old list", proc("  env: [FOO=BAR]\n"), "env: must be a map of NAME: value"},
		{"an env name with a dash", proc("  env: {A-B: x}\n"), `"A-B" is no environment variable name`},
		{"an env name that runs", proc("  env: {'$(id)': x}\n"), "is no environment variable name"},
		{"an env name with =", proc("  env: {'A=B': x}\n"), "is no environment variable name"},
		{"an env value with a NUL", proc("  env: {A: \"x\\0\"}\n"), "env.A: holds a NUL byte"},
		{"an env name twice", proc("  env: {A: x, A: y}\n"), ""},
		{"a memory limit that is no size", proc("  limits: {memory: lots}\n"), `limits.memory: "lots" is no size`},
		{"a memory limit with a command", proc("  limits: {memory: '1G; id'}\n"), "is no size"},
		{"open files negative", proc("  limits: {open_files: -1}\n"), `limits.open_files: "-1" is no whole number`},
		{"processes a word", proc("  limits: {processes: many}\n"), `limits.processes: "many" is no whole number`},
		{"open files huge", proc("  limits: {open_files: 99999999999999999999}\n"), "is no whole number"},
		{"a signal bpm does not send", proc("  shutdown_signal: KILL\n"), `shutdown_signal: "KILL": TERM or INT`},
		{"a disk flag that is no boolean", proc("  ephemeral_disk: sure\n"), "ephemeral_disk: must be true or false"},
		{"privileged that is no boolean", proc("  unsafe: {privileged: \"$(id)\"}\n"), "unsafe.privileged: must be true or false"},
		{"a capability that runs", proc("  capabilities: ['$(id)']\n"), "is no capability name"},
		{"a volume without a path", proc("  additional_volumes: [{writable: true}]\n"), `additional_volumes[0].path: "" is no absolute path`},
		{"a process that is a string", "processes: [web]", "processes[0]: must be a map"},
		{"too large", "processes: []\n#" + strings.Repeat("x", bpmMaxConfig), "more than bpm's config may hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBPM([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// A bpm node: the stand-in and a job's launch files under a temporary
// /var/vcap, run with bash as monit runs them; setpriv is a stand-in
// that records the user it was asked for (the test may not run as root,
// and the machine has no vcap user).
type bpmNode struct {
	t    *testing.T
	root string
	path string
}

func newBPMNode(t *testing.T, job, config string) *bpmNode {
	t.Helper()
	for _, tool := range []string{"bash", "flock", "setsid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	n := &bpmNode{t: t, root: t.TempDir()}
	bin := filepath.Join(n.root, "bin")
	n.write("bin/setpriv", 0o755, "#!/bin/bash\necho \"$1\" >@ROOT@/setpriv.user\nwhile [ \"$1\" != -- ]; do shift; done\nshift\nexec \"$@\"\n")
	n.path = bin + ":" + os.Getenv("PATH")
	n.write("var/vcap/data/jobs/bpm/v1/bin/bpm", 0o755, bpmStandIn)
	n.link("var/vcap/jobs/bpm", "var/vcap/data/jobs/bpm/v1")
	procs, err := ParseBPM([]byte(strings.ReplaceAll(config, "@ROOT@", n.root)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		n.write("var/vcap/data/jobs/"+job+"/v1/"+bpmDir+"/"+p.Name, 0o644, bpmLaunchFile(job, p))
	}
	n.link("var/vcap/jobs/"+job, "var/vcap/data/jobs/"+job+"/v1")
	for _, d := range []string{"var/vcap/store", "var/vcap/sys/log", "var/vcap/sys/run"} {
		if err := os.MkdirAll(filepath.Join(n.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(n.root, "var/vcap/sys/log/*/*"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", f, b)
			}
		}
		// Whatever a test left running goes, by its process group.
		pids, _ := filepath.Glob(filepath.Join(n.root, "var/vcap/sys/run/bpm/*/*.pid"))
		for _, f := range pids {
			b, _ := os.ReadFile(f)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	return n
}

// write writes a file of the node, its paths (/var/vcap, @ROOT@) the
// node's.
func (n *bpmNode) write(rel string, mode os.FileMode, content string) {
	n.t.Helper()
	p := filepath.Join(n.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(n.local(content)), mode); err != nil {
		n.t.Fatal(err)
	}
}

func (n *bpmNode) local(s string) string {
	return strings.NewReplacer(VcapDir, n.root+VcapDir, "@ROOT@", n.root, "chown vcap:vcap", "true", "stop_wait=20", "stop_wait=1").Replace(s)
}

func (n *bpmNode) link(rel, to string) {
	n.t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(n.root, rel)), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(n.root, to), filepath.Join(n.root, rel)); err != nil {
		n.t.Fatal(err)
	}
}

// bpm runs the node's bpm with args, as monit would.
func (n *bpmNode) bpm(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(n.root, "var/vcap/jobs/bpm/bin/bpm"), args...)
	cmd.Env = []string{"PATH=" + n.path, "LEAKED=from-monit"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *bpmNode) must(args ...string) string {
	n.t.Helper()
	out, err := n.bpm(args...)
	if err != nil {
		n.t.Fatalf("bpm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *bpmNode) read(rel string) string {
	b, _ := os.ReadFile(filepath.Join(n.root, rel))
	return string(b)
}

func (n *bpmNode) pid(job, proc string) int {
	pid, _ := strconv.Atoi(strings.TrimSpace(n.read("var/vcap/sys/run/bpm/" + job + "/" + proc + ".pid")))
	return pid
}

// procFile reads /proc/PID/<name> once the process exec'd its last
// program (its cmdline names want), NULs as newlines.
func procFile(t *testing.T, pid int, name, want string) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), want) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
			if err != nil {
				t.Fatal(err)
			}
			return strings.ReplaceAll(string(b), "\x00", "\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d never ran %s", pid, want)
	return ""
}

// gone: whether pid ended (a zombie no reaper took is gone too).
func gone(pid int) bool {
	for i := 0; i < 100; i++ {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); err != nil || len(f) == 0 || f[0] == "Z" {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// The stand-in starts each process of a hostile config as bpm would,
// with exactly its arguments and environment (nothing of its caller's),
// its limits, its own session, its output in bpm's logs and its pid in
// bpm's pidfile; nothing of the config runs as shell. A second start
// leaves it be; pid and list name it; stop ends its process group and
// removes the pidfile.
func TestBPMStandInRunsHostileConfig(t *testing.T) {
	web := `#!/bin/bash
printf '%s\n' "$@" >@ROOT@/web.args
echo "web says hello"
echo "web complains" >&2
exec sleep 1000
`
	n := newBPMNode(t, "web", hostileBPM)
	n.write("var/vcap/packages/web/bin/web", 0o755, web)
	n.write("var/vcap/packages/web/bin/worker", 0o755, "#!/bin/bash\ntrap 'echo worker got INT >>@ROOT@/worker.signals; exit 0' INT\ntrap 'echo worker got TERM >>@ROOT@/worker.signals; exit 0' TERM\npwd >@ROOT@/worker.pwd\nwhile :; do sleep 0.05; done\n")
	n.write("var/vcap/jobs/web/bin/bpm-pre-start", 0o755, "#!/bin/bash\necho \"pre-start in $PWD as $FOO\" >>@ROOT@/hook\n")

	out := n.must("start", "web")
	pid := n.pid("web", "web")
	if pid == 0 {
		t.Fatalf("no pidfile after start: %s", out)
	}
	env := procFile(t, pid, "environ", "sleep")
	wantEnv := map[string]bool{"FOO=BAR": true, "EVIL=" + n.local("'; touch @ROOT@/owned; echo '"): true, "MULTI=a": true, "b": true,
		"TMPDIR=" + n.root + "/var/vcap/data/web/mytmp": true, "LANG=en_US.UTF-8": true, "HOME=" + n.root + "/var/vcap/data/web": true,
		"PATH=" + n.root + "/var/vcap/jobs/web/bin:/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin:.": true}
	for _, kv := range strings.Split(strings.TrimSpace(env), "\n") {
		if strings.HasPrefix(kv, "_=") || strings.HasPrefix(kv, "PWD=") || strings.HasPrefix(kv, "SHLVL=") {
			continue // web's own bash's, as it runs sleep
		}
		if !wantEnv[kv] {
			t.Errorf("web's environment holds %q", kv)
		}
		delete(wantEnv, kv)
	}
	if len(wantEnv) > 0 {
		t.Errorf("web's environment lacks %v:\n%s", wantEnv, env)
	}
	wantArgs := strings.Join([]string{"--name", `it's "quoted"`, "$(touch " + n.root + "/owned)", "`touch " + n.root + "/owned`", "line1", "line2", "*", "-n", "2424", "true", ""}, "\n") + "\n"
	if got := n.read("web.args"); got != wantArgs {
		t.Errorf("web's arguments:\n%q\nwant\n%q", got, wantArgs)
	}
	if _, err := os.Stat(filepath.Join(n.root, "owned")); err == nil {
		t.Error("a value of the config ran as shell")
	}
	if got := n.read("setpriv.user"); got != "--reuid=vcap\n" {
		t.Errorf("web ran as %q, want vcap", got)
	}
	limits := procFile(t, pid, "limits", "sleep")
	if !regexpMatch(`Max open files\s+1234\s+1234`, limits) || !regexpMatch(`Max core file size\s+4096\s+4096`, limits) {
		t.Errorf("web's limits:\n%s", limits)
	}
	stat := strings.Fields(procFile(t, pid, "stat", "sleep"))
	if stat[5] != strconv.Itoa(pid) {
		t.Errorf("web's session is %s, want its own (%d)", stat[5], pid)
	}
	if got := n.read("hook"); got != "pre-start in "+n.root+"/var/vcap/data/jobs/web/v1 as BAR\n" {
		t.Errorf("the pre_start hook: %q", got)
	}
	logs := n.read("var/vcap/sys/log/web/web.stdout.log") + n.read("var/vcap/sys/log/web/web.stderr.log")
	for _, want := range []string{"web says hello", "web complains", "limits.memory 1G is not enforced", "capabilities NET_BIND_SERVICE are not granted"} {
		if !strings.Contains(logs, want) {
			t.Errorf("web's logs lack %q:\n%s", want, logs)
		}
	}
	for _, d := range []string{"var/vcap/data/web/tmp", "var/vcap/store/web"} {
		if fi, err := os.Stat(filepath.Join(n.root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}

	// Started again: left as it is.
	if out := n.must("start", "web", "-p", "web"); !strings.Contains(out, "runs already") || n.pid("web", "web") != pid {
		t.Errorf("a second start: %s (pid %d, was %d)", out, n.pid("web", "web"), pid)
	}
	n.must("start", "web", "-p", "worker")
	worker := n.pid("web", "worker")
	if got := strings.TrimSpace(n.must("pid", "web", "-p", "worker")); got != strconv.Itoa(worker) {
		t.Errorf("bpm pid web -p worker: %q, want %d", got, worker)
	}
	if got := n.read("setpriv.user"); got != "--reuid=vcap\n" {
		t.Errorf("setpriv ran for the privileged worker: %q", got)
	}
	list := n.must("list")
	if !regexpMatch(`(?m)^Name\s+Pid\s+Status$`, list) || !regexpMatch(`(?m)^web\s+`+strconv.Itoa(pid)+`\s+running$`, list) ||
		!regexpMatch(`(?m)^web\.worker\s+`+strconv.Itoa(worker)+`\s+running$`, list) {
		t.Errorf("bpm list:\n%s", list)
	}

	// Stopped: the worker by its INT, in its workdir; web by TERM.
	n.must("stop", "web", "-p", "worker")
	if !gone(worker) || n.read("worker.signals") != "worker got INT\n" || n.read("worker.pwd") != n.root+"/var/vcap/data/web\n" {
		t.Errorf("worker after stop: gone %v, signals %q, ran in %q", gone(worker), n.read("worker.signals"), n.read("worker.pwd"))
	}
	n.must("stop", "web")
	if !gone(pid) {
		t.Error("web still runs after stop")
	}
	if _, err := os.Stat(filepath.Join(n.root, "var/vcap/sys/run/bpm/web/web.pid")); err == nil {
		t.Error("web's pidfile stays after stop")
	}
	if _, err := n.bpm("pid", "web"); err == nil {
		t.Error("bpm pid of a stopped process succeeds")
	}
	if list := n.must("list"); !regexpMatch(`(?m)^web\s+-\s+stopped$`, list) {
		t.Errorf("bpm list after stop:\n%s", list)
	}
	if out := n.must("stop", "web"); !strings.Contains(out, "not running") {
		t.Errorf("a second stop: %s", out)
	}
}

// A process that ignores its shutdown signal is killed, with what it
// started, after the wait (shortened here); a failing pre_start hook
// starts nothing; names that are not plain, and processes the config
// lacks, are refused.
func TestBPMStandInStopsStubbornAndRefuses(t *testing.T) {
	n := newBPMNode(t, "db", `processes:
- name: db
  executable: /var/vcap/packages/db/bin/db
- name: broken
  executable: /var/vcap/packages/db/bin/db
  hooks: {pre_start: /var/vcap/jobs/db/bin/fail}
`)
	n.write("var/vcap/packages/db/bin/db", 0o755, "#!/bin/bash\ntrap '' TERM\nsleep 1000 &\necho $! >@ROOT@/child\nwhile :; do sleep 0.05; done\n")
	n.write("var/vcap/jobs/db/bin/fail", 0o755, "#!/bin/bash\necho hook fails >&2\nexit 3\n")
	n.must("start", "db")
	pid := n.pid("db", "db")
	var child int
	for i := 0; i < 100 && child == 0; i++ {
		child, _ = strconv.Atoi(strings.TrimSpace(n.read("child")))
		time.Sleep(20 * time.Millisecond)
	}
	began := time.Now()
	out := n.must("stop", "db")
	if !gone(pid) || !gone(child) || !strings.Contains(out, "QUIT, then KILL") {
		t.Errorf("a process that ignores TERM: gone %v, its child gone %v: %s", gone(pid), gone(child), out)
	}
	if d := time.Since(began); d < time.Second || d > 5*time.Second {
		t.Errorf("stop took %v, want the wait (1 s here) and a little", d)
	}

	out, err := n.bpm("start", "db", "-p", "broken")
	if err == nil || !strings.Contains(out, "pre_start hook of db/broken failed (exit 3)") || n.pid("db", "broken") != 0 ||
		!strings.Contains(n.read("var/vcap/sys/log/db/broken.stderr.log"), "hook fails") {
		t.Errorf("a failing hook: %v %s", err, out)
	}
	for _, args := range [][]string{{"start", "../db"}, {"start", "db", "-p", "../../x"}, {"stop", ".hidden"}, {"start", "db", "-p", "nope"}, {"start"}, {"frob", "db"}} {
		if out, err := n.bpm(args...); err == nil {
			t.Errorf("bpm %q succeeds: %s", args, out)
		}
	}
}

func regexpMatch(re, s string) bool {
	ok, _ := regexp.MatchString(re, s)
	return ok
}

// bpmRelease has a job web whose processes bpm runs (its monit file and
// config/bpm.yml, from a property) and a job named bpm with a bin/bpm of
// its own, as bpm-release's.
func bpmRelease() releasetest.Release {
	return releasetest.Release{Name: "withbpm", Version: "1",
		Jobs: []releasetest.Job{
			{Name: "web", Spec: "---\nname: web\ntemplates:\n  bpm.yml.erb: config/bpm.yml\nproperties:\n  port: {default: 8080}\n  extra: {default: ''}\n",
				Monit: "check process web\n  with pidfile /var/vcap/sys/run/bpm/web/web.pid\n  start program \"/var/vcap/jobs/bpm/bin/bpm start web\"\n  stop program \"/var/vcap/jobs/bpm/bin/bpm stop web\"\n  group vcap\n" +
					"check process worker\n  with pidfile /var/vcap/sys/run/bpm/web/worker.pid\n  start program \"/var/vcap/jobs/bpm/bin/bpm start web -p worker\"\n  stop program \"/var/vcap/jobs/bpm/bin/bpm stop web -p worker\"\n  group vcap\n",
				Templates: map[string]string{"bpm.yml.erb": "processes:\n- name: web\n  executable: /var/vcap/packages/web/bin/web\n  args: [--port, <%= p('port') %>]\n<%= p('extra') %>\n- name: worker\n  executable: /bin/sleep\n  args: ['1000']\n"}},
			{Name: "bpm", Spec: "---\nname: bpm\ntemplates:\n  bpm: bin/bpm\n  pre-start: bin/pre-start\npackages: [bpm]\n", Monit: "",
				Templates: map[string]string{"bpm": "#!/bin/bash\n/var/vcap/packages/bpm/bin/bpm \"$@\"\n", "pre-start": "#!/bin/bash\ntrue\n"}},
		},
		// bpm-release's package builds bpm's Go binary and runc.
		Packages: []releasetest.Package{{Name: "bpm", Files: map[string]string{"packaging": "go build -o ${BOSH_INSTALL_TARGET}/bin/bpm ./bpm\n"}}}}
}

// A job's bpm.yml becomes a launch file per process in its dir; the job
// named bpm is the engine's stand-in as its bin/bpm, nothing of its own
// (templates, packages) installed; the job's
// register waits for bpm's start on its node. A bpm.yml the engine
// cannot run, or a job that runs bpm where no job named bpm is, is a
// problem naming the job and what is wrong.
func TestRenderBPM(t *testing.T) {
	needRuby(t)
	rel := load(t, bpmRelease())
	d, ps := NewDeployment(rel, cfgOf(map[string][]string{"web": {"10.0.0.1"}, "bpm": {"10.0.0.1"}}, nil, nil))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	plan, err := MakePlan(context.Background(), PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
		PackageURL: func(p release.Package) string { return "http://h/" + p.Name }})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, in := range plan.Instances {
		for _, f := range in.Files {
			files[strings.TrimPrefix(f.Path, VcapDir+"/data/jobs/"+in.Job+"/"+in.Hash+"/")] = fmt.Sprintf("%o %s", f.Mode, f.Content)
		}
		if in.Job == "web" && (!slices.Equal(in.BPM, []string{"web", "worker"}) || !in.UsesBPM || !slices.Equal(in.Processes, []string{"web", "worker"})) {
			t.Errorf("web: bpm %v, uses bpm %v, processes %v", in.BPM, in.UsesBPM, in.Processes)
		}
	}
	if files["bin/bpm"] != "755 "+bpmStandIn {
		t.Errorf("the bpm job's bin/bpm is not the engine's:\n%.200s", files["bin/bpm"])
	}
	// The job named bpm is the engine's bpm alone: neither its own
	// pre-start nor its package is installed.
	if _, ok := files["bin/pre-start"]; ok {
		t.Error("the bpm job's own pre-start is installed")
	}
	if got := plan.Packages["10.0.0.1"]; len(got) != 0 {
		t.Errorf("packages compiled for the bpm job: %v", got)
	}
	if !strings.HasPrefix(files[bpmDir+"/web"], "644 ") || !strings.Contains(files[bpmDir+"/web"], "args=('--port' '8080')") ||
		!strings.Contains(files[bpmDir+"/worker"], "executable='/bin/sleep'") {
		t.Errorf("web's launch files: %q, %q", files[bpmDir+"/web"], files[bpmDir+"/worker"])
	}
	for _, s := range plan.Steps {
		if s.Spec.ID == "10.0.0.1/web/register" && !slices.Contains(s.After, "10.0.0.1/bpm/start") {
			t.Errorf("web's register after %v: want bpm's start", s.After)
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(s.Spec.Script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s.Spec.ID, err, out)
		}
	}
	for _, f := range []string{"bin/bpm", bpmDir + "/web"} {
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(strings.SplitN(files[f], " ", 2)[1])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}

	for _, tc := range []struct {
		name  string
		comps map[string][]string
		jobs  map[string]any
		want  string
	}{
		{"a key bpm does not know", map[string][]string{"web": {"10.0.0.1"}, "bpm": {"10.0.0.1"}},
			map[string]any{"web": map[string]any{"extra": "  sizes: big"}},
			`job web (instance 0): config/bpm.yml: processes[0] (web): unknown key "sizes"`},
		{"an argument that is a list", map[string][]string{"web": {"10.0.0.1"}, "bpm": {"10.0.0.1"}},
			map[string]any{"web": map[string]any{"port": []any{1, 2}}}, `job web (instance 0): config/bpm.yml: processes[0] (web).args[1]: must be a single value`},
		{"no bpm on the node", map[string][]string{"web": {"10.0.0.1"}, "bpm": {"10.0.0.2"}}, nil,
			"job web runs its processes through bpm (/var/vcap/jobs/bpm/bin/bpm in its monit file), and no job named bpm is placed on 10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ps := NewDeployment(rel, cfgOf(tc.comps, tc.jobs, nil))
			if len(ps) > 0 {
				t.Fatal(ps)
			}
			_, ps, err := RenderAll(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 1 || !strings.Contains(ps[0].Reason, tc.want) || ps[0].Component != "web" {
				t.Errorf("problems %+v, want one saying %q", ps, tc.want)
			}
		})
	}
}

// FuzzParseBPM: any bytes are refused or give processes the stand-in
// can run safely: plain, unique names, absolute clean paths, shell names
// in the environment, numbers as limits, no NUL, one launch file each.
func FuzzParseBPM(f *testing.F) {
	f.Add([]byte(hostileBPM))
	f.Add([]byte("processes: [{name: a, executable: /bin/a, args: [x, 1], env: {A: b}, limits: {open_files: 3}}]"))
	f.Add([]byte("processes:\n- &p {name: a, executable: /bin/a}\n- *p\n"))
	f.Add([]byte("processes: [{name: a, executable: /bin/a, unsafe: {unrestricted_volumes: [{path: /x/*}]}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		procs, err := ParseBPM(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range procs {
			if !bpmNameRe.MatchString(p.Name) || seen[p.Name] || strings.Contains(p.Name, "/") || strings.HasPrefix(p.Name, ".") {
				t.Fatalf("name %q", p.Name)
			}
			seen[p.Name] = true
			for _, x := range []string{p.Executable, p.Workdir, p.PreStart} {
				if x != "" && (!strings.HasPrefix(x, "/") || filepath.Clean(x) != x || bpmControl(x)) {
					t.Fatalf("path %q", x)
				}
			}
			for k := range p.Env {
				if !bpmEnvRe.MatchString(k) {
					t.Fatalf("env name %q", k)
				}
			}
			for _, x := range []string{p.OpenFiles, p.Processes, p.CoreFileSize} {
				if _, err := strconv.ParseUint(x, 10, 64); x != "" && err != nil {
					t.Fatalf("limit %q", x)
				}
			}
			if p.ShutdownSignal != "TERM" && p.ShutdownSignal != "INT" {
				t.Fatalf("signal %q", p.ShutdownSignal)
			}
			for _, a := range append(slices.Clone(p.Args), p.Executable) {
				if strings.ContainsRune(a, 0) {
					t.Fatalf("NUL in %q", a)
				}
			}
			if s := bpmLaunchFile("job", p); strings.Count(s, "\nexecutable=") != 1 {
				t.Fatalf("launch file:\n%s", s)
			}
		}
	})
}

// bpm run runs a process in the foreground, as an errand does: its
// output is the caller's, its exit status bpm's, -e adds to its
// environment (a name that is no name is refused), and no pidfile is
// left; start refuses -e.
func TestBPMStandInRun(t *testing.T) {
	n := newBPMNode(t, "smoke", `processes:
- name: smoke
  executable: /var/vcap/packages/smoke/bin/run
  args: ["--suite", "$(touch @ROOT@/owned)"]
  env: {FOO: BAR}
`)
	n.write("var/vcap/packages/smoke/bin/run", 0o755, "#!/bin/bash\necho \"args: $*\"\necho \"FOO=$FOO EXTRA=${EXTRA:-} LEAKED=${LEAKED:-}\"\necho failing >&2\nexit 7\n")
	out, err := n.bpm("run", "smoke", "-e", "EXTRA=a b")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("bpm run: %v, want exit status 7\n%s", err, out)
	}
	for _, want := range []string{"args: --suite $(touch " + n.root + "/owned)", "FOO=BAR EXTRA=a b LEAKED=\n", "failing"} {
		if !strings.Contains(out, want) {
			t.Errorf("bpm run's output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(n.root, "owned")); err == nil {
		t.Error("an argument ran as shell")
	}
	if n.pid("smoke", "smoke") != 0 {
		t.Error("bpm run left a pidfile")
	}
	if out, err := n.bpm("run", "smoke", "-e", "1X=y"); err == nil || !strings.Contains(out, "want NAME=VALUE") {
		t.Errorf("-e 1X=y: %v\n%s", err, out)
	}
	if out, err := n.bpm("start", "smoke", "-e", "X=y"); err == nil || !strings.Contains(out, "usage") {
		t.Errorf("start with -e: %v\n%s", err, out)
	}
}
