package installer

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// A command run through sudo (asRoot) is the same command: its words,
// quotes, input, output and exit status pass through, and sudo is told
// never to ask for a password. A stand-in sudo on PATH checks its flags
// and runs what it is given.
func TestAsRoot(t *testing.T) {
	dir := t.TempDir()
	fake := "#!/bin/sh\n[ \"$1\" = -n ] && [ \"$2\" = -- ] || { echo \"sudo asked: $*\" >&2; exit 99; }\nshift 2\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "sudo"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(cmd string) (string, int) {
		c := exec.Command("sh", "-c", cmd)
		c.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
		c.Stdin = strings.NewReader("from stdin\n")
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return string(out), c.ProcessState.ExitCode()
	}
	for _, cmd := range []string{
		`echo "two  words" 'it'\''s' $((1+1)) "$0"`,
		"cat; echo done",
		"bash -s",
		"echo to stderr >&2; exit 7",
		`x='; rm -rf /tmp/nothing-here'; echo "$x"`,
	} {
		want, wantCode := run(cmd)
		got, code := run(asRoot(cmd))
		if got != want || code != wantCode {
			t.Errorf("%q through sudo: %q exit %d, want %q exit %d", cmd, got, code, want, wantCode)
		}
	}
}

// The config's password is root's: a node logged in to as another user is
// never offered it, and one that has nothing else is refused saying so.
func TestUserNodeNotOfferedRootPassword(t *testing.T) {
	const ip = "10.9.0.7"
	users := map[string]string{ip: "admin"}
	if _, err := authMethods(contract.Auth{Password: "root-secret", Users: users}, ip); err == nil || !strings.Contains(err.Error(), "with a key alone") {
		t.Errorf("a user node with the root password alone: %v", err)
	}
	m, err := authMethods(contract.Auth{Password: "root-secret", Key: keyPath, Users: users}, ip)
	if err != nil || len(m) != 1 {
		t.Errorf("a user node with a key and the root password: %d methods, %v; want the key alone", len(m), err)
	}
	if m, err := authMethods(contract.Auth{Password: "root-secret", Key: keyPath, Users: users}, "10.9.0.8"); err != nil || len(m) != 3 {
		t.Errorf("a root node: %d methods, %v; want the key and the password's two", len(m), err)
	}
}
