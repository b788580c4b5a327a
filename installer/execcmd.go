package installer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// maxExecOutput bounds what an exec reply carries.
const maxExecOutput = 1 << 20

// execGrace is how long past its deadline an exec waits for its command
// to be killed on the node before it answers anyway.
const execGrace = 3 * time.Second

// exec runs one of the engine's own short scripts on a configured node over
// the node's pooled connection: how the monitor reaches monit and the log
// service reaches log files on nodes that run no agent.
func (i *Installer) exec(ctx context.Context, req micro.Request) (int, any, error) {
	var x contract.Exec
	if err := kit.Decode(req, &x); err != nil {
		return 0, nil, err
	}
	if _, err := netip.ParseAddr(x.Node); err != nil {
		return 0, nil, kit.Errorf(400, "exec: node %q is not an IP address", x.Node)
	}
	if strings.TrimSpace(x.Script) == "" {
		return 0, nil, kit.Errorf(400, "exec: empty script")
	}
	cfg, err := i.config(ctx)
	if err != nil {
		if bus.IsNotFound(err) {
			return 0, nil, kit.Errorf(403, "exec: no config was submitted")
		}
		return 0, nil, err
	}
	if !slices.Contains(cfg.Nodes(), x.Node) {
		return 0, nil, kit.Errorf(400, "exec: %s is not a node of the config", x.Node)
	}
	timeout := time.Duration(x.TimeoutS) * time.Second
	if timeout <= 0 || timeout > 5*time.Minute {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	auth, err := i.nodeAuth(ctx, cfg)
	if err != nil {
		return 0, nil, err
	}
	// Through the node's agent when it takes commands: a read of the
	// nodes (the markers a plan reads) opens no SSH session.
	c, err := i.connectWith(ctx, x.Node, auth)
	if err != nil {
		return 200, contract.ExecReply{V: contract.Version, ExitCode: -1, Error: cfg.OutputRedactor().Redact(describe(err))}, nil
	}
	var mu sync.Mutex
	var out strings.Builder
	done := make(chan execResult, 1)
	go func() {
		done <- run(ctx, c, "exec-"+bus.RandomSecret()[:8], x.Script, timeout, func(stream, text string) {
			mu.Lock()
			defer mu.Unlock()
			if stream == "stdout" && out.Len() < maxExecOutput {
				out.WriteString(text)
				out.WriteByte('\n')
			}
		})
	}()
	var res execResult
	select {
	case res = <-done:
	case <-ctx.Done():
		// A frozen node may not even open a session (run cannot give up
		// on that): answer at the deadline all the same; the keepalive
		// closes the connection under it.
		select {
		case res = <-done:
		case <-time.After(execGrace):
			res = execResult{code: -1, err: ctx.Err()}
		}
	}
	mu.Lock()
	rep := contract.ExecReply{V: contract.Version, ExitCode: res.code, Output: cfg.OutputRedactor().Redact(out.String())}
	mu.Unlock()
	if res.err != nil {
		rep.ExitCode = -1
		msg := res.err.Error()
		if errors.Is(res.err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("the command did not finish within %s and was killed", timeout)
			rep.TimedOut = true
		}
		rep.Error = cfg.OutputRedactor().Redact(msg)
	}
	return 200, rep, nil
}
