package bosh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A release's templates are code: ERB runs whatever Ruby they hold. The
// renderer therefore runs in a box:
//
//   - as an unprivileged user (Box.User, nobody by default) with no
//     supplementary groups, which cannot read the engine's data dir (0700,
//     the engine's own);
//   - in new network and PID namespaces: no network at all, not even
//     loopback, and the renderer is pid 1 of its namespace, so that killing
//     it kills everything it started, detached or setsid'd children too;
//   - in a new mount namespace with a /proc of its own, which shows none
//     of the machine's processes (their command lines are world-readable);
//   - in its own process group, killed when its caller's context ends;
//   - with rlimits (util-linux's prlimit sets them, then execs ruby): CPU
//     time, address space, processes (the user's, system-wide: 1 leaves
//     ruby no fork and no thread), no file writes, no core;
//   - with an empty environment, in /, and a bound on its answer;
//   - and at most RenderSlots of them at once.
//
// An engine that is not root cannot drop to another user nor make
// namespaces: it refuses to render unless Box.Unboxed says otherwise.

// Box is how the renderer is confined.
type Box struct {
	// User is the unprivileged user the renderer runs as.
	User string
	// CPU bounds the renderer's CPU time (RLIMIT_CPU, whole seconds).
	CPU time.Duration
	// Memory bounds its address space in bytes (RLIMIT_AS).
	Memory int64
	// Procs bounds the processes and threads of User (RLIMIT_NPROC).
	Procs int
	// Output bounds the bytes of its answer.
	Output int64
	// Unboxed lets an engine that is not root render as its own user,
	// without the user and namespaces (the rlimits, the empty environment
	// and the process group remain): templates can then read whatever the
	// engine can. The serve command's --render-unboxed sets it.
	Unboxed bool
}

// Sandbox is the box every render runs in; set it before the first render.
var Sandbox = Box{User: "nobody", CPU: 30 * time.Second, Memory: 256 << 20, Procs: 1, Output: 32 << 20}

// RenderSlots bounds the renders at once: a render waits for a slot as
// long as its context lets it.
const RenderSlots = 2

var slots = make(chan struct{}, RenderSlots)

// maxStderr is how much of the renderer's stderr is kept, for errors.
const maxStderr = 64 << 10

// waitDelay is how long the engine waits for the renderer's pipes once it
// exited or was killed: a stray child holding them never hangs a render.
const waitDelay = 2 * time.Second

// errOutput marks an answer cut at Box.Output.
var errOutput = errors.New("output bound reached")

// runBoxed runs the renderer on input in Sandbox and returns its stdout.
func runBoxed(ctx context.Context, input []byte) ([]byte, error) {
	box := Sandbox
	cmd, err := box.command()
	if err != nil {
		return nil, err
	}
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		return nil, fmt.Errorf("waited for one of the %d renderers: %w", RenderSlots, context.Cause(ctx))
	}
	ctx, cancel := context.WithTimeoutCause(ctx, RenderTimeout, fmt.Errorf("the renderer ran past its %s", RenderTimeout))
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)

	stdout := &capped{max: box.Output, full: func() { stop(errOutput) }}
	stderr := &capped{max: maxStderr}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(input), stdout, stderr
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the renderer in its box (user %s, own network and PID namespaces): %w", box.User, err)
	}
	// The renderer is killed with its process group; in its PID namespace,
	// the kernel kills the rest once its pid 1 is gone.
	stopped := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer stopped()
	err = cmd.Wait()
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errOutput):
		return nil, fmt.Errorf("the renderer's answer passed its bound of %d bytes: the release renders too much (a looping template?)", box.Output)
	case cause != nil:
		return nil, fmt.Errorf("the renderer was stopped: %w", cause)
	case err == nil:
		return stdout.buf.Bytes(), nil
	}
	// As pid 1 of its namespace the renderer ignores SIGXCPU: the hard
	// limit's SIGKILL ends it. Its CPU time says which limit it was.
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.UserTime()+ee.SystemTime() >= box.cpu() {
		return nil, fmt.Errorf("the renderer used its %s of CPU time (a looping template?)", box.cpu())
	}
	return nil, fmt.Errorf("ruby: %v: %s", err, strings.TrimSpace(lastLines(stderr.buf.String(), 5)))
}

// command is the renderer's command in b, not started.
func (b Box) command() (*exec.Cmd, error) {
	ruby, err := exec.LookPath(Ruby)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install Debian's ruby on the control machine (make deps does)", Ruby)
	}
	tools := map[string]string{"prlimit": "", "unshare": "", "setpriv": ""}
	for name := range tools {
		if tools[name], err = exec.LookPath(name); err != nil {
			return nil, fmt.Errorf("%s not found: install util-linux on the control machine, which sets up the renderer's box", name)
		}
	}
	cpu := int64(b.cpu() / time.Second)
	argv := []string{tools["prlimit"],
		fmt.Sprintf("--cpu=%d:%d", cpu, cpu+1), fmt.Sprintf("--as=%d", b.Memory), fmt.Sprintf("--nproc=%d", b.Procs),
		"--fsize=0", "--core=0", "--nofile=64", "--", ruby, "-e", renderScript}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if euid := geteuid(); euid != 0 {
		if !b.Unboxed {
			return nil, fmt.Errorf("the engine runs as uid %d, not root: it cannot render templates as %s without network in their own namespaces; "+
				"run it as root, or start it with --render-unboxed to render as its own user (templates can then read all the engine can)", euid, b.User)
		}
	} else {
		uid, gid, err := lookupUser(b.User)
		if err != nil {
			return nil, err
		}
		// Still root in its new namespaces, the renderer's pid 1 mounts a
		// /proc of its own (which shows no process of the machine's, nor
		// their command lines), then drops to the user for good and execs
		// prlimit, which execs ruby.
		argv = append([]string{tools["unshare"], "--mount-proc", "--",
			tools["setpriv"], "--reuid=" + uid, "--regid=" + gid, "--clear-groups", "--no-new-privs", "--"}, argv...)
		attr.Cloneflags = syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/nonexistent"}
	cmd.Dir = "/"
	cmd.SysProcAttr = attr
	return cmd, nil
}

// cpu is b's CPU time in whole seconds, at least one.
func (b Box) cpu() time.Duration { return max(b.CPU.Truncate(time.Second), time.Second) }

// geteuid is the engine's effective uid (a test stands in another).
var geteuid = os.Geteuid

// lookupUser is name's uid and gid: never root's.
func lookupUser(name string) (uid, gid string, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", "", fmt.Errorf("the renderer's user: %w (create it, or name another with --render-user)", err)
	}
	if n, err := strconv.ParseUint(u.Uid, 10, 32); err != nil || n == 0 {
		return "", "", fmt.Errorf("the renderer's user %s (uid %s) must be an unprivileged user", name, u.Uid)
	}
	if n, err := strconv.ParseUint(u.Gid, 10, 32); err != nil || n == 0 {
		return "", "", fmt.Errorf("the renderer's user %s (gid %s) must not be in group root", name, u.Gid)
	}
	return u.Uid, u.Gid, nil
}

// capped keeps up to max bytes; past them it calls full once and fails
// the write, so that the copy from the pipe stops.
type capped struct {
	buf  bytes.Buffer
	max  int64
	full func()
	once sync.Once
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - int64(c.buf.Len())
	if int64(len(p)) <= room {
		return c.buf.Write(p)
	}
	c.buf.Write(p[:max(room, 0)])
	if c.full == nil {
		return len(p), nil // kept to max, the rest dropped
	}
	c.once.Do(c.full)
	return int(max(room, 0)), errOutput
}
