package execd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodefs"
)

// exitLocked is a step's status when another run held its lock for
// lockWait, as the chain script's flock gives it.
const exitLocked = 75

// lockWait is how long a step waits for its lock (a variable for tests).
var lockWait = 60 * time.Second

// chainRun runs a nodeexec.Chain: see there for what it keeps of the
// chain script. Its output goes through a pair of tee -p, as the script's
// does, so that a step whose agent died goes on to its end (and writes its
// marker) instead of dying of SIGPIPE at its next line.
type chainRun struct {
	ch   *nodeexec.Chain
	env  []string
	dir  string
	bash []string // runs "-c SCRIPT ..."
	root string   // prefix of the node's paths
	// The agent's and the steps' ends of the tees' input.
	out, err *os.File
	tees     []*exec.Cmd

	stopped atomic.Bool // the session was closed or ran out of time
	mu      sync.Mutex
	cur     *os.Process // the step's shell that runs, if any
}

// startChain starts the tees that carry the chain's output to the
// agent's ends of its pipes (r.stdout, r.stderr); run does the rest.
func (r *execRun) startChain(ch *nodeexec.Chain) error {
	bash := r.e.bash
	if len(bash) == 0 {
		b, err := exec.LookPath("bash")
		if err != nil {
			return fmt.Errorf("a chain needs bash: %w", err)
		}
		bash = []string{b}
	}
	tee, err := exec.LookPath("tee")
	if err != nil {
		return fmt.Errorf("a chain needs tee: %w", err)
	}
	c := &chainRun{ch: ch, env: r.e.env, dir: r.e.dir, bash: bash, root: r.e.root}
	var children []*os.File
	defer func() {
		for _, f := range children {
			f.Close()
		}
	}()
	for i, agentEnd := range []**os.File{&r.stdout, &r.stderr} {
		outR, outW, err := os.Pipe()
		if err != nil {
			return err
		}
		inR, inW, err := os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return err
		}
		*agentEnd = outR
		children = append(children, outW, inR)
		if i == 0 {
			c.out = inW
		} else {
			c.err = inW
		}
		t := exec.Command(tee, "-p", "/dev/null")
		t.Stdin, t.Stdout = inR, outW
		// Apart from the agent, as the script's tees are: they outlive it.
		t.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := t.Start(); err != nil {
			c.closeInputs()
			return fmt.Errorf("start tee: %w", err)
		}
		c.tees = append(c.tees, t)
	}
	r.chain = c
	return nil
}

func (c *chainRun) closeInputs() {
	for _, f := range []*os.File{c.out, c.err} {
		if f != nil {
			f.Close()
		}
	}
}

// path is where the node's path p is seen from the agent.
func (c *chainRun) path(p string) string { return c.root + p }

// stop makes the chain begin no further step.
func (c *chainRun) stop() { c.stopped.Store(true) }

// kill stops the chain and kills the step that runs, with its group.
func (c *chainRun) kill() {
	c.stop()
	c.mu.Lock()
	p := c.cur
	c.mu.Unlock()
	if p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
}

// wait runs the chain and returns its status: 0, as the chain script's,
// however its steps ended. The tees end once nothing holds their input.
func (c *chainRun) wait() int {
	defer func() {
		c.closeInputs()
		for _, t := range c.tees {
			go func() { _ = t.Wait() }()
		}
	}()
	// killChain reads the chain's pid to kill its shell, then removes the
	// file: the agent writes no pid there (it must not be killed), and
	// takes the file's removal as the word to begin no further step.
	pidFile := c.path(nodefs.Run + "/chain-" + c.ch.Nonce + ".pid")
	written := os.MkdirAll(c.path(nodefs.Run), 0o755) == nil && os.WriteFile(pidFile, []byte("agent\n"), 0o644) == nil
	defer os.Remove(pidFile)
	for k, s := range c.ch.Steps {
		if c.stopped.Load() {
			return 0
		}
		if _, err := os.Stat(pidFile); written && err != nil {
			return 0
		}
		if !c.runStep(k, s) {
			return 0
		}
	}
	c.mark("end")
	return 0
}

// runStep does what the chain script does for step k, and says whether
// the chain goes on.
func (c *chainRun) runStep(k int, s nodeexec.ChainStep) bool {
	c.mark("begin", k)
	marker := c.path(nodefs.Applied + "/" + s.Key)
	if pg := firstField(firstLine(c.path(nodefs.Run + "/" + s.Key + ".pgid"))); pg != "" {
		if c.shell(s.Settle, c.out, c.err) != 0 {
			c.mark("settle", k)
			return false
		}
	}
	// Holds decide only whether a marker of this hash still counts: for
	// one of another hash the step runs anyway, and Holds cost a shell.
	have := firstLine(marker)
	if s.Holds != "" && firstField(have) == s.Hash && c.shell(s.Holds, nil, nil) != 0 {
		_ = os.Remove(marker)
		have = ""
	}
	switch {
	case have == s.Hash+" "+s.Deployment:
		c.mark("done", k, "succeeded")
		return true
	case firstField(have) == s.Hash:
		c.mark("done", k, "unchanged")
		return true
	}
	if s.Claim {
		if o := firstLine(c.path(nodefs.Owner)); o != "" && o != s.Engine {
			c.mark("owner", k, o)
			return false
		}
	}
	if len(s.Files) > 0 {
		unmark(marker)
	}
	for i, f := range s.Files {
		if !c.file(k, i, f) {
			return false
		}
	}
	rc := c.run(s)
	c.mark("exit", k, strconv.Itoa(rc))
	return rc == 0
}

// mark writes a control line on both streams, as de_mark does.
func (c *chainRun) mark(what string, args ...any) {
	var b strings.Builder
	b.WriteString(c.ch.Nonce + " " + what)
	for _, a := range args {
		fmt.Fprintf(&b, " %v", a)
	}
	b.WriteByte('\n')
	_, _ = io.WriteString(c.out, b.String())
	_, _ = io.WriteString(c.err, b.String())
}

// shell runs script in bash, its output to out and errw (discarded when
// nil), and returns its status.
func (c *chainRun) shell(script string, out, errw *os.File, args ...string) int {
	cmd := exec.Command(c.bash[0], append(append(c.bash[1:len(c.bash):len(c.bash)], "-c", script, "bash"), args...)...)
	cmd.Env, cmd.Dir = c.env, c.dir
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, errw
	}
	return status(cmd.Run(), cmd.ProcessState)
}

func status(err error, ps *os.ProcessState) int {
	if ps == nil {
		if err != nil {
			return 127
		}
		return 0
	}
	return exitCode(ps, err)
}

// file installs f as de_file does: left alone when the node has it (the
// same content and mode), else written beside it, checked, and moved into
// place. A transfer that does not check out stops the chain.
func (c *chainRun) file(k, i int, f nodeexec.ChainFile) bool {
	sum := sha256.Sum256(f.Content)
	if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
		c.mark("badfile", k, f.Path, len(f.Content), got)
		return false
	}
	mode, p := f.Mode&0o7777, c.path(f.Path)
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && unixMode(fi) == mode {
		if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, f.Content) {
			return true
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.mark("badfile", k, f.Path, "unreadable")
		fmt.Fprintf(c.err, "%v\n", err)
		return false
	}
	tmp := p + ".de-tmp"
	if err := writeFile(tmp, f.Content, mode); err != nil {
		_ = os.Remove(tmp)
		c.mark("badfile", k, f.Path, "unreadable")
		fmt.Fprintf(c.err, "%v\n", err)
		return false
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		fmt.Fprintf(c.err, "%v\n", err)
		return true // as de_file: the step's script runs and finds out
	}
	c.mark("sent", k, i)
	return true
}

// writeFile writes a new file at p (an old one there is removed first)
// with mode, special bits included.
func writeFile(p string, data []byte, mode uint32) error {
	_ = os.Remove(p)
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	_, err = f.Write(data)
	if err == nil {
		err = syscall.Fchmod(fd, mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func unixMode(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Mode & 0o7777
	}
	return uint32(fi.Mode().Perm())
}

// unmark empties a marker that holds something, as nodefs.Unmark does.
func unmark(marker string) {
	if fi, err := os.Stat(marker); err == nil && fi.Size() > 0 {
		_ = os.Truncate(marker, 0)
	}
}

// run runs the step's shell under its lock, in a process group of its
// own, and keeps its deadline as the chain script's de_run does: TERM to
// the group at Secs, KILL 5 s later (status 124, or 137 when it took
// KILL). A run that ends by itself leaves its cgroup to be removed; one
// past its deadline is reaped with all it started.
func (c *chainRun) run(s nodeexec.ChainStep) int {
	lock, err := os.OpenFile(c.path(nodefs.Run+"/"+s.Key+".lock"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(c.err, "%v\n", err)
		return 1
	}
	defer lock.Close()
	if !flock(lock, lockWait) {
		return exitLocked
	}
	if s.Noop {
		if err := os.MkdirAll(c.path(nodefs.Applied), 0o755); err != nil {
			fmt.Fprintf(c.err, "%v\n", err)
			return 1
		}
		if err := os.WriteFile(c.path(nodefs.Applied+"/"+s.Key), []byte(s.Hash+" "+s.Deployment+"\n"), 0o644); err != nil {
			fmt.Fprintf(c.err, "%v\n", err)
			return 1
		}
		return 0
	}
	until := time.Now().Add(time.Duration(s.Secs) * time.Second)
	cmd := exec.Command(c.bash[0], append(c.bash[1:len(c.bash):len(c.bash)], "-c", s.Run)...)
	cmd.Env = append(append([]string(nil), c.env...), "DE_S="+s.Script, "DE_UNTIL="+strconv.FormatInt(until.Unix(), 10))
	cmd.Dir, cmd.Stdout, cmd.Stderr = c.dir, c.out, c.err
	cmd.ExtraFiles = []*os.File{nil, nil, nil, nil, nil, nil, lock} // fd 9
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(c.err, "start the step's shell: %v\n", err)
		return 127
	}
	// The step's shell holds the lock from here; so does a run that
	// outlives this agent.
	lock.Close()
	pg := cmd.Process.Pid
	c.mu.Lock()
	c.cur = cmd.Process
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur = nil
		c.mu.Unlock()
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	rc := -1
	select {
	case err := <-exited:
		rc = status(err, cmd.ProcessState)
	case <-time.After(time.Until(until)):
		_ = syscall.Kill(-pg, syscall.SIGTERM)
		select {
		case <-exited:
			rc = 124
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pg, syscall.SIGKILL)
			<-exited
			rc = 137
		}
	}
	name := s.Key + "." + strconv.Itoa(pg)
	if rc == 124 || rc == 137 {
		c.shell(s.Reap, c.out, c.err, strconv.Itoa(pg))
	} else {
		for _, root := range c.ch.CgroupRoots {
			_ = os.Remove(c.path(root + "/deployment-engine/" + name))
		}
	}
	return rc
}

// flock takes f's exclusive lock, waiting up to d.
func flock(f *os.File, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return true
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) || time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// firstLine is a file's first line as the shell's read -r takes it
// (blanks trimmed at both ends), "" when it cannot be read.
func firstLine(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	l, _ := bufio.NewReader(io.LimitReader(f, 64<<10)).ReadString('\n')
	return strings.Trim(l, " \t\n")
}

func firstField(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}
