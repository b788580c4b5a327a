package steps

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/monittest"
	"github.com/deployment-engine/engine/services/nodefs"
)

func TestPackagesOfInstallScript(t *testing.T) {
	got := PackagesOf(installScript([]string{"nginx-light", "haproxy"}, "true"))
	if want := []string{"nginx-light", "haproxy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("packages %v, want %v", got, want)
	}
	if got := PackagesOf(installScript(nil, "true")); got != nil {
		t.Errorf("packages of a script without: %v", got)
	}
}

// fakeMonit is a monit client for the start and restart scripts: its
// daemon's state is files in dir (status, pid); a reload makes it know
// the process, a start runs it, a restart gives it a new pid.
const fakeMonit = `#!/bin/sh
d=$(dirname "$0")
case $1 in
  -t) exit 0 ;;
  reload) echo reload >> "$d/asked"; [ -f "$d/status" ] || { echo "Not monitored" > "$d/status"; : > "$d/pid"; } ;;
  status) [ -f "$d/status" ] || { echo "Cannot find $2" >&2; exit 1; }
    printf 'Monit 5.33.0 uptime: 1m\n\nProcess %s\n  status                       %s\n  monitoring status            Monitored\n  pid                          %s\n  parent pid                   1\n' "'$2'" "$(cat "$d/status")" "$(cat "$d/pid")" ;;
  start) echo OK > "$d/status"; [ -s "$d/pid" ] || echo 100 > "$d/pid" ;;
  restart) echo "restart" >> "$d/asked"; echo $(( $(cat "$d/pid") + 1 )) > "$d/pid" ;;
esac
`

// The start and restart scripts against a fake monit: a change to a
// running process waits for a new pid, a reload in place for OK alone
// (its pid stays), a first start for monit to learn and run it, a
// restart for the new pid.
func TestStartScriptsWithMonit(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	run := func(t *testing.T, dir, script, status, pid string) (string, error) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "monit"), []byte(fakeMonit), 0o755); err != nil {
			t.Fatal(err)
		}
		if status != "" {
			_ = os.WriteFile(filepath.Join(dir, "status"), []byte(status+"\n"), 0o644)
			_ = os.WriteFile(filepath.Join(dir, "pid"), []byte(pid+"\n"), 0o644)
		}
		// The node's run directory, here the test's own; no monit
		// listens where the scripts ask first, so they use the client.
		script = strings.ReplaceAll(script, nodefs.Run, dir)
		script = strings.ReplaceAll(script, "/dev/tcp/"+nodefs.MonitHTTP, "/dev/tcp/127.0.0.1/1")
		script = strings.ReplaceAll(script, nodefs.MonitPid, filepath.Join(dir, "no-monit.pid"))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		name, script, status, pid, want string
		// fresh is what monitFresh holds before, left what it holds after
		fresh, left string
		// mark is what monitReload holds before (nil: no such file);
		// reload says monit is to be reloaded, after which it says done.
		mark   *string
		reload bool
	}{
		{name: "restart of a running process", script: startScript("svc", ""), status: "OK", pid: "7", want: "svc running"},
		{name: "reload in place", script: startScript("svc", "true"), status: "OK", pid: "7", want: "svc running"},
		{name: "first start", script: startScript("svc", ""), want: "svc running"},
		{name: "restart", script: RestartScript("svc"), status: "OK", pid: "7", want: "svc restarted: pid 7 -> 8"},
		// monit ran a process registered fresh on its own: it is started,
		// not restarted, and only its own line leaves monitFresh.
		{name: "fresh, run by monit already", script: startScript("svc", ""), status: "OK", pid: "7", want: "svc running",
			fresh: "other\nsvc\nlast one\n", left: "other\nlast one\n"},
		{name: "fresh, alone", script: startScript("svc", ""), status: "OK", pid: "7", want: "svc running", fresh: "svc\n", left: ""},
		// A register step marks the reload pending; an earlier engine's
		// mark is an empty file; a reload marks it done.
		{name: "reload pending", script: startScript("svc", ""), status: "OK", pid: "7", want: "svc running", mark: ptr("pending\n"), reload: true},
		{name: "reload pending, an earlier engine's mark", script: startScript("svc", ""), status: "OK", pid: "7", want: "svc running", mark: ptr(""), reload: true},
		{name: "reload done", script: startScript("svc", ""), status: "OK", pid: "7", want: "svc running", mark: ptr("done\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fresh := strings.Replace(monitFresh, nodefs.Run, dir, 1)
			if tc.fresh != "" {
				if err := os.WriteFile(fresh, []byte(tc.fresh), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			mark := strings.Replace(monitReload, nodefs.Run, dir, 1)
			if tc.mark != nil {
				if err := os.WriteFile(mark, []byte(*tc.mark), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := run(t, dir, tc.script, tc.status, tc.pid)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Errorf("%v\n%s", err, out)
			}
			asked, _ := os.ReadFile(filepath.Join(dir, "asked"))
			if got := strings.Contains(string(asked), "reload"); tc.mark != nil && got != tc.reload {
				t.Errorf("monit reloaded %v, want %v (mark %q)", got, tc.reload, *tc.mark)
			}
			if b, _ := os.ReadFile(mark); tc.reload && string(b) != "done\n" {
				t.Errorf("after the reload the mark holds %q, want done", b)
			}
			if tc.fresh == "" {
				return
			}
			if b, _ := os.ReadFile(fresh); string(b) != tc.left {
				t.Errorf("monitFresh holds %q after, want %q", b, tc.left)
			}
			if strings.Contains(string(asked), "restart") {
				t.Errorf("a process monit ran fresh was restarted:\n%s", out)
			}
		})
	}
}

// The start, restart and watch scripts against a real monit. Where monit's
// HTTP interface lets localhost in, they read states and ask for starts
// and restarts through bash's /dev/tcp: monit's client runs only to check
// its config before a first start (the reload is monit's SIGHUP), and to
// reload it after a removal. Where it asks for a
// password, they go to monit's client, which has it.
func TestStartScriptsAgainstRealMonit(t *testing.T) {
	for _, tc := range []struct {
		name, allow string
		client      []string // what monit's client was asked, in order
	}{
		{"localhost", "allow localhost", []string{"-v -t", "reload"}},
		{"password", "allow admin:monit", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pidfile := filepath.Join(dir, "svc.pid")
			t.Cleanup(func() {
				if b, err := os.ReadFile(pidfile); err == nil {
					if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
			if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			rc, port := monittest.Start(t, dir, "include "+dir+"/conf.d/*\n")
			if tc.allow != "allow localhost" {
				b, _ := os.ReadFile(rc)
				if err := os.WriteFile(rc, []byte(strings.Replace(string(b), "allow localhost", tc.allow, 1)), 0o600); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command("monit", "-c", rc, "reload").CombinedOutput(); err != nil {
					t.Fatalf("reload: %v: %s", err, out)
				}
				waitHTTP(t, port, "401")
			}
			// monit's client, as a node's: its own control file, each call
			// written down.
			real, err := exec.LookPath("monit")
			if err != nil {
				t.Fatal(err)
			}
			wrapper := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s/asked\nexec %s -c %s \"$@\"\n", dir, real, rc)
			bin := filepath.Join(dir, "bin")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bin, "monit"), []byte(wrapper), 0o755); err != nil {
				t.Fatal(err)
			}
			run := func(script string) string {
				t.Helper()
				script = strings.ReplaceAll(script, nodefs.State, filepath.Join(dir, "state"))
				script = strings.ReplaceAll(script, "/etc/monit/conf.d/", dir+"/conf.d/")
				script = strings.ReplaceAll(script, "/dev/tcp/"+nodefs.MonitHTTP, fmt.Sprintf("/dev/tcp/127.0.0.1/%d", port))
				script = strings.ReplaceAll(script, nodefs.MonitPid, filepath.Join(dir, "monit.pid"))
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, "bash", "-c", script)
				cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				return string(out)
			}
			pid := func() string { b, _ := os.ReadFile(pidfile); return strings.TrimSpace(string(b)) }

			check := fmt.Sprintf(`check process de-svc with pidfile %[1]s
  start program = "/sbin/start-stop-daemon --start --oknodo --background --make-pidfile --pidfile %[1]s --exec /bin/sleep -- 100003"
  stop program = "/sbin/start-stop-daemon --stop --oknodo --pidfile %[1]s"
`, pidfile)
			if err := os.WriteFile(filepath.Join(dir, "conf.d", "de-svc"), []byte(check), 0o600); err != nil {
				t.Fatal(err)
			}
			run(registerScript("de-svc"))
			if out := run(startScript("de-svc", "")); !strings.Contains(out, "de-svc running") {
				t.Fatalf("first start: %s", out)
			}
			first := pid()
			if out := run(startScript("de-svc", "")); !strings.Contains(out, "applying change to running de-svc") || pid() == first {
				t.Fatalf("change: pid %s after %s: %s", pid(), first, out)
			}
			second := pid()
			if out := run(RestartScript("de-svc")); !strings.Contains(out, "de-svc restarted: pid "+second+" -> "+pid()) || pid() == second {
				t.Fatalf("restart from %s: %s", second, out)
			}
			if out := run(watchScript("de-svc", nil, 0, 10000)); !strings.Contains(out, "de-svc healthy") {
				t.Fatalf("watch: %s", out)
			}
			last := pid()
			if out := run(removeScript("de-svc", "de-svc", nil)); !strings.Contains(out, "removed de-svc") {
				t.Fatalf("remove: %s", out)
			}
			if n, _ := strconv.Atoi(last); n <= 0 || syscall.Kill(n, 0) == nil {
				t.Errorf("process %s still runs after the removal", last)
			}
			if _, err := os.Stat(filepath.Join(dir, "conf.d", "de-svc")); !os.IsNotExist(err) {
				t.Errorf("the check is still there after the removal: %v", err)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "asked"))
			asked := strings.Split(strings.TrimSpace(string(b)), "\n")
			if tc.client != nil {
				// the first start's check (its reload is a signal), the
				// removal's reload
				if want := tc.client; !reflect.DeepEqual(asked, want) {
					t.Errorf("monit's client was asked %q, want %q", asked, want)
				}
				// What the check printed is kept for the agent, whole.
				if b, err := os.ReadFile(filepath.Join(dir, "state", "monit-verbose")); err != nil || !strings.Contains(string(b), "Process Name") ||
					!strings.HasSuffix(strings.TrimSpace(string(b)), "Control file syntax OK") {
					t.Errorf("the kept check: %v %q", err, b)
				}
				return
			}
			for _, w := range []string{"status de-svc", "start de-svc", "restart de-svc", "stop de-svc"} {
				if !slices.Contains(asked, w) {
					t.Errorf("monit asks for a password: its client should have been asked %q; it was asked %q", w, asked)
				}
			}
		})
	}
}

// waitHTTP waits until monit's HTTP interface on port answers code.
func waitHTTP(t *testing.T, port int, code string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		fmt.Fprint(c, "GET /_status?format=text HTTP/1.0\r\n\r\n")
		b := make([]byte, 12)
		_, _ = io.ReadFull(c, b)
		c.Close()
		if strings.HasPrefix(string(b), "HTTP/1.0 "+code) {
			return
		}
	}
	t.Fatalf("monit on port %d never answered %s", port, code)
}

// de_mhup signals monit only: a pid file that names another process, or
// holds no pid, leaves the reload to monit's client.
func TestMonitHupOnlySignalsMonit(t *testing.T) {
	dir := t.TempDir()
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	pidfile := filepath.Join(dir, "monit.pid")
	for _, tc := range []struct{ name, content string }{
		{"another process", fmt.Sprintf("%d\n", sleeper.Process.Pid)},
		{"no pid", "not-a-pid\n"},
		{"empty", ""},
	} {
		if err := os.WriteFile(pidfile, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		script := strings.ReplaceAll(monitStat, nodefs.MonitPid, pidfile) + "de_mhup\n"
		if err := exec.Command("bash", "-c", script).Run(); err == nil {
			t.Errorf("%s: de_mhup succeeded, want it to fail for monit's client to reload", tc.name)
		}
	}
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("de_mhup signalled a process that is not monit: %v", err)
	}
}

// de_nap sleeps as long as it is asked without a process of its own on a
// pseudo-terminal's master, and falls back to a pipe of its own (a fork)
// where that device cannot be opened or answers at once: a nap that did
// not wait would make every wait loop spin through its deadline.
func TestNapWaitsWithoutAProcess(t *testing.T) {
	for _, tc := range []struct {
		name, dev string
		forks     bool
	}{
		{"pseudo-terminal", "/dev/ptmx", false},
		{"no such device", "/nonexistent/ptmx", true},
		{"a device that answers at once", "/dev/null", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// $! is the pid of the shell's last process substitution.
			script := "p=x\n" + monitStat + "de_wdev=" + tc.dev + "\nde_nap 0.2\nde_nap 0.2\necho \"forked=${!:+yes}\"\n"
			start := time.Now()
			out, err := exec.Command("bash", "-c", script).CombinedOutput()
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if took < 400*time.Millisecond {
				t.Errorf("two naps of 0.2 s took %s", took)
			}
			want := "forked=\n"
			if tc.forks {
				want = "forked=yes\n"
			}
			if string(out) != want {
				t.Errorf("output %q, want %q", out, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
