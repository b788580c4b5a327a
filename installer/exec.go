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

	"golang.org/x/crypto/ssh"
)

// stateDir is where the engine keeps its own files on a node.
const stateDir = "/var/lib/deployment-engine"

// wrapper runs the script that arrives on stdin: in a session and process
// group of its own, whose id it records so that a command that outlives
// its deadline is killed on the node; under coreutils timeout as a
// backstop; with stdin closed once the script is read, so nothing it runs
// can swallow the script. The script and its secrets never reach argv.
const wrapper = `mkdir -p ` + stateDir + `/run && exec setsid -w timeout -k 5 %[1]d bash -c 'read -r _ _ _ _ pg _ < /proc/$$/stat; echo "$pg" > ` + stateDir + `/run/%[2]s.pgid; trap "rm -f ` + stateDir + `/run/%[2]s.pgid" EXIT; script=$(cat); exec </dev/null; eval "$script"'`

// execResult is how a command ended.
type execResult struct {
	code int
	err  error // transport trouble; code is meaningless then
}

// run runs script on c, feeding each output line to line, and kills it on
// the node when ctx ends first.
func run(ctx context.Context, c *ssh.Client, name, script string, timeout time.Duration, line func(stream, text string)) execResult {
	sess, err := c.NewSession()
	if err != nil {
		return execResult{err: fmt.Errorf("open session: %w", err)}
	}
	defer sess.Close()
	stdout, _ := sess.StdoutPipe()
	stderr, _ := sess.StderrPipe()
	sess.Stdin = strings.NewReader(script)
	secs := int(timeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	if err := sess.Start(fmt.Sprintf(wrapper, secs+5, name)); err != nil {
		return execResult{err: fmt.Errorf("start command: %w", err)}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	pump := func(stream string, r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			mu.Lock()
			line(stream, sc.Text())
			mu.Unlock()
		}
	}
	wg.Add(2)
	go pump("stdout", stdout)
	go pump("stderr", stderr)
	done := make(chan error, 1)
	go func() { wg.Wait(); done <- sess.Wait() }()
	select {
	case err := <-done:
		return exitOf(err)
	case <-ctx.Done():
		killGroup(c, name)
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
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return execResult{code: ee.ExitStatus()}
	}
	return execResult{err: fmt.Errorf("the connection dropped while the command ran: %w", err)}
}

// killGroup kills the process group a wrapped command recorded.
func killGroup(c *ssh.Client, name string) {
	sess, err := c.NewSession()
	if err != nil {
		return
	}
	defer sess.Close()
	f := stateDir + "/run/" + name + ".pgid"
	_ = sess.Run(fmt.Sprintf(`pg=$(cat %[1]s 2>/dev/null) && [ -n "$pg" ] && { kill -TERM -- -"$pg" 2>/dev/null; sleep 1; kill -KILL -- -"$pg" 2>/dev/null; rm -f %[1]s; }; true`, f))
}

// output runs a short command and returns its stdout.
func output(ctx context.Context, c *ssh.Client, cmd string, stdin io.Reader) ([]byte, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &out, &errb, stdin
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err := <-done:
		if err != nil {
			var ee *ssh.ExitError
			if errors.As(err, &ee) {
				return out.Bytes(), fmt.Errorf("exit %d: %s", ee.ExitStatus(), strings.TrimSpace(errb.String()))
			}
			return nil, fmt.Errorf("the connection dropped: %w", err)
		}
		return out.Bytes(), nil
	case <-ctx.Done():
		sess.Close()
		return nil, ctx.Err()
	}
}
