// Package execd is the agent's side of package nodeexec: it runs, on a
// node, the commands the installer sends through the node's agent, each as
// the node's sshd would run a session's command, and streams their output
// and status back.
//
// The agent serves it on the node's own subjects; the installer's tests
// serve it too, to run the real thing without a node.
package execd

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

// DefaultMaxExecs bounds the installer's commands running at once on a
// node through its agent.
const DefaultMaxExecs = 32

// Options configure the agent's side.
type Options struct {
	Logger *slog.Logger
	// Version is the agent's build, which the installer compares with its
	// own before it sends a command.
	Version string
	// Shell, when set, runs the commands ("-c CMD" is appended) instead
	// of the login shell.
	Shell []string
	// MaxExecs bounds the commands running at once (default
	// DefaultMaxExecs).
	MaxExecs int
	// Bash, when set, runs bash for a chain's steps ("-c SCRIPT ..." is
	// appended) instead of bash from PATH; Root is where the node's files
	// are when not at / (a test's node in a mount namespace of its own).
	Bash []string
	Root string
}

// Executor runs the installer's commands on the node: each as the node's
// SSH server would run a session's command — the login shell's -c, in a
// session of its own, with the session's stdin and its two output streams
// — and streams their output and status back.
type Executor struct {
	nc      *nats.Conn
	ip      string
	key     []byte
	version string
	shell   []string // what runs "-c CMD"
	bash    []string // what runs a chain's "-c SCRIPT"; nil: bash from PATH
	root    string   // prefix of the node's paths for a chain
	env     []string
	dir     string
	max     int
	beat    time.Duration
	started time.Time // when it began to take commands (Hello.Started)
	log     *slog.Logger
	guard   nodeexec.Guard

	mu   sync.Mutex
	runs map[string]*execRun
	subs []*nats.Subscription
}

// Serve runs node ip's commands sent on nc, sealed with key, until Stop.
func Serve(nc *nats.Conn, ip string, key []byte, o Options) (*Executor, error) {
	e := newExecutor(nc, ip, key, o)
	if err := e.subscribe(); err != nil {
		return nil, err
	}
	return e, nil
}

func newExecutor(nc *nats.Conn, ip string, key []byte, o Options) *Executor {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	sh, home, user := loginShell(os.Getuid())
	e := &Executor{nc: nc, ip: ip, key: key, version: o.Version, shell: []string{sh}, dir: home, max: o.MaxExecs,
		beat: nodeexec.Beat, started: time.Now().UTC(), log: o.Logger, runs: map[string]*execRun{},
		// sshd's environment for a session: no more of the agent's own.
		env: []string{"HOME=" + home, "USER=" + user, "LOGNAME=" + user, "SHELL=" + sh, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	if len(o.Shell) > 0 {
		e.shell = o.Shell
	}
	e.bash, e.root = o.Bash, strings.TrimSuffix(o.Root, "/")
	if e.max <= 0 {
		e.max = DefaultMaxExecs
	}
	return e
}

// loginShell is uid's login shell, home and name from /etc/passwd, as sshd
// runs a session's command: /bin/sh when it names none that runs.
func loginShell(uid int) (shell, home, user string) {
	shell, home, user = "/bin/sh", "/", strconv.Itoa(uid)
	b, _ := os.ReadFile("/etc/passwd")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) != 7 || f[2] != strconv.Itoa(uid) {
			continue
		}
		user = f[0]
		if f[5] != "" {
			home = f[5]
		}
		if st, err := os.Stat(f[6]); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			shell = f[6]
		}
		break
	}
	return shell, home, user
}

// subscribe starts answering on the node's hello, exec and exec-close
// subjects.
func (e *Executor) subscribe() error {
	for verb, h := range map[string]nats.MsgHandler{subject.VerbHello: e.hello, subject.VerbExec: e.request, subject.VerbExecClose: e.closeRun} {
		s, err := e.nc.Subscribe(subject.Node(e.ip, verb), h)
		if err != nil {
			e.Stop()
			return fmt.Errorf("execd: subscribe to %s: %w", verb, err)
		}
		e.subs = append(e.subs, s)
	}
	return nil
}

// Stop stops taking commands; those that run go on.
func (e *Executor) Stop() {
	for _, s := range e.subs {
		_ = s.Unsubscribe()
	}
}

func respond(m *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	_ = m.Respond(b)
}

// hello answers with the agent's version.
func (e *Executor) hello(m *nats.Msg) {
	respond(m, nodeexec.Hello{V: contract.Version, Version: e.version, MaxStdin: nodeexec.MaxStdin, Started: e.started})
}

// request starts a command when the request is the engine's, fresh and
// within bounds, and answers once: started, or why nothing ran.
func (e *Executor) request(m *nats.Msg) {
	req, timeout, err := e.admit(m.Data)
	if err != nil {
		e.log.Warn("refused a command", "why", err)
		respond(m, nodeexec.Reply{V: contract.Version, Error: err.Error()})
		return
	}
	if req.Read != "" {
		e.answerRead(m, req)
		return
	}
	r, err := e.start(req)
	if err != nil {
		e.log.Warn("could not start a command", "run", req.Run, "err", err)
		respond(m, nodeexec.Reply{V: contract.Version, Error: err.Error()})
		return
	}
	respond(m, nodeexec.Reply{V: contract.Version, Version: e.version})
	go r.run(req.Stdin, timeout)
}

// answerRead answers a read: started, then its output and status 0 on
// the request's output subject, as a command's.
func (e *Executor) answerRead(m *nats.Msg, req nodeexec.Request) {
	if req.Read != nodeexec.ReadMarkers && req.Read != nodeexec.ReadProbe {
		respond(m, nodeexec.Reply{V: contract.Version, Error: fmt.Sprintf("no read named %q", contract.Clip(req.Read))})
		return
	}
	respond(m, nodeexec.Reply{V: contract.Version, Version: e.version})
	// Apart from the handler: the probe may wait on monit a few seconds.
	go func() {
		out, _ := e.read(req.Read)
		r := &execRun{e: e, id: req.Run, out: subject.ExecOutput(e.ip, req.Run)}
		for len(out) > 0 {
			n := min(len(out), 32<<10)
			r.publish(nodeexec.Out{Stream: "stdout", Data: out[:n]})
			out = out[n:]
		}
		code := 0
		r.publish(nodeexec.Out{Exit: &code})
	}()
}

// admit checks a sealed request: its signature first, so that nothing
// else of it is read unless the engine sent it.
func (e *Executor) admit(msg []byte) (nodeexec.Request, time.Duration, error) {
	var req nodeexec.Request
	body, err := nodeexec.Open(e.key, msg)
	if err != nil {
		return req, 0, err
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, 0, fmt.Errorf("bad request: %w", err)
	}
	switch {
	case req.V > contract.Version:
		return req, 0, fmt.Errorf("request version %d is newer than this agent's %d", req.V, contract.Version)
	case req.Node != e.ip:
		return req, 0, fmt.Errorf("the request is for node %q, not %s", contract.Clip(req.Node), e.ip)
	case !subject.ValidToken(req.Run) || len(req.Run) > 64:
		return req, 0, fmt.Errorf("bad run name %q", contract.Clip(req.Run))
	case req.Chain == nil && req.Read == "" && strings.TrimSpace(req.Cmd) == "":
		return req, 0, errors.New("empty command")
	case req.Read != "" && (req.Cmd != "" || len(req.Stdin) > 0 || req.Chain != nil):
		return req, 0, errors.New("a read comes with nothing else")
	case req.Chain != nil && (req.Cmd != "" || len(req.Stdin) > 0):
		return req, 0, errors.New("a chain comes with no command and no stdin")
	case len(req.Stdin) > nodeexec.MaxStdin:
		return req, 0, fmt.Errorf("stdin of %d bytes is over the agent's bound of %d", len(req.Stdin), nodeexec.MaxStdin)
	case req.TimeoutMS <= 0:
		return req, 0, errors.New("the request has no deadline")
	}
	if req.Chain != nil {
		if err := req.Chain.Check(); err != nil {
			return req, 0, err
		}
	}
	if err := e.guard.Check(req.Nonce, time.UnixMilli(req.Time), time.Now()); err != nil {
		return req, 0, err
	}
	return req, min(time.Duration(req.TimeoutMS)*time.Millisecond, nodeexec.MaxTimeout), nil
}

// closeRun closes a command's pipes at the installer's word.
func (e *Executor) closeRun(m *nats.Msg) {
	var c nodeexec.Close
	if json.Unmarshal(m.Data, &c) != nil {
		return
	}
	e.mu.Lock()
	r := e.runs[c.Run]
	e.mu.Unlock()
	if r != nil {
		r.closePipes()
	}
}

// InFlight is how many commands run.
func (e *Executor) InFlight() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.runs)
}

// execRun is one command the agent runs.
type execRun struct {
	e   *Executor
	id  string
	out string // its output subject
	cmd *exec.Cmd
	// chain, instead of cmd, is a chain of steps the agent runs itself.
	chain *chainRun
	// The agent's ends of the command's pipes (no stdin for a chain).
	stdin, stdout, stderr *os.File

	mu     sync.Mutex
	seq    uint64
	closed bool // its pipes are closed: nothing more is published
}

// start starts req's command, within the agent's bound of commands.
func (e *Executor) start(req nodeexec.Request) (*execRun, error) {
	r := &execRun{e: e, id: req.Run, out: subject.ExecOutput(e.ip, req.Run)}
	e.mu.Lock()
	switch {
	case len(e.runs) >= e.max:
		e.mu.Unlock()
		return nil, fmt.Errorf("the agent runs %d commands already, its bound", e.max)
	case e.runs[req.Run] != nil:
		e.mu.Unlock()
		return nil, fmt.Errorf("a command named %s runs already", req.Run)
	}
	e.runs[req.Run] = r
	e.mu.Unlock()
	start := func() error { return r.startCmd(req.Cmd) }
	if req.Chain != nil {
		start = func() error { return r.startChain(req.Chain) }
	}
	if err := start(); err != nil {
		e.release(r)
		return nil, err
	}
	return r, nil
}

func (e *Executor) release(r *execRun) {
	e.mu.Lock()
	delete(e.runs, r.id)
	e.mu.Unlock()
}

// startCmd starts the command with three pipes; the child's ends are
// closed here once it holds them.
func (r *execRun) startCmd(line string) error {
	var child [3]*os.File
	var err error
	if child[0], r.stdin, err = os.Pipe(); err != nil {
		return err
	}
	if r.stdout, child[1], err = os.Pipe(); err != nil {
		r.closeAll(child[:])
		return err
	}
	if r.stderr, child[2], err = os.Pipe(); err != nil {
		r.closeAll(child[:])
		return err
	}
	sh := r.e.shell
	r.cmd = exec.Command(sh[0], append(sh[1:], "-c", line)...)
	r.cmd.Env, r.cmd.Dir = r.e.env, r.e.dir
	r.cmd.Stdin, r.cmd.Stdout, r.cmd.Stderr = child[0], child[1], child[2]
	// A session of its own, as sshd gives each session's command.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = r.cmd.Start()
	for _, f := range child {
		f.Close()
	}
	if err != nil {
		r.closeAll(nil)
		return fmt.Errorf("start %s: %w", sh[0], err)
	}
	return nil
}

func (r *execRun) closeAll(more []*os.File) {
	for _, f := range append(more, r.stdin, r.stdout, r.stderr) {
		if f != nil {
			f.Close()
		}
	}
}

// run feeds the command its stdin, streams its output, and once it has
// ended and both streams reached their end, its status. A beat goes out
// while it runs. At the deadline its session is killed.
func (r *execRun) run(stdin []byte, timeout time.Duration) {
	defer r.e.release(r)
	defer r.closeAll(nil)
	if r.stdin != nil {
		go func() {
			// A command that never reads its stdin fails this write once it
			// exits or the installer closes the session: nothing waits on it.
			_, _ = r.stdin.Write(stdin)
			r.stdin.Close()
		}()
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go r.pump(&pumps, "stdout", r.stdout)
	go r.pump(&pumps, "stderr", r.stderr)
	streams := make(chan struct{})
	go func() { pumps.Wait(); close(streams) }()
	exited := make(chan int, 1)
	if r.chain != nil {
		go func() { exited <- r.chain.wait() }()
	} else {
		go func() {
			err := r.cmd.Wait()
			exited <- exitCode(r.cmd.ProcessState, err)
		}()
	}

	beat := time.NewTicker(r.e.beat)
	defer beat.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var status *int
	for status == nil || streams != nil {
		select {
		case code := <-exited:
			status, exited = &code, nil
		case <-streams:
			streams = nil
		case <-beat.C:
			r.publish(nodeexec.Out{Beat: true})
		case <-deadline.C:
			r.e.log.Warn("a command outlived its deadline; killing its session", "run", r.id, "deadline", timeout)
			if r.chain != nil {
				r.chain.kill()
			} else {
				_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			}
			r.publish(nodeexec.Out{Error: fmt.Sprintf("the command outlived its deadline of %s on the node and was killed", timeout)})
			r.closePipes()
			if exited != nil {
				<-exited
			}
			return
		}
	}
	r.publish(nodeexec.Out{Exit: status})
}

// exitCode is a command's status as an SSH session reports it: 128+n when
// signal n killed it.
func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		// It could not be waited for: no status to give.
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// pump publishes what the command writes on one stream, chunk by chunk.
func (r *execRun) pump(wg *sync.WaitGroup, stream string, f *os.File) {
	defer wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			r.publish(nodeexec.Out{Stream: stream, Data: buf[:n]})
		}
		if err != nil {
			return
		}
	}
}

// publish sends the next numbered message of the command's stream; once
// the session is closed, or a publish failed, nothing more goes out.
func (r *execRun) publish(o nodeexec.Out) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.seq++
	o.Seq = r.seq
	b, _ := json.Marshal(o)
	err := r.e.nc.Publish(r.out, b)
	r.mu.Unlock()
	if err != nil {
		r.e.log.Warn("lost a command's output stream; closing its pipes", "run", r.id, "err", err)
		r.closePipes()
	}
}

// closePipes closes the agent's ends of the command's pipes, as sshd does
// when a session is closed: the command is not killed; it reads the end of
// its input and dies of SIGPIPE at its next write, unless it ignores both.
func (r *execRun) closePipes() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	if r.chain != nil {
		r.chain.stop()
	}
	r.stdin.Close()
	r.stdout.Close()
	r.stderr.Close()
}
