// Package monittest runs a real monit daemon of a test's own, on loopback,
// for the tests that talk to monit.
package monittest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus/bustest"
)

// Start runs monit on its own control file in dir, checking every second,
// with its HTTP interface on a free loopback port and checks (monit's
// check statements) appended; monit quits when the test ends. It returns
// the control file and the HTTP port. A test that must end what the
// checks started registers that cleanup before calling Start, so that it
// runs after monit has quit and cannot start it again.
func Start(t testing.TB, dir, checks string) (rc string, httpPort int) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("this test runs monit and its processes as root: run it as root (CI does)")
	}
	if _, err := exec.LookPath("monit"); err != nil {
		t.Fatal("this test needs monit: run `make deps` as root")
	}
	httpPort = bustest.FreePort(t)
	rc = filepath.Join(dir, "monitrc")
	conf := fmt.Sprintf(`set daemon 1
set log %[1]s/monit.log
set pidfile %[1]s/monit.pid
set idfile %[1]s/monit.id
set statefile %[1]s/monit.state
set httpd port %[2]d and use address 127.0.0.1 allow localhost
`, dir, httpPort) + checks
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("monit", "-c", rc).CombinedOutput(); err != nil {
		t.Fatalf("start monit: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("monit", "-c", rc, "quit").Run() })
	// monit forks into the background before its HTTP interface listens;
	// a test that asks it at once would find no one there.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("monit's HTTP interface on port %d did not listen within 20 s: %v", httpPort, err)
		}
	}
	return rc, httpPort
}
