package testbed

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A node is a fresh machine: a login shell there reads only Debian's own
// start-up files and a home made from /etc/skel, never the machine's
// dotfiles or local additions (here the machine's /root/.bashrc starts
// pyenv, which costs every SSH session 0.4 s).
func TestLoginShellReadsNoHostDotfiles(t *testing.T) {
	n := bed.Nodes[0]
	// Every file a login shell (and what it runs) opens.
	trace := sshRun(t, n, `strace -f -qq -e trace=open,openat -o /tmp/de-trace bash -lic true </dev/null >/dev/null 2>&1; grep -v ENOENT /tmp/de-trace; rm -f /tmp/de-trace`)
	read := map[string]bool{}
	for _, line := range strings.Split(trace, "\n") {
		if _, rest, ok := strings.Cut(line, `"`); ok {
			if p, _, ok := strings.Cut(rest, `"`); ok && !strings.Contains(line, "O_DIRECTORY") &&
				(strings.HasPrefix(p, "/root/") || strings.HasPrefix(p, "/etc/profile") || strings.HasPrefix(p, "/etc/bash") || p == "/etc/environment") {
				read[p] = true
			}
		}
	}
	if !read["/etc/profile"] || !read["/root/.bashrc"] || !read["/root/.profile"] {
		t.Fatalf("the trace shows no start-up file read (the test would see nothing): %v\n%s", read, trace)
	}
	hostHome, _ := os.UserHomeDir()
	dots, _ := filepath.Glob(filepath.Join(hostHome, ".*"))
	for f := range read {
		inNode := sh(t, n, "cat "+f)
		switch {
		case strings.HasPrefix(f, "/root/"):
			skel, err := os.ReadFile("/etc/skel/" + strings.TrimPrefix(f, "/root/"))
			if err != nil || strings.TrimSpace(string(skel)) != inNode {
				t.Errorf("the node's %s is not /etc/skel's", f)
			}
		case strings.HasPrefix(f, "/etc/profile.d/"):
			if owner := sh(t, n, "dpkg-query -S "+f+" 2>/dev/null || true"); owner == "" {
				t.Errorf("the login shell reads %s, which no Debian package installed", f)
			}
		case f == "/etc/profile" || f == "/etc/bash.bashrc":
			want, _ := nodefiles.ReadFile("nodefiles/" + filepath.Base(f))
			if strings.TrimSpace(string(want)) != inNode {
				t.Errorf("the node's %s is not Debian's", f)
			}
		default:
			t.Errorf("the login shell reads %s, a file this test does not know", f)
		}
		// Whatever it is, it is none of the machine's own dotfiles.
		for _, d := range dots {
			host, err := os.ReadFile(d)
			skel, _ := os.ReadFile(filepath.Join("/etc/skel", filepath.Base(d)))
			if err == nil && len(host) > 0 && string(host) != string(skel) && strings.TrimSpace(string(host)) == inNode {
				t.Errorf("the node's %s is the machine's %s", f, d)
			}
		}
	}
	env := sshRun(t, n, `bash -lic env 2>/dev/null </dev/null`)
	for _, leak := range []string{hostHome + "/.", "PYENV", "CARGO_HOME"} {
		if strings.Contains(env, leak) {
			t.Errorf("a login shell's environment holds %q:\n%s", leak, env)
		}
	}
	if got := sh(t, n, `ls -A /root | sort | tr '\n' ' '`); got != ".bash_logout .bashrc .profile .ssh" {
		t.Errorf("root's home holds %q, want /etc/skel's files and .ssh", got)
	}
}

// Each node is a machine of its own: hostname, machine-id, /tmp and /run,
// and the limits it was given, as its /proc reports them.
func TestNodesOwnIdentityAndLimits(t *testing.T) {
	ids := map[string]bool{}
	for _, n := range bed.Nodes {
		id := sh(t, n, "cat /etc/machine-id")
		if len(id) != 32 || ids[id] {
			t.Errorf("%s: machine-id %q (not 32 hex, or another node's)", n.Name, id)
		}
		ids[id] = true
		if got := sh(t, n, "cat /etc/hostname; hostname"); got != n.Hostname+"\n"+n.Hostname {
			t.Errorf("%s: hostname %q", n.Name, got)
		}
	}
	if host, _ := os.ReadFile("/etc/machine-id"); ids[strings.TrimSpace(string(host))] {
		t.Error("a node has the machine's machine-id")
	}
	sh(t, bed.Nodes[0], "touch /tmp/de-mine /run/de-mine")
	if got := sh(t, bed.Nodes[1], "ls /tmp/de-mine /run/de-mine 2>/dev/null; true"); got != "" {
		t.Errorf("node 1 sees node 0's /tmp or /run: %q", got)
	}
	for i, want := range []string{"524288\n1\n1", "1048576\n1\n1"} {
		n := bed.Nodes[i]
		got := sshRun(t, n, `awk '/^MemTotal:/{print $2}' /proc/meminfo; nproc; grep -c ^processor /proc/cpuinfo`)
		if got != want {
			t.Errorf("%s (limits %+v): MemTotal kB, nproc, cpuinfo's processors = %q, want %q", n.Name, n.Limits, got, want)
		}
	}
	// The third node has no limits of its own: the machine's figures.
	host, _ := os.ReadFile("/proc/meminfo")
	hostTotal := strings.Fields(strings.SplitN(string(host), "\n", 2)[0])[1]
	if got := sh(t, bed.Nodes[2], `awk '/^MemTotal:/{print $2}' /proc/meminfo`); got != hostTotal {
		t.Errorf("an unlimited node reports MemTotal %s, the machine %s", got, hostTotal)
	}
	// A limit changed on a running node shows at once.
	n := bed.Nodes[0]
	if err := n.SetLimits(Limits{CPUs: 1, Memory: 768 << 20}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.SetLimits(Limits{CPUs: 1, Memory: 512 << 20}) }()
	if got := sh(t, n, `awk '/^MemTotal:/{print $2}' /proc/meminfo`); got != "786432" {
		t.Errorf("after SetLimits(768M) MemTotal = %s kB", got)
	}
	// The limit holds: a process that outgrows it is killed.
	out, _ := n.Exec(context.Background(), `perl -e '$x = "a" x (900*1024*1024); print "survived"' 2>&1; true`)
	if strings.Contains(string(out), "survived") {
		t.Errorf("a node limited to 768M let a process take 900M")
	}
}

// A reboot kills everything in the node and runs what it starts at boot:
// sshd, monit, and services enabled on it (here through /etc/rc2.d); its
// disk stays, /tmp and /run start empty.
func TestReboot(t *testing.T) {
	n := bed.Nodes[1]
	sh(t, n, `printf '#!/bin/sh\ncase "$1" in start) start-stop-daemon --start --background --make-pidfile --pidfile /run/de-bootsvc.pid --exec /bin/sleep -- 4244 ;; esac\n' > /etc/init.d/de-bootsvc
chmod +x /etc/init.d/de-bootsvc
ln -sf ../init.d/de-bootsvc /etc/rc2.d/S02de-bootsvc
echo kept > /root/de-kept; touch /tmp/de-gone /run/de-gone
setsid sleep 4245 >/dev/null 2>&1 < /dev/null &`)
	before := n.PID
	if err := n.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.PID == before || !n.running() {
		t.Fatalf("init PID %d after reboot (was %d)", n.PID, before)
	}
	got := sshRun(t, n, `cat /root/de-kept; ls /tmp/de-gone /run/de-gone 2>/dev/null; pgrep -f '^sleep 4245' || echo no-4245; pgrep -x sshd >/dev/null && echo sshd; [ -s /run/de-bootsvc.pid ] && pgrep -f '^/bin/sleep 4244' >/dev/null && echo bootsvc; monit summary >/dev/null && echo monit`)
	if got != "kept\nno-4245\nsshd\nbootsvc\nmonit" {
		t.Errorf("after reboot: %q, want the disk kept, /tmp and /run empty, the old processes gone, sshd, the boot service and monit running", got)
	}
	// `testbed reboot NAME IP` finds it through the bed's state.
	found, err := FindNode(bed.Name, n.IP)
	if err != nil || found.PID != n.PID {
		t.Errorf("FindNode(%s, %s) = %+v, %v", bed.Name, n.IP, found, err)
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		bad  bool
	}{{"512M", 512 << 20, false}, {"2G", 2 << 30, false}, {"1.5g", 3 << 29, false}, {"4096", 4096, false}, {"64KiB", 64 << 10, false},
		{"", 0, true}, {"-1G", 0, true}, {"lots", 0, true}, {"9999999999G", 0, true}} {
		got, err := ParseSize(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v", c.in, got, err)
		}
	}
}

func TestPerNodeFlags(t *testing.T) {
	l, err := perNode(3, "1,0.5", "512M")
	if err != nil || l[0] != (Limits{1, 512 << 20}) || l[1] != (Limits{0.5, 512 << 20}) || l[2] != (Limits{0.5, 512 << 20}) {
		t.Errorf("perNode = %+v, %v", l, err)
	}
	for _, bad := range [][2]string{{"0", ""}, {"x", ""}, {"", "1K"}, {"", "lots"}} {
		if _, err := perNode(1, bad[0], bad[1]); err == nil {
			t.Errorf("perNode(%q, %q) accepted", bad[0], bad[1])
		}
	}
	if got := pickCPUs("0-1", 1, 3); got != "1" {
		t.Errorf("pickCPUs(0-1, 1, node 3) = %q", got)
	}
	if got := pickCPUs("0-3", 2.5, 0); got != "0,1,2" {
		t.Errorf("pickCPUs(0-3, 2.5) = %q", got)
	}
	if got := pickCPUs("0-1", 0, 0); got != "0-1" {
		t.Errorf("pickCPUs without a limit = %q", got)
	}
}

// A node sees none of the machine's engine state, whenever the machine
// writes it: an owner file written on the machine while the node runs (as
// the installer's tests, which use this machine as their node, do) would
// make a fresh node look claimed by another engine. The node's own state
// there comes and goes as the node makes and removes it.
func TestNodeSeesNoHostState(t *testing.T) {
	n := bed.Nodes[2]
	// The node makes and removes its state dir first: a whiteout its rm
	// leaves depends on what the machine held at that moment.
	if got := sh(t, n, `mkdir -p /var/lib/deployment-engine && echo mine > /var/lib/deployment-engine/owner && cat /var/lib/deployment-engine/owner && rm -rf /var/lib/deployment-engine && echo removed`); got != "mine\nremoved" {
		t.Fatalf("the node's own state dir: %q", got)
	}
	const owner = "/var/lib/deployment-engine/owner"
	plant := map[string]string{owner: "e-machine\n"}
	for _, p := range hostState {
		if p != "var/lib/deployment-engine" && !strings.HasPrefix(p, "usr/local/bin/") {
			plant["/"+p+"/de-testbed-planted"] = "planted\n"
		}
	}
	for p, content := range plant {
		plantOnHost(t, p, content)
	}
	for p := range plant {
		if got := sh(t, n, "cat "+p+" 2>/dev/null || echo absent"); got != "absent" {
			t.Errorf("the node sees the machine's %s: %q", p, got)
		}
	}
	if got := sh(t, n, "cat "+owner+" 2>/dev/null; ls -A /var/lib/deployment-engine 2>&1 | head -1"); !strings.Contains(got, "No such file") {
		t.Errorf("a fresh node has a state dir: %q", got)
	}
}

// plantOnHost writes a file at p on this machine for the test's time,
// leaving whatever was there as it was.
func plantOnHost(t *testing.T, p, content string) {
	t.Helper()
	var made []string
	for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	prev, readErr := os.ReadFile(p)
	t.Cleanup(func() {
		if readErr == nil {
			_ = os.WriteFile(p, prev, 0o644)
		} else {
			_ = os.Remove(p)
		}
		for _, d := range made {
			_ = os.Remove(d)
		}
	})
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
