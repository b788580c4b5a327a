package installer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/nodefs"
)

// A real OpenSSH server on a loopback address of this machine stands in
// for a node: the installer's tests run against it, not a fake. Its
// address is the run's own (pickNodeIP): two runs of these tests at once
// (a CI run beside a developer's) must not meet on one sshd.
const nodePort = "2222"

var nodeIP string

// pickNodeIP picks a loopback address in 127.77.0.0/16 whose sshd port no
// one listens on.
func pickNodeIP() (string, error) {
	for range 50 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		ip := fmt.Sprintf("127.77.%d.%d", b[0], 1+b[1]%254)
		if l, err := net.Listen("tcp", net.JoinHostPort(ip, nodePort)); err == nil {
			_ = l.Close()
			return ip, nil
		}
	}
	return "", fmt.Errorf("no free loopback address in 127.77.0.0/16 for the tests' sshd")
}

var (
	sshDir  string
	keyPath string
	sshd    *exec.Cmd
)

func TestMain(m *testing.M) {
	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "installer tests start a real sshd as root: run them as root (CI does)")
		os.Exit(1)
	}
	if _, err := exec.LookPath("/usr/sbin/sshd"); err != nil {
		fmt.Fprintln(os.Stderr, "installer tests need openssh-server: run `make deps` as root")
		os.Exit(1)
	}
	var err error
	if nodeIP, err = pickNodeIP(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sshDir, err = os.MkdirTemp("", "de-installer-sshd-")
	if err != nil {
		panic(err)
	}
	_, hostStateErr := os.Stat(nodefs.State)
	code := func() int {
		if err := setupNodeState(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer teardownNodeState()
		if err := setupSSHD(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer stopSSHD()
		return m.Run()
	}()
	os.RemoveAll(sshDir)
	if _, err := os.Stat(nodefs.State); os.IsNotExist(hostStateErr) && err == nil {
		fmt.Fprintf(os.Stderr, "the tests left %s on this machine: the node's state must stay in its own mount namespace\n", nodefs.State)
		code = 1
	}
	os.Exit(code)
}

func setupSSHD() error {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return err
	}
	keyPath = filepath.Join(sshDir, "id_ed25519")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(blk), 0o600); err != nil {
		return err
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	if err := os.WriteFile(filepath.Join(sshDir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		return err
	}
	if err := newHostKey(); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`Port %s
ListenAddress %s
HostKey %s/host_key
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
StrictModes no
UsePAM no
`, nodePort, nodeIP, sshDir, sshDir, sshDir)
	if err := os.WriteFile(filepath.Join(sshDir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		return err
	}
	_ = os.MkdirAll("/run/sshd", 0o755)
	return startSSHD()
}

func newHostKey() error {
	_ = os.Remove(filepath.Join(sshDir, "host_key"))
	_ = os.Remove(filepath.Join(sshDir, "host_key.pub"))
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(sshDir, "host_key")).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	return nil
}

// The tests' node is this machine, but its state is not the machine's: the
// sshd runs in a mount namespace of its own whose /var/lib is an overlay
// over the machine's, its writable layer on a tmpfs of the test. So the
// node's state dir (nodefs.State: owner file, markers, run records) starts
// empty and stays out of the machine's /var/lib, where a test-bed node of
// another package running beside this one could otherwise see it. The
// tests reach the node's files through nodePath. Root's .bashrc, which
// bash reads for each SSH session's command, is a fresh node's (as the
// test bed gives its nodes), not this machine's: a developer's shell setup
// would be timed as the node's.
const nodeOverlay = `set -e
mount -t overlay overlay -o lowerdir=/var/lib,upperdir="$1/upper",workdir="$1/work" /var/lib
if [ -f /etc/skel/.bashrc ] && [ -f /root/.bashrc ]; then mount --bind /etc/skel/.bashrc /root/.bashrc; fi
shift
exec "$@"`

// setupNodeState mounts the tmpfs that holds the node's writable layer.
func setupNodeState() error {
	dir := filepath.Join(sshDir, "node")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", "de-installer-node", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount the test node's tmpfs: %v: %s", err, out)
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func teardownNodeState() {
	_ = exec.Command("umount", "-l", filepath.Join(sshDir, "node")).Run()
}

// nodePath is where the test reads or writes the node's file p: through
// the sshd's own mount namespace.
func nodePath(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", sshd.Process.Pid, p)
}

func startSSHD() error {
	// unshare and sh exec into sshd: its pid is the command's.
	sshd = exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", nodeOverlay, "node",
		filepath.Join(sshDir, "node"), "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(sshDir, "sshd_config"))
	// Its own process group, so that stopping it ends its sessions too.
	sshd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sshd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := (&netDialer{}).dial(nodeIP + ":" + nodePort); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("test sshd did not start on %s:%s", nodeIP, nodePort)
}

func stopSSHD() {
	if sshd != nil && sshd.Process != nil {
		_ = syscall.Kill(-sshd.Process.Pid, syscall.SIGKILL)
		_ = sshd.Wait()
	}
}

type testEnv struct {
	srv *bus.Server
	res *bus.Resources
	ins *Installer
	// agent is set when the test's commands go through an agent.
	agent *agentEnv
}

// newEnv starts an installer for the test's node; opts change its options.
func newEnv(t testing.TB, opts ...func(*Options)) *testEnv {
	t.Helper()
	b := bustest.Start(t, bus.ServerOptions{})
	o := Options{NC: b.NC, Res: b.Res, Port: nodePort, Keepalive: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range opts {
		f(&o)
	}
	ins, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ins.Stop)
	return &testEnv{srv: b.Srv, res: b.Res, ins: ins}
}
