package steps

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

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
  reload) [ -f "$d/status" ] || { echo "Not monitored" > "$d/status"; : > "$d/pid"; } ;;
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
	run := func(t *testing.T, script, status, pid string) (string, error) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "monit"), []byte(fakeMonit), 0o755); err != nil {
			t.Fatal(err)
		}
		if status != "" {
			_ = os.WriteFile(filepath.Join(dir, "status"), []byte(status+"\n"), 0o644)
			_ = os.WriteFile(filepath.Join(dir, "pid"), []byte(pid+"\n"), 0o644)
		}
		// The node's run directory, here the test's own.
		script = strings.ReplaceAll(script, nodefs.Run, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		name, script, status, pid, want string
	}{
		{"restart of a running process", startScript("svc", ""), "OK", "7", "svc running"},
		{"reload in place", startScript("svc", "true"), "OK", "7", "svc running"},
		{"first start", startScript("svc", ""), "", "", "svc running"},
		{"restart", RestartScript("svc"), "OK", "7", "svc restarted: pid 7 -> 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.script, tc.status, tc.pid)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Errorf("%v\n%s", err, out)
			}
		})
	}
}
