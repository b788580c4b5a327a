package monit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/monittest"
)

func TestOutcome(t *testing.T) {
	tests := []struct {
		out  string
		code int
		want string
	}{
		{"ok: web stopped\n", 0, ""},
		{"some monit chatter\nok: web runs as process 12\n", 0, ""},
		{"failed: 'redis' failed to stop (exit status 2) -- insecure; still running: process 7\n", 1, "'redis' failed to stop (exit status 2) -- insecure; still running: process 7"},
		{"ok: web stopped\n", 1, "the control script exited 1: ok: web stopped"},
		{"", 127, "the control script exited 127 without a word"},
		{"sh: monit: not found\n", 127, "the control script exited 127: sh: monit: not found"},
	}
	for _, tt := range tests {
		if got := Outcome(tt.out, tt.code); got != tt.want {
			t.Errorf("Outcome(%q, %d) = %q, want %q", tt.out, tt.code, got, tt.want)
		}
	}
}

func TestParseProbe(t *testing.T) {
	got, err := ParseProbe("alive redis 42\nalive web 7\nstopfailed redis 'redis' failed to stop (exit status 2) -- no \nstopfailed nats gone long ago\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Unsupervised{"redis": {42, "'redis' failed to stop (exit status 2) -- no"}, "web": {7, ""}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ParseProbe = %v, want %v", got, want)
	}
	if r := got["redis"].Reason("Not monitored"); r != "stop failed: 'redis' failed to stop (exit status 2) -- no" {
		t.Errorf("reason %q", r)
	}
	if r := got["web"].Reason("Not monitored"); !strings.Contains(r, "process 7 runs") {
		t.Errorf("reason %q", r)
	}
	for _, bad := range []string{"alive redis x", "alive redis -3", "alive", "dead web 3", "stopfailed"} {
		if _, err := ParseProbe(bad); err == nil {
			t.Errorf("ParseProbe(%q): no error", bad)
		}
	}
}

// FuzzProbe holds that the probe parser never panics and gives only live pids.
func FuzzProbe(f *testing.F) {
	f.Add("alive redis 42\nstopfailed redis words\n")
	f.Add("stopfailed x \n\nalive y 1")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseProbe(s)
		if err != nil {
			return
		}
		for name, u := range got {
			if name == "" || u.PID <= 0 {
				t.Fatalf("ParseProbe(%q) gave %q %+v", s, name, u)
			}
		}
	})
}

// The control and probe scripts run against a real monit daemon of the
// test's own: a process that listens on a port and stops cleanly, and one
// whose stop program fails, as the starter's redis stop once did.
func TestControlScriptWithMonit(t *testing.T) {
	dir := t.TempDir()
	port := bustest.FreePort(t)
	good := filepath.Join(dir, "good.sh")
	_ = os.WriteFile(good, []byte(fmt.Sprintf(`exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:%d", Listen => 5, ReuseAddr => 1) or die $!; sleep 100000'`, port)), 0o755)
	t.Cleanup(func() {
		for _, f := range []string{"good.pid", "stuck.pid"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	rc, _ := monittest.Start(t, dir, fmt.Sprintf(`check process de-ctl-good with pidfile %[1]s/good.pid
  start program = "/sbin/start-stop-daemon --start --background --make-pidfile --pidfile %[1]s/good.pid --exec /bin/sh -- %[2]s"
  stop program = "/sbin/start-stop-daemon --stop --pidfile %[1]s/good.pid --retry 5"
check process de-ctl-stuck with pidfile %[1]s/stuck.pid
  start program = "/sbin/start-stop-daemon --start --background --make-pidfile --pidfile %[1]s/stuck.pid --exec /bin/sleep -- 77719"
  stop program = "/bin/sh -c 'echo the stop program refuses >&2; exit 2'" with timeout 2 seconds
`, dir, good))
	monitCmd := "monit -c " + rc
	marks := filepath.Join(dir, "marks")
	run := func(script string, args ...string) (string, int) {
		cmd := exec.Command("/bin/sh", append([]string{"-c", script, "test"}, args...)...)
		cmd.Env = append(os.Environ(), "MONIT="+monitCmd)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	control := func(action, proc string) string {
		t.Helper()
		start := time.Now()
		out, code := run(ControlScript, ControlArgs(action, proc, 20*time.Second, marks)...)
		t.Logf("%s %s: %s in %s", action, proc, strings.TrimSpace(out), time.Since(start).Round(10*time.Millisecond))
		return Outcome(out, code)
	}
	pidOf := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(dir, name+".pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	listening := func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for !(listening() && alive(pidOf("stuck"))) {
		if time.Now().After(deadline) {
			out, _ := exec.Command("monit", "-c", rc, "summary").CombinedOutput()
			t.Fatalf("monit did not start the processes: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	good0 := pidOf("good")
	if why := control("stop", "de-ctl-good"); why != "" {
		t.Fatalf("stop: %s", why)
	}
	if listening() || alive(good0) {
		t.Fatalf("stop said done, yet the port is open (%v) or process %d alive (%v)", listening(), good0, alive(good0))
	}
	if why := control("restart", "de-ctl-good"); why != "" {
		t.Fatalf("restart: %s", why)
	}
	if !listening() || !alive(pidOf("good")) || pidOf("good") == good0 {
		t.Fatalf("restart said done, yet the port is closed or no new process runs")
	}

	stuck := pidOf("stuck")
	why := control("stop", "de-ctl-stuck")
	if !strings.Contains(why, "'de-ctl-stuck' failed to stop (exit status 2)") || !strings.Contains(why, "the stop program refuses") ||
		!strings.Contains(why, fmt.Sprintf("process %d", stuck)) {
		t.Fatalf("a stop that failed: %q", why)
	}
	if !alive(stuck) {
		t.Fatal("the stuck process died: the test proves nothing")
	}
	out, code := run(ProbeScript, marks)
	probe, err := ParseProbe(out)
	if err != nil || code != 0 {
		t.Fatalf("probe: %v %d %q", err, code, out)
	}
	if u := probe["de-ctl-stuck"]; u.PID != stuck || !strings.Contains(u.StopFailed, "failed to stop") {
		t.Fatalf("probe of the stuck process: %+v (all: %v)", u, probe)
	}
	// The agent's own probe, from monit -v -t and the files, says the same.
	verbose, _ := exec.Command("monit", "-c", rc, "-v", "-t").Output()
	if local := ProbeLocal(PidFiles(string(verbose)), marks); local != out {
		t.Fatalf("the agent's probe:\n%s\nthe script's:\n%s", local, out)
	}
	// Again: monit no longer supervises it, yet the stop must run its
	// stop program rather than call it done.
	if why := control("stop", "de-ctl-stuck"); !strings.Contains(why, "failed to stop") {
		t.Fatalf("a second stop of an unsupervised process: %q", why)
	}
	// A restart that cannot stop the old process is no restart.
	if why := control("restart", "de-ctl-stuck"); !strings.Contains(why, "failed to stop") {
		t.Fatalf("restart of a process that cannot stop: %q", why)
	}
	if why := control("stop", "de-ctl-ghost"); !strings.Contains(why, "no process") {
		t.Fatalf("a process monit does not know: %q", why)
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}
