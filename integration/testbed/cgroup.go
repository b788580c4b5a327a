package testbed

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits are one node's share of the machine. Zero means no limit of the
// node's own (it then sees the machine's figures).
type Limits struct {
	CPUs   float64 `json:"cpus,omitempty"`   // CPU time, in CPUs; also bounds nproc
	Memory int64   `json:"memory,omitempty"` // bytes
}

// controllers a node's cgroup is made of (cgroup v1): memory and cpu
// bound it, cpuset makes nproc agree, cpuacct feeds lxcfs's /proc/stat.
var controllers = []string{"memory", "cpu", "cpuacct", "cpuset"}

// cgroupMounts maps each v1 controller to where its hierarchy is mounted
// (cpu and cpuacct may share one).
func cgroupMounts() map[string]string {
	out := map[string]string{}
	data, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[2] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(f[3], ",") {
			for _, c := range controllers {
				if opt == c {
					out[c] = f[1]
				}
			}
		}
	}
	return out
}

// ownCgroup is this process's cgroup path in controller c's hierarchy:
// the bed's cgroups go below it, so the machine's accounting still holds.
func ownCgroup(c string) string {
	data, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(string(data), "\n") {
		p := strings.SplitN(line, ":", 3)
		if len(p) == 3 {
			for _, ctl := range strings.Split(p[1], ",") {
				if ctl == c {
					return p[2]
				}
			}
		}
	}
	return "/"
}

// makeCgroups creates the bed's cgroup in every controller; it returns the
// directories, one per distinct hierarchy.
func (b *Bed) makeCgroups() error {
	mounts := cgroupMounts()
	seen := map[string]bool{}
	for _, c := range controllers {
		m, ok := mounts[c]
		if !ok {
			return fmt.Errorf("testbed: no cgroup v1 %s controller mounted under /sys/fs/cgroup: nodes cannot get their own limits", c)
		}
		if seen[m] {
			continue
		}
		seen[m] = true
		dir := filepath.Join(m, ownCgroup(c), "de-testbed-"+b.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("testbed: cgroup %s: %w", dir, err)
		}
		b.Cgroups = append(b.Cgroups, dir)
		if c == "cpuset" {
			// A cpuset cgroup takes no process until it has CPUs and memory nodes.
			if err := inherit(dir, "cpuset.cpus", "cpuset.mems"); err != nil {
				return err
			}
		}
	}
	return nil
}

func inherit(dir string, files ...string) error {
	for _, f := range files {
		v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
			return fmt.Errorf("testbed: %s: %w", filepath.Join(dir, f), err)
		}
	}
	return nil
}

// cgroupDirs are the node's cgroup directories, one per hierarchy.
func (n *Node) cgroupDirs() []string {
	var out []string
	for _, d := range n.bed.Cgroups {
		out = append(out, filepath.Join(d, n.short()))
	}
	return out
}

func (n *Node) short() string { return filepath.Base(n.dir) }

// makeCgroup creates the node's cgroups and sets its limits.
func (n *Node) makeCgroup() error {
	for _, d := range n.cgroupDirs() {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("testbed: cgroup %s: %w", d, err)
		}
		if _, err := os.Stat(filepath.Join(d, "cpuset.cpus")); err == nil {
			if err := inherit(d, "cpuset.cpus", "cpuset.mems"); err != nil {
				return err
			}
		}
	}
	return n.SetLimits(n.Limits)
}

// SetLimits changes the node's limits, also while it runs: lxcfs reads
// them on every access, so the node's /proc follows at once.
func (n *Node) SetLimits(l Limits) error {
	if l.CPUs < 0 || l.Memory < 0 {
		return fmt.Errorf("testbed: limits %+v: must not be negative", l)
	}
	for _, d := range n.cgroupDirs() {
		set := map[string]string{}
		if _, err := os.Stat(filepath.Join(d, "memory.limit_in_bytes")); err == nil {
			mem := int64(-1)
			if l.Memory > 0 {
				mem = l.Memory
			}
			set["memory.limit_in_bytes"] = strconv.FormatInt(mem, 10)
		}
		if _, err := os.Stat(filepath.Join(d, "cpu.cfs_quota_us")); err == nil {
			quota := int64(-1)
			if l.CPUs > 0 {
				quota = int64(l.CPUs * 100000)
			}
			set["cpu.cfs_period_us"] = "100000"
			set["cpu.cfs_quota_us"] = strconv.FormatInt(quota, 10)
		}
		if _, err := os.Stat(filepath.Join(d, "cpuset.cpus")); err == nil {
			parent, err := os.ReadFile(filepath.Join(filepath.Dir(d), "cpuset.cpus"))
			if err != nil {
				return fmt.Errorf("testbed: %w", err)
			}
			set["cpuset.cpus"] = pickCPUs(strings.TrimSpace(string(parent)), l.CPUs, n.index())
		}
		for _, f := range []string{"memory.limit_in_bytes", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpuset.cpus"} {
			v, ok := set[f]
			if !ok {
				continue
			}
			if err := os.WriteFile(filepath.Join(d, f), []byte(v), 0o644); err != nil {
				return fmt.Errorf("testbed: %s = %s: %w", filepath.Join(d, f), v, err)
			}
		}
	}
	n.Limits = l
	return nil
}

func (n *Node) index() int {
	i, _ := strconv.Atoi(strings.TrimPrefix(n.short(), "n"))
	return i
}

// pickCPUs chooses ceil(cpus) of the CPUs in list (cgroup list format),
// starting at a node's own offset so that nodes spread over the machine.
// No limit keeps them all.
func pickCPUs(list string, cpus float64, offset int) string {
	all := parseCPUList(list)
	want := int(math.Ceil(cpus))
	if cpus <= 0 || want >= len(all) || len(all) == 0 {
		return list
	}
	var pick []string
	for i := 0; i < want; i++ {
		pick = append(pick, strconv.Itoa(all[(offset+i)%len(all)]))
	}
	return strings.Join(pick, ",")
}

func parseCPUList(s string) []int {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out
}

// removeCgroups removes the bed's cgroups once their processes are gone.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				errs = append(errs, rmdirRetry(filepath.Join(d, e.Name())))
			}
		}
		errs = append(errs, rmdirRetry(d))
	}
	return errors.Join(errs...)
}

// rmdirRetry waits for a cgroup's killed processes to be gone.
func rmdirRetry(d string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Rmdir(d)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: remove cgroup %s: %w", d, err)
		}
		// Whatever still runs in it goes.
		procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, p := range strings.Fields(string(procs)) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lxcfsFiles are the node's /proc files lxcfs answers from its cgroup.
var lxcfsFiles = []string{"meminfo", "cpuinfo", "stat", "uptime", "loadavg"}

// startLXCFS runs the bed's own lxcfs: one FUSE daemon serves every node
// its own /proc figures, read from the node's cgroup on each access.
func (b *Bed) startLXCFS() error {
	mnt := filepath.Join(b.dir, "lxcfs")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, "lxcfs.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// -l: load averages per cgroup; --enable-cfs: cpuinfo/stat follow the CPU quota.
	cmd := exec.Command("lxcfs", "-f", "-l", "--enable-cfs", "-p", filepath.Join(b.dir, "lxcfs.pid"), mnt)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testbed: lxcfs: %w", err)
	}
	b.LXCFSPID = cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(mnt, "proc", "meminfo")); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(b.dir, "lxcfs.log"))
	return fmt.Errorf("testbed: lxcfs did not mount %s within 10s:\n%s", mnt, log)
}

// ParseSize reads a memory size: bytes, or a number with K, M, G (powers of 1024).
func ParseSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(strings.ToUpper(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || v*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("testbed: size %q: want e.g. 512M or 2G", orig)
	}
	return int64(v * float64(mult)), nil
}

// bedCgroups is where bed name's cgroups are when this process made them;
// Down uses it when the bed's state is lost.
func bedCgroups(name string) []string {
	var out []string
	seen := map[string]bool{}
	for c, m := range cgroupMounts() {
		d := filepath.Join(m, ownCgroup(c), "de-testbed-"+name)
		if _, err := os.Stat(d); err == nil && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// lxcfsPID is the bed's lxcfs, if it still runs.
func lxcfsPID(dir string, b *Bed) int {
	pid := 0
	if b != nil {
		pid = b.LXCFSPID
	}
	if data, err := os.ReadFile(filepath.Join(dir, "lxcfs.pid")); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			pid = p
		}
	}
	if pid <= 0 {
		return 0
	}
	// Only if it still is an lxcfs: a PID may be reused.
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "lxcfs" {
		return 0
	}
	return pid
}
