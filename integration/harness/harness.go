// Package harness runs the real engine binary for the integration suites,
// which reach it through its API only.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

var (
	buildOnce sync.Once
	binPath   string
	built     bool // binPath's directory is Binary's own, to remove
	buildErr  error
)

// Binary builds bin/deployment-engine once per test process, with the
// node agent (de-agent) beside it, where the engine finds it, and returns
// the engine's path; with DE_TEST_BIN (make test sets it) it takes the
// two from that directory instead, as make build made them.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// make test builds both binaries once (make build) and names
		// them here, so the packages it runs side by side do not each
		// build them again, and test the binaries users run.
		if dir := os.Getenv("DE_TEST_BIN"); dir != "" {
			binPath = filepath.Join(dir, "deployment-engine")
			for _, f := range []string{binPath, filepath.Join(dir, "de-agent")} {
				if _, err := os.Stat(f); err != nil {
					buildErr = fmt.Errorf("DE_TEST_BIN=%s: %w (run make build)", dir, err)
					return
				}
			}
			return
		}
		built = true
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "de-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "deployment-engine")
		for _, b := range []struct{ module, pkg, out string }{
			{"deploy", "./cmd/deployment-engine", binPath},
			{"monitor", "./cmd/de-agent", filepath.Join(dir, "de-agent")},
		} {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = filepath.Join(root, b.module)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RemoveBinary removes what Binary built (two binaries, about 54 MB); a
// package's TestMain calls it once its tests have run.
func RemoveBinary() {
	if built && binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// Main runs a package's tests, then removes what Binary built: the
// TestMain of a package whose tests start engines and need no bed.
func Main(m *testing.M) int {
	code := m.Run()
	RemoveBinary()
	return code
}

// AgentBinary is the node agent Binary builds beside the engine.
func AgentBinary(t testing.TB) string {
	return filepath.Join(filepath.Dir(Binary(t)), "de-agent")
}

// Engine is a running engine process.
type Engine struct {
	t       testing.TB
	Bin     string
	Data    string
	Addr    string // host:port of the API
	Token   string
	Args    []string
	cmd     *exec.Cmd
	LogPath string
	noHTTP  bool
	mark    int // "engine starting" lines in the log before the last launch
}

// Options start an engine.
type Options struct {
	Data string   // data dir; a fresh temp dir when empty
	Args []string // extra serve flags
	Port int      // API port; a free one when 0
	// NoHTTP starts an engine that serves no API (serve --only without
	// api): it is ready once it has connected to its bus.
	NoHTTP bool
}

// Start runs `deployment-engine serve` and waits for /healthz. A port it
// picked that another process took before the engine bound it (an
// outgoing connection's ephemeral port, from the same range) is picked
// again, up to three times.
func Start(t testing.TB, o Options) *Engine {
	t.Helper()
	pick := o.Port == 0
	for try := 1; ; try++ {
		e := Launch(t, o)
		err := e.Ready(30 * time.Second)
		if err == nil {
			return e
		}
		taken := strings.Contains(e.Log(), fmt.Sprintf("listen on :%s:", strings.Split(e.Addr, ":")[1]))
		if !pick || try == 3 || !e.exited() || !taken {
			t.Fatal(err)
		}
		e.Stop()
		t.Logf("the engine's port %s was taken before it bound it: another port", e.Addr)
		o.Port, o.Data = 0, e.Data
	}
}

// Launch runs `deployment-engine serve` and returns at once, as an init
// system starts a service; Ready waits for it.
func Launch(t testing.TB, o Options) *Engine {
	t.Helper()
	if o.Data == "" {
		o.Data = t.TempDir()
	}
	if o.Port == 0 {
		o.Port = bustest.FreePort(t)
	}
	e := &Engine{t: t, Bin: Binary(t), Data: o.Data, Addr: "127.0.0.1:" + strconv.Itoa(o.Port), Token: "e2e-token-" + strconv.Itoa(o.Port), Args: o.Args, noHTTP: o.NoHTTP}
	e.LogPath = filepath.Join(o.Data, "engine-test.log")
	e.launch()
	t.Cleanup(e.Stop)
	return e
}

func (e *Engine) start() {
	e.t.Helper()
	e.launch()
	if err := e.Ready(30 * time.Second); err != nil {
		e.t.Fatal(err)
	}
}

func (e *Engine) launch() {
	e.t.Helper()
	logf, err := os.OpenFile(e.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	args := append([]string{"serve", "--listen", ":" + strings.Split(e.Addr, ":")[1], "--data", e.Data}, e.Args...)
	e.cmd = exec.Command(e.Bin, args...)
	e.cmd.Env = append(os.Environ(), "DE_API_TOKEN="+e.Token)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	// The engine dies with the test process: a test binary killed by its
	// timeout left an engine on the bed's NATS port, which the next run's
	// engine could not take.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e.mark = strings.Count(e.Log(), "engine starting")
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
}

// Ready waits until the engine launched last answers /healthz, or, serving
// no API, has connected to its bus; an engine that exits stops the wait.
func (e *Engine) Ready(within time.Duration) error {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if e.cmd == nil || e.exited() {
			return fmt.Errorf("engine exited before it was ready; its log:\n%s", e.Log())
		}
		if e.noHTTP {
			if strings.Count(e.Log(), "engine starting") > e.mark {
				return nil
			}
			continue
		}
		if resp, err := http.Get("http://" + e.Addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	if e.noHTTP {
		return fmt.Errorf("engine did not connect to its bus within %s; its log:\n%s", within, e.Log())
	}
	return fmt.Errorf("engine did not answer /healthz within %s; its log:\n%s", within, e.Log())
}

// exited tells whether the engine's process has ended: a zombie until
// Stop reaps it.
func (e *Engine) exited() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// Log returns what the engine printed.
func (e *Engine) Log() string {
	b, _ := os.ReadFile(e.LogPath)
	return string(b)
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop sends SIGTERM and waits.
func (e *Engine) Stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
		e.t.Errorf("engine did not stop within 20s of SIGTERM")
	}
	e.cmd = nil
}

// Kill9 kills the engine without warning.
func (e *Engine) Kill9() {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	_ = e.cmd.Wait()
	e.cmd = nil
}

// PID is the running engine's process id (0 when stopped), for
// benchmarks that read its CPU time and memory.
func (e *Engine) PID() int {
	if e.cmd == nil || e.cmd.Process == nil {
		return 0
	}
	return e.cmd.Process.Pid
}

// Restart starts the engine again on the same data dir.
func (e *Engine) Restart() { e.start() }

// ResetNodes takes nodes back to before any deployment, so that every
// step of the next one runs: the process groups of steps still running
// are killed, the monit checks named in comps (space-separated) stopped
// and removed, the test services' processes (matching sleepPattern)
// killed, and the engine's node state and paths removed. Then it checks:
// a node that still holds any of it (a state dir, an owner, a check, a
// chain shell, an agent, a test service) fails the test, naming what it
// found, rather than leaving the next test a node that is not fresh.
func ResetNodes(t testing.TB, nodes []*testbed.Node, comps, sleepPattern string, paths ...string) {
	t.Helper()
	script := `for f in /var/lib/deployment-engine/run/chain-*.pid; do [ -f "$f" ] && read -r p < "$f" && kill -KILL "$p" 2>/dev/null; done
for f in /var/lib/deployment-engine/run/*.pgid; do [ -f "$f" ] && read -r pg _ < "$f" && [ -n "$pg" ] && kill -KILL -- -"$pg" 2>/dev/null; done
for c in ` + comps + `; do
  if [ -e /etc/monit/conf.d/$c ]; then monit stop $c >/dev/null 2>&1 || true; rm -f /etc/monit/conf.d/$c; fi
done
monit reload >/dev/null 2>&1 || true
pkill -KILL -f '` + sleepPattern + `' || true
pkill -KILL -f '^/usr/local/bin/de-agen[t] ' || true
pkill -KILL -f '^/usr/local/bin/deployment-engin[e] agent' || true
rm -rf /var/lib/deployment-engine /usr/local/bin/de-agent ` + strings.Join(paths, " ")
	// What a fresh node does not hold; processes may take a moment to go.
	// (A chain shell's command holds its functions; the brackets keep the
	// patterns from matching this check's own shell, and the agent's text
	// out of this script's command line.)
	check := `found=""
[ -e /var/lib/deployment-engine ] && found="$found /var/lib/deployment-engine"
for c in ` + comps + `; do [ -e /etc/monit/conf.d/$c ] && found="$found monit-check:$c"; done
for p in ` + strings.Join(paths, " ") + `; do [ -e "$p" ] && found="$found $p"; done
pgrep -f '` + sleepPattern + `' >/dev/null && found="$found process:` + sleepPattern + `"
[ -e /usr/local/bin/de-agent ] && found="$found /usr/local/bin/de-agent"
pgrep -f '^/usr/local/bin/de-agen[t] ' >/dev/null && found="$found process:agent"
pgrep -f '^/usr/local/bin/deployment-engin[e] agent' >/dev/null && found="$found process:old-agent"
pgrep -f 'de_[s]ettle' >/dev/null && found="$found process:chain-shell"
echo "$found"`
	for _, n := range nodes {
		if _, err := n.Exec(context.Background(), script); err != nil {
			t.Fatal(err)
		}
		var found string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out, err := n.Exec(context.Background(), check)
			if err != nil {
				t.Fatal(err)
			}
			if found = strings.TrimSpace(string(out)); found == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s (%s) is not fresh after its reset: it still holds%s", n.Name, n.IP, " "+found)
			}
		}
	}
}
