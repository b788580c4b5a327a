package installer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodefs"
)

// A command a wrapper starts runs in a session and process group of its
// own, but what it starts may leave both (setsid, a double fork), and a
// deadline or a cancel must kill that too. So each run has an id, its name
// and process group (<name>.<pgid>), which its shell exports as DE_RUN to
// everything it starts, and its shell moves itself into a cgroup of that
// name under deployment-engine/ when the node has a writable cgroup v2
// (unified, or beside v1 as systemd's hybrid layout has it). de_reap kills
// a run by its id: its cgroup (cgroup.kill, or every pid in cgroup.procs
// on kernels before 5.14), its process group, and every process whose
// environment carries its DE_RUN — what escapes the last is a process that
// left both the cgroup and the environment behind. A run that ends by
// itself is not reaped: what it left running (a daemon) is its work.

// cgroupRoots are where a node may have its cgroup v2 hierarchy.
const cgroupRoots = "/sys/fs/cgroup /sys/fs/cgroup/unified"

// joinRun is what a run's shell does first, once it has read its process
// group into pg: name is the run's name, self the shell's own pid.
func joinRun(name, self string) string {
	return `export DE_RUN=` + name + `.$pg; for de_r in ` + cgroupRoots + `; do [ -f $de_r/cgroup.controllers ] || continue; de_c=$de_r/deployment-engine/$DE_RUN; mkdir -p $de_c 2>/dev/null && { echo ` + self + ` > $de_c/cgroup.procs; } 2>/dev/null; break; done; `
}

// runJoin is joinRun for a wrapped command's shell; %[2]s is the run's name.
var runJoin = joinRun("%[2]s", "$$")

// reapFuncs define, in POSIX sh, de_reap NAME PGID (kill a run and all it
// started) and de_end NAME PGID STATUS (after a run: reap it when timeout
// killed it, else drop its cgroup if nothing is left in it).
const reapFuncs = `de_reap() { for de_r in ` + cgroupRoots + `; do de_c=$de_r/deployment-engine/$1.$2; [ -f $de_c/cgroup.procs ] || continue; ` +
	`{ echo 1 > $de_c/cgroup.kill; } 2>/dev/null || for de_i in 1 2 3 4 5 6 7 8 9 10; do de_p=$(cat $de_c/cgroup.procs); [ -n "$de_p" ] || break; kill -KILL $de_p 2>/dev/null; sleep 0.1; done; ` +
	`de_i=0; until rmdir $de_c 2>/dev/null || [ $de_i -ge 50 ]; do sleep 0.1; de_i=$((de_i+1)); done; done; ` +
	`kill -KILL -- -$2 2>/dev/null; ` +
	`for de_i in 1 2 3 4 5; do de_p=$(grep -lzxF DE_RUN=$1.$2 /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); [ -n "$de_p" ] || break; kill -KILL $de_p 2>/dev/null; done; }
de_end() { case $3 in 124|137) de_reap $1 $2;; *) for de_r in ` + cgroupRoots + `; do [ ! -d $de_r/deployment-engine/$1.$2 ] || rmdir $de_r/deployment-engine/$1.$2 2>/dev/null; done;; esac; }
`

// launch starts a wrapper's command in the background with the session's
// stdin, so that its pid — which is its session and process group, as
// setsid needs no fork in a shell without job control — is known (de_pg),
// waits for it and ends it with de_end; %[2]s is the run's name.
func launch(cmd string) string {
	return `[ -d ` + nodefs.Run + ` ] || mkdir -p ` + nodefs.Run + ` || exit; ` + reapFuncs + `exec 3<&0; ` + cmd + ` 0<&3 3<&- & exec 3<&-; ` + awaitRun("%[2]s") + `; exit $rc`
}

// awaitRun waits for the wrapped command of name started last, leaving
// its status in rc, and ends it.
func awaitRun(name string) string {
	return `de_pg=$!; wait $de_pg; rc=$?; de_end ` + name + ` $de_pg $rc`
}

// wrapper runs the script that arrives on stdin: in a session and process
// group of its own, whose id it records so that a command that outlives
// its deadline is killed on the node; under coreutils timeout as a
// backstop; with stdin closed once the script is read, so nothing it runs
// can swallow the script. The script and its secrets never reach argv.
var wrapper = launch(`setsid -w timeout -k 5 %[1]d bash -c 'read -r _ _ _ _ pg _ < /proc/$$/stat; ` + runJoin + `echo "$pg" > ` + nodefs.Run + `/%[2]s.pgid; trap "rm -f ` + nodefs.Run + `/%[2]s.pgid" EXIT; ` + readScript + `; exec </dev/null; eval "$script"'`)

// stepCommand runs a step's script like wrapper, and also: under an
// exclusive lock of the step's key on the node (held by the wrapping bash,
// never by what the script starts), and with the step's hash, deployment
// and deadline recorded beside the process group, so that a later attempt
// can tell whether the run it finds is the same work and how long to wait.
// The script writes through tee -p, which outlives a dropped connection:
// a step whose engine died goes on to its end instead of dying of SIGPIPE
// at its next line of output, so that the next attempt finds it done.
var stepCommand = `setsid -w timeout -k 5 %[1]d bash -c 'read -r _ _ _ _ pg _ < /proc/$$/stat; ` + runJoin + `exec 9>>` + nodefs.Run + `/%[2]s.lock; flock -w 60 9 || exit %[6]d; echo "$pg %[3]s %[4]s %[5]d" > ` + nodefs.Run + `/%[2]s.pgid; trap ": > ` + nodefs.Run + `/%[2]s.pgid" EXIT; ` + readScript + `; exec </dev/null; exec 3> >(exec tee -p /dev/null 9>&-) 4> >(exec tee -p /dev/null 9>&- >&2); (exec 9>&- 3>&- 4>&-; eval "$script") >&3 2>&4; rc=$?; exec 3>&- 4>&-; wait; exit $rc'`

// stepWrapper is stepCommand launched on its own, as runSent does.
var stepWrapper = launch(stepCommand)

// exitLocked is the step wrapper's exit status when another run held the
// step's lock for a minute: a transient state, tried again.
const exitLocked = 75

// stepJob names a step run on the node.
type stepJob struct {
	key, hash, deployment string
	until                 time.Time
}

// settleScript makes sure no earlier run of a step is alive on the node
// before a new one starts. An earlier run of the same work (same hash: its
// installer died or its message came back) is waited for until its
// deadline, so that work that was going to finish is not done twice; any
// other, or one past its deadline, is killed with all it started (de_reap,
// which the script needs defined), and the script waits until its process
// group is gone. A run whose group died without clearing its record died
// abnormally: what it left is reaped too. It prints what it did.
const settleScript = `f=` + nodefs.Run + `/%[1]s.pgid
[ -f "$f" ] || exit 0
read -r pg hash _ until < "$f" || true
case "$pg" in '') exit 0;; *[!0-9]*) rm -f "$f"; exit 0;; esac
alive() { kill -0 -- -"$pg" 2>/dev/null; }
if ! alive; then de_reap %[1]s "$pg"; rm -f "$f"; exit 0; fi
if [ "$hash" = %[2]s ]; then
  case "$until" in ''|*[!0-9]*) until=0;; esac
  while alive && [ "$(date +%%s)" -lt "$until" ]; do sleep 0.5; done
  if ! alive; then echo "waited for an earlier run of this step (process group $pg) to finish"; exit 0; fi
fi
kill -TERM -- -"$pg" 2>/dev/null
i=0; while alive && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL -- -"$pg" 2>/dev/null
i=0; while alive && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if alive; then echo "process group $pg of an earlier run does not die" >&2; exit 1; fi
de_reap %[1]s "$pg"
rm -f "$f"
echo "killed an earlier run of this step (process group $pg) before running it"
`

// settle runs settleScript for a step's key and hash.
func settle(ctx context.Context, c nodeConn, key, hash string) (string, error) {
	out, err := output(ctx, c, reapFuncs+fmt.Sprintf(settleScript, key, hash), nil)
	return strings.TrimSpace(string(out)), err
}

// runStep runs a step's script under stepWrapper.
func runStep(ctx context.Context, c nodeConn, j stepJob, script string, timeout time.Duration, line func(stream, text string)) execResult {
	secs := max(int(timeout/time.Second), 1)
	return start(ctx, c, fmt.Sprintf(stepWrapper, secs+5, j.key, j.hash, j.deployment, j.until.Unix(), exitLocked), script, line, func() { killGroup(c, j.key) })
}

// execResult is how a command ended.
type execResult struct {
	code int
	err  error // transport trouble; code is meaningless then
}

// run runs script on c, feeding each output line to line, and kills it on
// the node when ctx ends first.
//
// Through a node's agent it runs bare: the agent already runs a command in
// a session and process group of its own and kills that group at the
// deadline it is given, as the wrapper's timeout does; the wrapper's mkdir,
// timeout, shell and rm were two thirds of the processes of a plan's read
// of a node. A cancel before the deadline leaves the script to that
// deadline, and a command the agent hands back to SSH (it refused it)
// runs bare there too: run carries the engine's own short scripts (reads
// of markers, files, logs and monit), not a step's work.
func run(ctx context.Context, c nodeConn, name, script string, timeout time.Duration, line func(stream, text string)) execResult {
	secs := max(int(timeout/time.Second), 1)
	if ac, ok := c.(*agentConn); ok {
		bare := *ac
		bare.timeout = time.Duration(secs) * time.Second
		if script == nodefs.MarkersScript {
			bare.read = nodeexec.ReadMarkers
		}
		return start(ctx, &bare, bareCmd, script, line, func() {})
	}
	return start(ctx, c, fmt.Sprintf(wrapper, secs+5, name), script, line, func() { killGroup(c, name) })
}

// bareCmd runs the script on its stdin as wrapper does, without the
// wrapper: stdin closed once the script is read, the script never in argv.
const bareCmd = `script=$(cat); exec </dev/null; eval "$script"`

// readScript is how a bash the installer starts reads the script sent on
// its stdin: bash reads a file into a command substitution itself, with
// no process, where $(cat) forks one, and the session's stdin is a pipe
// that /dev/stdin opens; where it is a socket, that open fails and cat
// reads it. (bareCmd runs in the user's login shell, which may be another
// shell: it keeps cat.)
const readScript = `{ script=$(</dev/stdin); } 2>/dev/null || script=$(cat)`

// session starts cmd in a new session on c with script on its stdin, and
// returns its output streams.
func session(c nodeConn, cmd, script string) (nodeSession, io.Reader, io.Reader, error) {
	return chainSession(c, nil, cmd, script)
}

// chainSession is session for a chain: through the node's agent, the
// agent runs ch itself, and cmd with script goes over SSH only when the
// agent cannot take ch.
func chainSession(c nodeConn, ch *nodeexec.Chain, cmd, script string) (nodeSession, io.Reader, io.Reader, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open session: %w", err)
	}
	if as, ok := sess.(*agentSession); ok && ch != nil {
		as.chain = ch
	}
	stdout, _ := sess.StdoutPipe()
	stderr, _ := sess.StderrPipe()
	if err := sess.Start(cmd, strings.NewReader(script)); err != nil {
		sess.Close()
		return nil, nil, nil, fmt.Errorf("start command: %w", err)
	}
	return sess, stdout, stderr, nil
}

// start runs the command cmd, feeding it script on stdin; kill stops it
// on the node when ctx ends first.
func start(ctx context.Context, c nodeConn, cmd, script string, line func(stream, text string), kill func()) execResult {
	sess, stdout, stderr, err := session(c, cmd, script)
	if err != nil {
		return execResult{err: err}
	}
	defer sess.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	pump := func(stream string, r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4*1024), 1<<20) // grows as a line needs
		for sc.Scan() {
			mu.Lock()
			line(stream, sc.Text())
			mu.Unlock()
		}
	}
	wg.Add(2)
	go pump("stdout", stdout)
	go pump("stderr", stderr)
	return await(ctx, sess, &wg, kill)
}

// await waits until sess and the output pumps wg counts have ended and
// returns how the command ended. When ctx ends first, it calls stop (which
// kills the command on the node) and waits up to 10 s for the rest.
func await(ctx context.Context, sess nodeSession, wg *sync.WaitGroup, stop func()) execResult {
	done := make(chan error, 1)
	go func() { wg.Wait(); done <- sess.Wait() }()
	select {
	case err := <-done:
		return exitOf(err)
	case <-ctx.Done():
		stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		return execResult{code: -1, err: ctx.Err()}
	}
}

func exitOf(err error) execResult {
	if err == nil {
		return execResult{code: 0}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return execResult{code: ee.code}
	}
	return execResult{err: fmt.Errorf("the connection dropped while the command ran: %w", err)}
}

// killGroup kills a wrapped command's run, with all it started.
func killGroup(c nodeConn, name string) {
	_ = runCmd(c, reapFuncs+killRun(name, "")+"true\n")
}

// killRun is a shell command that kills the run of name recorded in its
// run file, with all it started: TERM to its process group, then KILL a
// second later to the group and everything de_reap finds. With a
// deployment, only that deployment's run is killed: the step's next run,
// of the deployment that followed a cancel, may have begun meanwhile, and
// its run file is the same.
func killRun(name, deployment string) string {
	return fmt.Sprintf(`f=%[1]s/%[2]s.pgid; pg=; d=; read -r pg _ d _ < "$f" 2>/dev/null; case "$pg" in ''|*[!0-9]*) ;; *) if [ -z %[3]s ] || [ "$d" = %[3]s ]; then kill -TERM -- -"$pg" 2>/dev/null; sleep 1; de_reap %[2]s "$pg"; rm -f "$f"; fi;; esac
`, nodefs.Run, name, kit.ShellQuote(deployment))
}

// output runs a short command and returns its stdout.
func output(ctx context.Context, c nodeConn, cmd string, stdin io.Reader) ([]byte, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	stdout, _ := sess.StdoutPipe()
	stderr, _ := sess.StderrPipe()
	if err := sess.Start(cmd, stdin); err != nil {
		return nil, fmt.Errorf("start command: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(&out, stdout) }()
		go func() { defer wg.Done(); _, _ = io.Copy(&errb, stderr) }()
		wg.Wait()
		done <- sess.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			var ee *exitError
			if errors.As(err, &ee) {
				return out.Bytes(), exitOutput{ee, strings.TrimSpace(errb.String())}
			}
			return nil, fmt.Errorf("the connection dropped: %w", err)
		}
		return out.Bytes(), nil
	case <-ctx.Done():
		sess.Close()
		return nil, ctx.Err()
	}
}

// exitOutput is a short command that exited non-zero, with its stderr: an
// answer from the node, not a dropped connection (errors.As finds its
// exitError).
type exitOutput struct {
	ee     *exitError
	stderr string
}

func (e exitOutput) Error() string { return fmt.Sprintf("exit %d: %s", e.ee.code, e.stderr) }
func (e exitOutput) Unwrap() error { return e.ee }
