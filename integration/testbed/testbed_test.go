package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var bed *Bed

// One bed of three nodes serves every test of the package.
func TestMain(m *testing.M) {
	code := Main(m, Options{Name: "tbtest", Nodes: 3, RootPassword: "node-only-pw",
		PerNode: []Limits{{CPUs: 1, Memory: 512 << 20}, {CPUs: 0.5, Memory: 1 << 30}}}, &bed)
	if code == 0 {
		if left := leftovers("tbtest"); left != "" {
			fmt.Fprintln(os.Stderr, "left behind after Down:", left)
			code = 1
		}
	}
	os.Exit(code)
}

// leftovers lists what of a bed still exists.
func leftovers(name string) string {
	var out []string
	ns, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(ns), "de-"+name+"-") {
		out = append(out, "namespaces")
	}
	links, _ := exec.Command("ip", "-o", "link").Output()
	if strings.Contains(string(links), "deb"+short(name)) || strings.Contains(string(links), "dei"+short(name)) || strings.Contains(string(links), "dev"+short(name)) {
		out = append(out, "links")
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	if strings.Contains(string(mounts), Root+"/"+name) {
		out = append(out, "mounts")
	}
	if _, err := os.Stat(Root + "/" + name); err == nil {
		out = append(out, "state dir")
	}
	if cg := bedCgroups(name); len(cg) > 0 {
		out = append(out, "cgroups")
	}
	if ps, _ := exec.Command("pgrep", "-f", "lxcfs .*/"+name+"/lxcfs").Output(); len(ps) > 0 {
		out = append(out, "lxcfs")
	}
	return strings.Join(out, ", ")
}

func sh(t *testing.T, n *Node, script string) string {
	t.Helper()
	out, err := n.Exec(context.Background(), script)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func sshRun(t *testing.T, n *Node, cmd string) string {
	t.Helper()
	c, err := n.SSH(context.Background())
	if err != nil {
		t.Fatalf("ssh %s: %v", n.IP, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("ssh %s %q: %v", n.IP, cmd, err)
	}
	return strings.TrimSpace(string(out))
}

func TestNodesAreIsolated(t *testing.T) {
	a, b := bed.Nodes[0], bed.Nodes[1]
	sh(t, a, "echo mine > /etc/de-isolation; useradd de-iso-user")
	if got := sh(t, b, "cat /etc/de-isolation 2>/dev/null; id -u de-iso-user 2>/dev/null; true"); got != "" {
		t.Errorf("node b sees node a's file or user: %q", got)
	}
	if _, err := os.Stat("/etc/de-isolation"); err == nil {
		t.Error("the host sees a node's file")
	}
	if out, _ := exec.Command("id", "-u", "de-iso-user").Output(); len(out) > 0 {
		t.Error("the host sees a node's user")
	}
	sh(t, a, "setsid sleep 4242 >/dev/null 2>&1 < /dev/null &")
	if got := sh(t, b, "pgrep -f '^sleep 4242' || true"); got != "" {
		t.Errorf("node b sees node a's process: %s", got)
	}
	if got := sh(t, a, "ps -e -o pid= | wc -l"); got == "" {
		t.Error("no process list in node a")
	}
	if ha, hb := sshRun(t, a, "hostname"), sshRun(t, b, "hostname"); ha == hb || ha != a.Hostname {
		t.Errorf("hostnames %q and %q", ha, hb)
	}
}

func TestSSHAndMonitInEveryNode(t *testing.T) {
	for _, n := range bed.Nodes {
		if got := sshRun(t, n, "hostname"); got != n.Hostname {
			t.Errorf("%s: hostname %q", n.IP, got)
		}
		if got := sshRun(t, n, "monit summary"); !strings.Contains(got, "Monit 5") {
			t.Errorf("%s: monit summary %q", n.IP, got)
		}
		// As a Debian machine's services under systemd, whatever the
		// limit of the process that brought the bed up.
		if got := sshRun(t, n, `ulimit -Sn; read -r p < /run/monit.pid; awk '/^Max open files/{print $4}' /proc/$p/limits`); got != "1024\n1024" {
			t.Errorf("%s: soft limits of open files of a session and of monit %q, want 1024 each", n.IP, got)
		}
	}
}

// A daemon that exits is reaped by the node's init: a zombie would make
// monit believe a stopped process still runs.
func TestOrphansAreReaped(t *testing.T) {
	n := bed.Nodes[0]
	sh(t, n, "setsid sleep 4243 >/dev/null 2>&1 < /dev/null &")
	sh(t, n, "pkill -f '^sleep 4243'")
	deadline := time.Now().Add(5 * time.Second)
	var zombies string
	for time.Now().Before(deadline) {
		if zombies = sh(t, n, "ps -e -o stat=,pid=,comm= | awk '$1 ~ /^Z/' || true"); zombies == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("zombies left in the node:\n%s", zombies)
}

func TestNoRouteOut(t *testing.T) {
	n := bed.Nodes[0]
	out := sh(t, n, "timeout 3 bash -c '</dev/tcp/192.0.2.1/80' 2>&1; true")
	if !strings.Contains(out, "unreachable") {
		t.Errorf("a node reached outside its subnet: %q", out)
	}
	if got := sh(t, n, "ip route"); strings.Contains(got, "default") {
		t.Errorf("a node has a default route: %s", got)
	}
}

func TestStopStart(t *testing.T) {
	n := bed.Nodes[2]
	sh(t, n, "echo kept > /root/de-kept")
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", n.IP+":22", time.Second); err == nil {
		c.Close()
		t.Fatal("sshd answers on a stopped node")
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sshRun(t, n, "cat /root/de-kept"); got != "kept" {
		t.Fatalf("installed state lost across stop/start: %q", got)
	}
}

func TestCutAndSlow(t *testing.T) {
	n := bed.Nodes[1]
	if err := n.Cut(); err != nil {
		t.Fatal(err)
	}
	_, err := net.DialTimeout("tcp", n.IP+":22", time.Second)
	if rerr := n.Restore(); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatal("dialled a cut node")
	}
	sshRun(t, n, "true")

	// Delay and loss need the kernel's netem; where it is missing the
	// error says so, and throttling shows the link can be slowed.
	if err := n.Netem(200*time.Millisecond, 1); err != nil {
		if !errors.Is(err, ErrNoNetem) {
			t.Fatal(err)
		}
		t.Log(err)
	} else {
		start := time.Now()
		sshRun(t, n, "true")
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Errorf("netem 200ms: an ssh round trip took %s", d)
		}
		_ = n.ClearNetem()
	}
	// Send 1 MB to the node: throttling shapes traffic towards it.
	fetch := func() time.Duration {
		c, err := n.SSH(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Stdin = bytes.NewReader(make([]byte, 1_000_000))
		start := time.Now()
		out, err := s.Output("wc -c")
		if err != nil || strings.TrimSpace(string(out)) != "1000000" {
			t.Fatalf("sent 1 MB, node got %q: %v", out, err)
		}
		return time.Since(start)
	}
	base := fetch()
	if err := n.Throttle(2000); err != nil {
		t.Fatal(err)
	}
	slow := fetch()
	if err := n.ClearNetem(); err != nil {
		t.Fatal(err)
	}
	// 1 MB at 2 Mbit/s takes about 4 s.
	if slow < 3*time.Second || slow < 3*base {
		t.Fatalf("throttled to 2 Mbit/s, 1 MB took %s (unthrottled %s)", slow, base)
	}
}

func BenchmarkUpDown(b *testing.B) {
	for _, n := range []int{1, 10, 30} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				start := time.Now()
				bd, err := Up(context.Background(), Options{Name: "tbbench", Nodes: n})
				if err != nil {
					b.Fatal(err)
				}
				up := time.Since(start)
				start = time.Now()
				if err := bd.Down(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(up.Seconds(), "up-s")
				b.ReportMetric(time.Since(start).Seconds(), "down-s")
			}
		})
	}
}

// A bed whose process still runs is not taken down by another Up of the
// same name; one whose process is gone is replaced.
func TestUpLeavesALiveOwnersBed(t *testing.T) {
	owner := exec.Command("sleep", "60")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	name := (Options{Name: "tbowner"}).name()
	dir := filepath.Join(Root, name)
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = Down(name) })
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := fmt.Sprintf(`{"name":%q,"owner":%d}`, name, owner.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Up(context.Background(), Options{Name: "tbowner", Nodes: 1})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by process %d", owner.Process.Pid)) {
		t.Fatalf("Up over a live owner's bed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Fatalf("the live owner's bed was touched: %v", err)
	}
	_ = owner.Process.Kill()
	_ = owner.Wait()
	b, err := Up(context.Background(), Options{Name: "tbowner", Nodes: 1})
	if err != nil {
		t.Fatalf("Up over a dead owner's bed: %v", err)
	}
	if b.Owner != os.Getpid() {
		t.Errorf("owner %d, want %d", b.Owner, os.Getpid())
	}
}

// A node's own reboot reboots the node, as a power cycle would, and never
// reaches this machine: its processes are gone, /run starts empty, its disk
// stays, and sshd and monit are back.
func TestNodeRebootsItself(t *testing.T) {
	n := bed.Nodes[1]
	sh(t, n, "echo kept > /root/de-kept-reboot; : > /run/de-before-reboot; setsid sleep 4244 >/dev/null 2>&1 < /dev/null &")
	if got := sh(t, n, "shutdown -h now 2>&1; echo exit=$?"); !strings.Contains(got, "only reboots") || !strings.HasSuffix(got, "exit=1") {
		t.Errorf("shutdown -h in a node: %q", got)
	}
	if got := sh(t, n, "head -c 2 /usr/sbin/reboot"); got != "#!" {
		t.Fatalf("the node's reboot is not the test bed's: starts %q", got)
	}
	c, err := n.SSH(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Run("reboot") // the session may end with the node's processes
	c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := n.Exec(context.Background(), "[ ! -e /run/de-before-reboot ] && ! pgrep -f '^sleep 4244' >/dev/null && monit status >/dev/null 2>&1 && cat /root/de-kept-reboot")
		if err == nil && strings.TrimSpace(string(out)) == "kept" {
			if c, err := net.DialTimeout("tcp", n.IP+":22", time.Second); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			log, _ := n.Exec(context.Background(), "ls /run; pgrep -a sleep; tail -5 /var/log/de-testbed-boot.log")
			t.Fatalf("the node is not back from its reboot within 30 s (%v): %s", err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !n.running() {
		t.Error("the node's init is gone: its reboot powered it off")
	}
}
