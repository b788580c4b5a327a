package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// A node logged in to as another user than root (properties.node_users):
// every command of the engine runs there through sudo. Root's key is
// taken off the node for the test, so that only the user gets in. A user
// whom sudo asks for a password is refused at the deploy's node check,
// saying what to give; with passwordless sudo the deployment succeeds,
// its files and processes are root's, and a second deploy changes
// nothing.
func TestSudoLogin(t *testing.T) {
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatal("sudo is not installed on this machine, whose programs the bed's nodes share: make deps installs it")
	}
	const user, n = "deops", 3
	ip := ips(n)[0]
	inNode(t, n, fmt.Sprintf(`id -u %[1]s >/dev/null 2>&1 || useradd -m -s /bin/bash %[1]s
usermod -p '*' %[1]s
install -d -m 700 -o %[1]s -g %[1]s /home/%[1]s/.ssh
install -m 600 -o %[1]s -g %[1]s /root/.ssh/authorized_keys /home/%[1]s/.ssh/authorized_keys
mv /root/.ssh/authorized_keys /root/.ssh/authorized_keys.away`, user))
	defer inNode(t, n, fmt.Sprintf(`[ ! -e /root/.ssh/authorized_keys.away ] || mv /root/.ssh/authorized_keys.away /root/.ssh/authorized_keys
rm -f /etc/sudoers.d/%[1]s
pkill -u %[1]s || true
userdel -r %[1]s 2>/dev/null || true`, user))

	e := engine(t, "--catalog", catalogDir(t))
	cfg := config("e2e", map[string][]string{"delta": {ip}})
	cfg["properties"].(map[string]any)["node_users"] = map[string]string{ip: user}
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != http.StatusCreated {
		t.Fatalf("config: %d %s", code, body)
	}

	// No sudo rule yet: sudo would ask for a password.
	code, body := e.Do("POST", "/deployment-engine/deploy", nil)
	if code != http.StatusBadGateway || !strings.Contains(string(body), "NOPASSWD") {
		t.Fatalf("deploy to a user without passwordless sudo: %d %s, want 502 saying to give it NOPASSWD", code, body)
	}

	inNode(t, n, fmt.Sprintf("echo '%[1]s ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/%[1]s && chmod 440 /etc/sudoers.d/%[1]s", user))
	id := deploy(t, e)
	if d := wait(t, e, id, 5*time.Minute); d.State != contract.DeploySucceeded {
		t.Fatalf("deployment through sudo: %s\n%s", d.State, failures(d))
	}
	if got := strings.TrimSpace(inNode(t, n, "stat -c %U /etc/e2e/delta.conf /var/lib/deployment-engine/owner; ps -o user= -p $(cat /run/e2e-delta.pid)")); got != "root\nroot\nroot" {
		t.Errorf("the deployment's file, claim and process belong to %q, want root", got)
	}
	if got := inNode(t, n, "[ -e /root/.ssh/authorized_keys ] && echo root can log in || true"); got != "" {
		t.Fatalf("root's key was back on the node during the test: %s", got)
	}
	id = deploy(t, e)
	if d := wait(t, e, id, 5*time.Minute); d.State != contract.DeploySucceeded || d.Changed != 0 {
		t.Errorf("the same config again: %s, %d changed, want succeeded with nothing changed\n%s", d.State, d.Changed, failures(d))
	}
}
