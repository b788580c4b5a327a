package bosh

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/kit"
)

// node is a job's node in a directory: BOSH's layout under root, a monit
// that keeps each process's state in a file and logs its stops, and a job
// "web" of two processes whose version v1 runs, its lifecycle scripts
// logging to the same log with the environment BOSH gives them.
type node struct {
	t    *testing.T
	root string
	log  string
	path string
}

func newNode(t *testing.T, preStopExit int) *node {
	t.Helper()
	for _, tool := range []string{"bash", "awk", "find", "mktemp", "tee"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	n := &node{t: t, root: t.TempDir()}
	n.log = filepath.Join(n.root, "log")
	state := filepath.Join(n.root, "monit-state")
	bin := filepath.Join(n.root, "bin")
	v1 := filepath.Join(n.root, "var/vcap/data/jobs/web/v1")
	n.write(filepath.Join(bin, "monit"), 0o755, `#!/bin/bash
case "$1" in
status) if [ -e @STATE@/"$2" ]; then w=OK; else w="Not monitored"; fi
  printf "Process '%s'\n  status                       %s\n" "$2" "$w" ;;
stop) echo "monit stop $2" >>@LOG@; rm -f @STATE@/"$2" ;;
esac
`)
	n.write(filepath.Join(v1, "bin/pre-stop"), 0o755, "#!/bin/bash\necho \"pre-stop $BOSH_VM_NEXT_STATE $BOSH_INSTANCE_NEXT_STATE $BOSH_DEPLOYMENT_NEXT_STATE\" >>@LOG@\n"+
		"echo pre-stop says hello\n"+strings.Repeat("exit 3\n", min(preStopExit, 1)))
	n.write(filepath.Join(v1, "bin/drain"), 0o755, "#!/bin/bash\necho \"drain $1 $BOSH_JOB_STATE\" >>@LOG@\necho 0\n")
	n.write(filepath.Join(v1, "bin/post-stop"), 0o755, "#!/bin/bash\necho \"post-stop, $(ls @STATE@ | wc -l) running\" >>@LOG@\n")
	n.write(filepath.Join(n.root, "etc/monit/conf.d/web"), 0o600, "check process web\n  with pidfile /x\ncheck process web-worker\n  with pidfile /y\n")
	for _, p := range []string{"web", "web-worker"} {
		n.write(filepath.Join(state, p), 0o644, "up")
	}
	// The job's log dir, as its apply made it.
	for _, d := range []string{"var/vcap/jobs", "var/vcap/sys/log/web"} {
		if err := os.MkdirAll(filepath.Join(n.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(v1, filepath.Join(n.root, "var/vcap/jobs/web")); err != nil {
		t.Fatal(err)
	}
	n.path = bin + ":" + os.Getenv("PATH")
	return n
}

// write writes a file whose @LOG@ and @STATE@ name the node's log and monit
// state.
func (n *node) write(path string, mode os.FileMode, content string) {
	n.t.Helper()
	content = strings.NewReplacer("@LOG@", n.log, "@STATE@", filepath.Join(n.root, "monit-state")).Replace(content)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		n.t.Fatal(err)
	}
}

// run runs a node script with the node's paths in place of the real ones.
func (n *node) run(script string) (string, error) {
	script = strings.NewReplacer(VcapDir, n.root+VcapDir, "/etc/monit", n.root+"/etc/monit",
		"/var/lib/deployment-engine", n.root+"/var/lib/deployment-engine", "chown vcap:vcap", "true").Replace(script)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"PATH=" + n.path}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *node) lines() string {
	b, _ := os.ReadFile(n.log)
	return string(b)
}

const drained = `drain job_shutdown {"persistent_disk":0}` + "\n"

// A job is stopped as BOSH stops one: its pre-stop, told what is kept, then
// its drain with its job state, monit's stop of every process, then its
// post-stop once they all stopped; an update, a removal and a stop through
// monit (the stop wrapper) each, and a pre-stop that fails stops an update
// but not a removal.
func TestStopLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name        string
		preStopExit int
		script      string
		wantErr     bool
		want        string
		linkTo      string // "" when the job's files must be gone
	}{
		{name: "update", script: applyScript("web", "v2", nil), linkTo: "v2",
			want: "pre-stop keep keep keep\n" + `drain job_changed {"persistent_disk":0}` + "\nmonit stop web\nmonit stop web-worker\npost-stop, 0 running\n"},
		{name: "update whose pre-stop fails", preStopExit: 3, script: applyScript("web", "v2", nil), wantErr: true, linkTo: "v1",
			want: "pre-stop keep keep keep\n"},
		{name: "removal", script: RemoveScript("web"),
			want: "pre-stop delete delete keep\n" + drained + "monit stop web\nmonit stop web-worker\npost-stop, 0 running\n"},
		{name: "removal whose pre-stop fails", preStopExit: 3, script: RemoveScript("web"),
			want: "pre-stop delete delete keep\n" + drained + "monit stop web\nmonit stop web-worker\npost-stop, 0 running\n"},
		{name: "stop through monit", script: stopWrapper("web", "echo stop program >>"+"@LOG@"), linkTo: "v1",
			want: "pre-stop keep keep keep\n" + drained + "stop program\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, tc.preStopExit)
			out, err := n.run(strings.ReplaceAll(tc.script, "@LOG@", n.log))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want one: %v\n%s", err, tc.wantErr, out)
			}
			if got := n.lines(); got != tc.want {
				t.Errorf("the node saw\n%s\nwant\n%s\n(output %s)", got, tc.want, out)
			}
			if strings.Contains(tc.name, "pre-stop") && !strings.Contains(out, "pre-stop of web failed (exit 3)") {
				t.Errorf("the failed pre-stop is not said:\n%s", out)
			}
			link, _ := os.Readlink(filepath.Join(n.root, "var/vcap/jobs/web"))
			if got := filepath.Base(link); (link == "" && tc.linkTo != "") || (link != "" && got != tc.linkTo) {
				t.Errorf("the job links to %q, want %q", link, tc.linkTo)
			}
			if b, _ := os.ReadFile(filepath.Join(n.root, "var/vcap/sys/log/web/pre-stop.stdout.log")); !strings.Contains(string(b), "pre-stop says hello") {
				t.Errorf("pre-stop's output is not in its log: %q", b)
			}
			if _, err := os.Stat(filepath.Join(n.root, "var/vcap/sys/run/web/.de-drained")); err == nil {
				t.Error("the engine's drained marker outlives the stop")
			}
		})
	}
}

// The engine's own pre-stop and drain before an update stand in for the
// stop wrappers' while its marker is fresh: a job of two processes is not
// drained once per process. A stale marker, left by a step that failed,
// does not.
func TestStopWrapperSkipsWhatTheEngineRan(t *testing.T) {
	for _, tc := range []struct {
		name string
		age  string
		want string
	}{
		{"fresh marker", "", "stop program\nstop program\n"},
		{"stale marker", "-d '-1 hour'", "pre-stop keep keep keep\n" + drained + "stop program\npre-stop keep keep keep\n" + drained + "stop program\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 0)
			wrapper := stopWrapper("web", "echo stop program >>"+n.log)
			out, err := n.run("mkdir -p /var/vcap/sys/run/web && touch " + tc.age + " /var/vcap/sys/run/web/.de-drained\n" +
				"bash -c " + kit.ShellQuote(wrapper) + " && bash -c " + kit.ShellQuote(wrapper))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := n.lines(); got != tc.want {
				t.Errorf("the node saw\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
