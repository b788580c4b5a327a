// Package testbed brings up real nodes on this machine for tests and the
// demo: each node is a network namespace on a bridge with its own IP, a
// copy-on-write overlay of the machine's root filesystem, its own PID
// namespace and hostname, and the real sshd and monit running inside.
// An isolated bed puts its nodes out of this machine's reach behind a
// gateway node (isolated.go). It needs root.
package testbed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Root holds every test bed's state: one directory per bed.
const Root = "/run/de-testbed"

// Options shape a test bed.
type Options struct {
	// Name tells beds apart (default "de"); letters, digits, - only.
	Name  string
	Nodes int
	// RootPassword, when set, lets root log in with it too (set inside
	// the nodes only).
	RootPassword string
	// Limits apply to every node; PerNode[i], where given, to node i.
	Limits  Limits
	PerNode []Limits
	// Disk is each node's disk (its writable layer), in bytes; default 8 GiB.
	Disk int64
	// Isolated puts the nodes behind a gateway node, out of the host's
	// reach (isolated.go).
	Isolated bool
}

func (o Options) limits(i int) Limits {
	if i < len(o.PerNode) {
		return o.PerNode[i]
	}
	return o.Limits
}

// Bed is a running test bed.
type Bed struct {
	Name    string  `json:"name"`
	Subnet  string  `json:"subnet"` // e.g. 10.213.7.0/24
	Home    string  `json:"home"`   // the bridge's IP: the control machine as nodes see it
	KeyPath string  `json:"key_path"`
	Bridge  string  `json:"bridge"`
	Nodes   []*Node `json:"nodes"`
	// Cgroups are the bed's cgroup directories, one per hierarchy.
	Cgroups  []string `json:"cgroups"`
	LXCFSPID int      `json:"lxcfs_pid"`
	Disk     int64    `json:"disk"`
	// Owner is the process that brought the bed up: while it lives, no
	// other Up of the same name takes the bed down under it.
	Owner int `json:"owner"`
	// Gateway, in an isolated bed, is the node the others are reached
	// through; Isolated is their subnet, Inner their bridge.
	Gateway  *Node  `json:"gateway,omitempty"`
	Isolated string `json:"isolated,omitempty"`
	Inner    string `json:"inner,omitempty"`
	dir      string
	mu       sync.Mutex // guards save
}

// Node is one machine of a bed.
type Node struct {
	Name     string `json:"name"` // network namespace
	IP       string `json:"ip"`
	Hostname string `json:"hostname"`
	Veth     string `json:"veth"` // host side of its link
	PID      int    `json:"pid"`  // host PID of the node's init (PID 1 inside)
	Password string `json:"-"`
	Limits   Limits `json:"limits"`
	// Isolated marks a node behind the gateway; Inner and InnerVeth are
	// the gateway's address and link on the isolated bridge.
	Isolated  bool   `json:"isolated,omitempty"`
	Inner     string `json:"inner,omitempty"`
	InnerVeth string `json:"inner_veth,omitempty"`
	dir       string
	bed       *Bed
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,20}$`)

// name is the bed's name; DE_TESTBED_TAG, when set, is appended so that
// several checkouts can run their end-to-end tests on one machine at once.
func (o Options) name() string {
	name := o.Name
	if name == "" {
		name = "de"
	}
	if tag := os.Getenv("DE_TESTBED_TAG"); tag != "" {
		name += "-" + tag
	}
	return name
}

// short is a 4-hex tag of a bed name, to keep interface names ≤ 15 chars.
func short(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:2])
}

// Up brings up a bed of o.Nodes nodes with sshd answering on each.
func Up(ctx context.Context, o Options) (b *Bed, err error) {
	name := o.name()
	if !nameRe.MatchString(name) {
		return nil, fmt.Errorf("testbed: name %q: lowercase letters, digits and -, at most 21", name)
	}
	if o.Nodes < 1 || o.Nodes > 200 {
		return nil, fmt.Errorf("testbed: %d nodes: between 1 and 200", o.Nodes)
	}
	if err := Check(); err != nil {
		return nil, err
	}
	if o.Isolated {
		if err := checkIsolated(); err != nil {
			return nil, err
		}
	}
	// A bed of the same name left by a finished or killed process goes
	// first; one whose process still runs is someone else's.
	if old, err := Load(name); err == nil && old.Owner > 0 && old.Owner != os.Getpid() && syscall.Kill(old.Owner, 0) == nil {
		return nil, fmt.Errorf("testbed: bed %s is in use by process %d; set DE_TESTBED_TAG to bring up a bed of your own", name, old.Owner)
	}
	_ = Down(name)
	unlock, err := lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	third, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	tag := short(name)
	b = &Bed{Name: name, Subnet: fmt.Sprintf("10.213.%d.0/24", third), Home: fmt.Sprintf("10.213.%d.1", third),
		Bridge: "deb" + tag, Disk: o.Disk, Owner: os.Getpid(), dir: filepath.Join(Root, name)}
	if b.Disk <= 0 {
		b.Disk = 8 << 30
	}
	defer func() {
		if err != nil {
			_ = Down(name)
		}
	}()
	if err := os.MkdirAll(filepath.Join(b.dir, "fs"), 0o700); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := b.save(); err != nil { // Down can clean up from here on
		return nil, err
	}
	if err := b.makeCgroups(); err != nil {
		return nil, err
	}
	if err := b.save(); err != nil {
		return nil, err
	}
	if err := b.startLXCFS(); err != nil {
		return nil, err
	}
	if err := b.save(); err != nil {
		return nil, err
	}
	if err := b.makeKey(); err != nil {
		return nil, err
	}
	all := b.layout(o, third, tag)
	if err := b.makeBridges(); err != nil {
		return nil, err
	}
	for _, n := range all {
		if err := n.create(); err != nil {
			return nil, err
		}
	}
	// Nodes boot together, a few at a time: each boot mostly waits.
	errs := make(chan error, len(all))
	sem := make(chan struct{}, 8)
	for _, n := range all {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- n.Start(ctx)
		}()
	}
	var failed []error
	for range all {
		failed = append(failed, <-errs)
	}
	if err := errors.Join(failed...); err != nil {
		return nil, err
	}
	if err := b.save(); err != nil {
		return nil, err
	}
	return b, nil
}

// create makes the node's namespace, link, cgroup and filesystem.
func (n *Node) create() error {
	// Its own tmpfs holds its writable layer (overlayfs refuses an upper
	// dir inside its lower, /), and df inside the node reads its size.
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if err := run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("mode=0700,size=%d", n.bed.Disk), "de-testbed-"+n.Name, n.dir); err != nil {
		return err
	}
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
	}
	if err := n.makeCgroup(); err != nil {
		return err
	}
	if err := run("ip", "netns", "add", n.Name); err != nil {
		return err
	}
	for _, s := range n.links() {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return n.freshFiles()
}

// initScript boots the node in its fresh mount, PID and UTS namespaces:
// its own root, /proc (with lxcfs's figures of its cgroup), /run and /tmp,
// its hostname, then its init (initPerl), which runs its boot (bootScript)
// and boots it again when the node reboots itself.
func (n *Node) initScript() string {
	r := filepath.Join(n.dir, "root")
	var lx strings.Builder
	for _, f := range lxcfsFiles {
		fmt.Fprintf(&lx, "mount --bind %s/proc/%s \"$R/proc/%s\"\n", filepath.Join(n.bed.dir, "lxcfs"), f, f)
	}
	return fmt.Sprintf(`set -e
R=%[1]s
mount -t overlay overlay -o lowerdir=%[2]s/mask:/,upperdir=%[2]s/upper,workdir=%[2]s/work "$R"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
%[4]smount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
hostname %[3]s
exec chroot "$R" /usr/bin/perl -e '%[5]s' '%[6]s'
`, r, n.dir, n.Hostname, lx.String(), initPerl, n.bootScript())
}

// bootScript starts the node's boot services in the order of its
// /etc/rcS.d and /etc/rc2.d (sshd and monit on a fresh node), then
// /etc/rc.local, as Debian's sysv-rc does. They run with the limit of
// open files a service of a Debian machine booted by systemd has (soft
// 1024, systemd's DefaultLimitNOFILE), not the one of the process that
// brought the bed up: monit closes every descriptor up to it before each
// program it starts. It holds no single quote.
func (n *Node) bootScript() string {
	pw := ""
	if n.Password != "" {
		pw = fmt.Sprintf("echo \"root:%s\" | chpasswd\n", strings.NewReplacer("'", "", `"`, "", "$", "", "`", "", `\`, "").Replace(n.Password))
	}
	return `cd /
ulimit -S -n 1024 2>/dev/null || true
mkdir -p /run/lock /run/sshd /var/log
` + pw + `for s in /etc/rcS.d/S* /etc/rc2.d/S*; do
  [ -x "$s" ] || continue
  "$s" start >>/var/log/de-testbed-boot.log 2>&1 || echo "boot: $s start failed" >>/var/log/de-testbed-boot.log
done
if [ -x /etc/rc.local ]; then /etc/rc.local >>/var/log/de-testbed-boot.log 2>&1 || true; fi
`
}

// initPerl is the node's PID 1. It boots the node, then reaps every
// orphan, as an init does: without it a stopped daemon stays a zombie and
// monit believes it still runs. On SIGUSR1 (the node's own reboot, see
// rebootShim) it reboots the node as a power cycle would, within its
// namespaces: every other process killed, /run and /tmp empty again, the
// boot run again; the node's disk stays. It holds no single quote.
const initPerl = `$0 = "init";
my $boot = shift;
my $reboot = 0;
$SIG{USR1} = sub { $reboot = 1 };
sub boot {
  my $pid = fork();
  if (defined $pid && $pid == 0) { exec("/bin/sh", "-c", $boot); exit 127; }
  waitpid($pid, 0) if $pid;
}
boot();
while (1) {
  while (waitpid(-1, 1) > 0) {}
  if ($reboot) {
    $reboot = 0;
    print STDERR "init: rebooting\n";
    kill("KILL", -1);
    while (waitpid(-1, 0) > 0) {}
    system("/bin/sh", "-c", "umount -l /run /tmp; mount -t tmpfs -o mode=0755 tmpfs /run && mount -t tmpfs -o mode=1777 tmpfs /tmp");
    boot();
  }
  sleep 1;
}
`

// rebootShim is the node's reboot and shutdown -r: they ask the node's
// init to reboot it (see initPerl). The machine's own reboot command would
// ask this machine's systemd, which a node must never reach.
const rebootShim = `#!/bin/sh
# de-testbed: this node reboots itself (its init boots it again), never the
# machine it runs on.
case "$(basename "$0")" in
shutdown)
  case " $* " in
  *" -r "*|*" --reboot "*) ;;
  *) echo "shutdown: a test-bed node only reboots (shutdown -r)" >&2; exit 1 ;;
  esac ;;
esac
echo "rebooting $(hostname)" >&2
exec kill -USR1 1
`

// Start boots the node: its init, sshd and monit, and what else it starts
// at boot. What was installed on it before a Stop is still there.
func (n *Node) Start(ctx context.Context) error {
	if n.running() {
		return nil
	}
	// A bed made before the mask layer existed gets it at its next start.
	if err := n.maskLayer(); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(n.dir, "init.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// The shell joins the node's cgroups first: everything the node ever
	// runs descends from it and stays inside its limits.
	join := `for d in $DE_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 1; done; exec "$@"`
	args := []string{"-c", join, "join", "ip", "netns", "exec", n.Name, "unshare", "--mount", "--pid", "--uts", "--fork", "--propagation", "private",
		"/bin/sh", "-c", n.initScript()}
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = append(os.Environ(), "DE_CGROUPS="+strings.Join(n.cgroupDirs(), " "))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Detached: the nodes of `testbed up` outlive the command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testbed: start %s: %w", n.Name, err)
	}
	unsharePID := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n.PID == 0 || !n.running() {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unsharePID, unsharePID)); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					n.PID, _ = strconv.Atoi(f[0])
				}
			}
		}
		if n.PID != 0 && n.sshdUp() {
			return n.bed.save()
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(n.dir, "init.log"))
	return fmt.Errorf("testbed: sshd on %s (%s) did not answer within 30s; init log:\n%s", n.Name, n.IP, log)
}

// Reboot kills everything in the node and boots it again, as a power
// cycle would: its disk stays, /run and /tmp start empty, and only what
// it starts at boot runs again.
func (n *Node) Reboot(ctx context.Context) error {
	if err := n.Stop(ctx); err != nil {
		return err
	}
	return n.Start(ctx)
}

func (n *Node) running() bool {
	if n.PID == 0 {
		return false
	}
	return syscall.Kill(n.PID, 0) == nil
}

// Stop kills everything in the node: its PID namespace goes with its
// init. It returns once no process of the node is left in its cgroup.
func (n *Node) Stop(ctx context.Context) error {
	if n.PID == 0 {
		return nil
	}
	_ = syscall.Kill(n.PID, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := n.procs()
		if len(left) == 0 && !n.running() {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: %s: processes %v still alive 10s after its init was killed", n.Name, left)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.PID = 0
	return n.bed.save()
}

// procs lists the processes in the node's cgroup.
func (n *Node) procs() []string {
	var out []string
	for _, d := range n.cgroupDirs() {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		out = append(out, strings.Fields(string(b))...)
		break // every process is in all of its hierarchies
	}
	return out
}

// Cut takes the node's link down; Restore brings it back.
func (n *Node) Cut() error     { return run("ip", "link", "set", n.Veth, "down") }
func (n *Node) Restore() error { return run("ip", "link", "set", n.Veth, "up") }

// ErrNoNetem means the kernel has no netem queueing discipline.
var ErrNoNetem = errors.New("this kernel has no netem (sch_netem): delay and loss cannot be added; Throttle still works")

// Netem delays and drops the node's traffic (on the way to it).
func (n *Node) Netem(delay time.Duration, lossPercent float64) error {
	err := run("tc", "qdisc", "replace", "dev", n.Veth, "root", "netem",
		"delay", fmt.Sprintf("%dms", delay.Milliseconds()), "loss", fmt.Sprintf("%g%%", lossPercent))
	if err != nil && strings.Contains(err.Error(), "kind is unknown") {
		return fmt.Errorf("testbed: %w", ErrNoNetem)
	}
	return err
}

// Throttle limits the node's traffic (on the way to it) to kbit per second.
func (n *Node) Throttle(kbit int) error {
	if err := run("tc", "qdisc", "replace", "dev", n.Veth, "root", "handle", "1:", "htb", "default", "10"); err != nil {
		return err
	}
	rate := fmt.Sprintf("%dkbit", kbit)
	return run("tc", "class", "replace", "dev", n.Veth, "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate)
}

// ClearNetem removes delay, loss and throttling.
func (n *Node) ClearNetem() error { return run("tc", "qdisc", "del", "dev", n.Veth, "root") }

// Exec runs a shell script inside the node and returns its stdout.
func (n *Node) Exec(ctx context.Context, script string) ([]byte, error) {
	if !n.running() {
		return nil, fmt.Errorf("testbed: %s is stopped", n.Name)
	}
	// Within the node's cgroups too, as anything started over SSH is.
	join := `for d in $DE_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 1; done; exec "$@"`
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", join, "join", "nsenter", "-t", strconv.Itoa(n.PID), "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd", "/bin/sh", "-c", script)
	cmd.Env = []string{"DE_CGROUPS=" + strings.Join(n.cgroupDirs(), " "), "HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("testbed: exec in %s: %w: %s", n.Name, err, stderr.String())
	}
	return out, nil
}

// SSH connects to the node as root with the bed's key, checking the host
// key against the one the node holds (read through its namespaces).
func (n *Node) SSH(ctx context.Context) (*ssh.Client, error) {
	b, err := os.ReadFile(n.bed.KeyPath)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, err
	}
	pub, err := n.Exec(ctx, "cat /etc/ssh/ssh_host_ed25519_key.pub")
	if err != nil {
		return nil, err
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return nil, fmt.Errorf("testbed: host key of %s: %w", n.Name, err)
	}
	return ssh.Dial("tcp", net.JoinHostPort(n.IP, "22"), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey), HostKeyAlgorithms: []string{hostKey.Type()}, Timeout: 5 * time.Second})
}

func (b *Bed) makeKey() error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "de-testbed "+b.Name)
	if err != nil {
		return err
	}
	b.KeyPath = filepath.Join(b.dir, "id_ed25519")
	if err := os.WriteFile(b.KeyPath, pem.EncodeToMemory(blk), 0o600); err != nil {
		return err
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	return os.WriteFile(b.KeyPath+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
}

func (b *Bed) save() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.dir, "state.json"), data, 0o600)
}

// Load reads a running bed's state.
func Load(name string) (*Bed, error) {
	dir := filepath.Join(Root, name)
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	b := &Bed{dir: dir}
	if err := json.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("testbed: state of %s: %w", name, err)
	}
	for i, n := range b.Nodes {
		n.bed, n.dir = b, filepath.Join(dir, "fs", fmt.Sprintf("n%d", i))
	}
	if g := b.Gateway; g != nil {
		g.bed, g.dir = b, filepath.Join(dir, "fs", "ngw")
	}
	return b, nil
}

// Down tears a bed down.
func (b *Bed) Down() error { return Down(b.Name) }

// Down removes everything of bed name, including what a killed process
// left: node processes, namespaces, links, the bridge, mounts and state.
func Down(name string) error {
	dir := filepath.Join(Root, name)
	b, _ := Load(name)
	var errs []error
	tag := short(name)
	// Every process in the bed's namespaces.
	out, _ := exec.Command("ip", "netns", "list").Output()
	prefix := "de-" + name + "-n"
	for _, line := range strings.Split(string(out), "\n") {
		ns := firstField(line)
		if !strings.HasPrefix(ns, prefix) {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, p := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if b != nil {
		for _, n := range append(b.Nodes, b.Gateway) {
			if n != nil && n.PID > 0 {
				_ = syscall.Kill(n.PID, syscall.SIGKILL)
			}
		}
	}
	// Then whatever is left in the bed's cgroups, and its lxcfs.
	cgroups := bedCgroups(name)
	if b != nil && len(b.Cgroups) > 0 {
		cgroups = b.Cgroups
	}
	for _, d := range cgroups {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			procs, _ := os.ReadFile(filepath.Join(d, e.Name(), "cgroup.procs"))
			for _, p := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(p); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	if pid := lxcfsPID(dir, b); pid > 0 {
		// It keeps nothing: no need to wait for a graceful end (its
		// loadavg thread makes SIGTERM take seconds).
		_ = syscall.Unmount(filepath.Join(dir, "lxcfs"), syscall.MNT_DETACH)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(100 * time.Millisecond)
	for _, line := range strings.Split(string(out), "\n") {
		ns := firstField(line)
		if strings.HasPrefix(ns, prefix) {
			if err := run("ip", "netns", "delete", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ifname := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		if ifname == "deb"+tag || ifname == "dei"+tag || strings.HasPrefix(ifname, "dev"+tag+"n") {
			_ = run("ip", "link", "delete", ifname)
		}
	}
	// Mounts under the bed's directory, deepest first.
	mounts, _ := os.ReadFile("/proc/self/mounts")
	var mine []string
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			mine = append(mine, f[1])
		}
	}
	for i := len(mine) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mine[i], syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mine[i], err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(cgroups); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// List names the beds that exist.
func List() ([]string, error) {
	entries, err := os.ReadDir(Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, err
}

// freeSubnet picks 10.213.N.0/24 used by no interface or other bed.
func freeSubnet() (int, error) {
	used := map[int]bool{}
	out, _ := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	for _, m := range regexp.MustCompile(`10\.21[34]\.(\d+)\.`).FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[1])
		used[n] = true
	}
	routes, _ := exec.Command("ip", "-4", "route", "show").Output()
	for _, m := range regexp.MustCompile(`10\.21[34]\.(\d+)\.`).FindAllStringSubmatch(string(routes), -1) {
		n, _ := strconv.Atoi(m[1])
		used[n] = true
	}
	names, _ := List()
	for _, name := range names {
		if b, err := Load(name); err == nil {
			var n int
			if _, err := fmt.Sscanf(b.Subnet, "10.213.%d.0/24", &n); err == nil {
				used[n] = true
			}
		}
	}
	for n := 1; n < 255; n++ {
		if !used[n] {
			return n, nil
		}
	}
	return 0, errors.New("testbed: no free 10.213.N.0/24 subnet")
}

// lock serialises subnet choice between beds brought up at once.
func lock() (func(), error) {
	if err := os.MkdirAll(Root, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(Root, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Check says why this machine cannot run a test bed, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("testbed: the test bed needs root (network namespaces, mounts): run the tests as root, e.g. sudo make test")
	}
	var missing []string
	for _, tool := range []string{"ip", "tc", "unshare", "nsenter", "/usr/sbin/sshd", "monit", "chroot", "lxcfs", "perl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("testbed: missing %s: run `make deps` as root (installs iproute2, openssh-server, monit, util-linux, lxcfs)", strings.Join(missing, ", "))
	}
	return nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testbed: %s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// dialable tells whether something listens on ip's port 22, from here.
func dialable(ip string) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "22"), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
