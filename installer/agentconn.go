package installer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

// agents is what the installer knows of the nodes' agents: which one
// runs the engine's build and so takes the node's commands (package
// nodeexec), remembered for a short while per node.
type agents struct {
	nc       *nats.Conn
	version  string
	password func(ip string) string
	log      *slog.Logger
	// hello bounds the agent's answer to a hello; live is how long a
	// command may go without a word from its agent before the agent is
	// taken for dead.
	hello, live time.Duration
	sessions    prometheus.Counter
	fallbacks   *prometheus.CounterVec

	mu    sync.Mutex
	known map[string]agentState
}

type agentState struct {
	ok       bool
	maxStdin int
	until    time.Time
	// started is when the agent that answered began to take commands;
	// for one that failed a command, when that one did. An agent that
	// failed is asked again every agentAbsentFor (ask): one started
	// since, as monit starts a dead agent again, is trusted at once.
	started, ask time.Time
}

// How long a node's answer is trusted: a working agent a while, one that
// does not answer or refuses a shorter while (it may come up), one that
// failed mid-command as long as the step's retry needs to go over SSH,
// unless an agent started since answers. A node where no agent listens is
// asked every time (see state).
const (
	agentOKFor     = 30 * time.Second
	agentAbsentFor = 5 * time.Second
	agentBadFor    = time.Minute
)

// conn is node ip's agent as a nodeConn, or nil when the node's commands
// go over SSH: no agent answers at once, it runs another build, or this
// installer cannot seal its requests. dial opens the SSH connection a
// command falls back to when it cannot go through the agent before it
// started (its stdin is over the agent's bound, the agent refused it).
func (a *agents) conn(ctx context.Context, ip string, dial func(context.Context) (nodeConn, error)) nodeConn {
	if a == nil || a.version == "" || a.password == nil {
		return nil
	}
	st, ok := a.state(ctx, ip)
	if !ok {
		return nil
	}
	timeout := time.Hour
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	// Past the step's deadline, the installer still kills its run on
	// the node through the agent: that command needs time too.
	timeout = max(timeout, 0) + 2*time.Minute
	return &agentConn{a: a, ip: ip, key: nodeexec.Key(a.password(ip), ip), maxStdin: st.maxStdin, timeout: timeout,
		dial: func() (nodeConn, error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			return dial(ctx)
		}}
}

// state is what the node's agent said lately, asked again once stale.
func (a *agents) state(ctx context.Context, ip string) (agentState, bool) {
	a.mu.Lock()
	st, ok := a.known[ip]
	a.mu.Unlock()
	failed := agentState{}
	if ok && time.Now().Before(st.until) {
		if st.ok || st.started.IsZero() || time.Now().Before(st.ask) {
			return st, st.ok
		}
		// Its agent failed: asked whether another one runs now.
		failed = st
	}
	st = agentState{until: time.Now().Add(agentAbsentFor)}
	hctx, cancel := context.WithTimeout(ctx, a.hello)
	defer cancel()
	m, err := a.nc.RequestWithContext(hctx, subject.Node(ip, subject.VerbHello), nil)
	var h nodeexec.Hello
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		// The server says so at once: asked again next time, so that an
		// agent the last deployment installed takes the next one's
		// commands, however soon it comes.
		st.until = time.Now()
	case err != nil:
		a.log.Debug("the node's agent did not answer; its steps go over SSH", "node", ip, "err", err)
		a.fallbacks.WithLabelValues("no-answer").Inc()
	case json.Unmarshal(m.Data, &h) != nil || h.MaxStdin <= 0:
		a.fallbacks.WithLabelValues("no-exec").Inc()
	case h.Version != a.version:
		a.log.Debug("the node's agent runs another build; its steps go over SSH", "node", ip, "agent", contract.Clip(h.Version), "engine", a.version)
		a.fallbacks.WithLabelValues("version").Inc()
	default:
		st = agentState{ok: true, maxStdin: min(h.MaxStdin, nodeexec.MaxStdin), until: time.Now().Add(agentOKFor), started: h.Started}
	}
	if !failed.until.IsZero() && (!st.ok || !st.started.After(failed.started)) {
		// The agent that failed, or none that answers: over SSH until
		// the failure's while ends.
		st = failed
		st.ask = time.Now().Add(agentAbsentFor)
	}
	a.mu.Lock()
	a.known[ip] = st
	a.mu.Unlock()
	return st, st.ok
}

// bad takes node ip's agent out of use for a while: its commands go over
// SSH.
func (a *agents) bad(ip, reason string, err error) {
	a.log.Warn("the node's agent failed a command; the node's commands go over SSH for now", "node", ip, "err", err)
	a.fallbacks.WithLabelValues(reason).Inc()
	a.mu.Lock()
	a.known[ip] = agentState{until: time.Now().Add(agentBadFor), started: a.known[ip].started, ask: time.Now().Add(agentAbsentFor)}
	a.mu.Unlock()
}

// agentConn runs a node's commands through its agent.
type agentConn struct {
	a        *agents
	ip       string
	key      []byte
	maxStdin int
	timeout  time.Duration
	dial     func() (nodeConn, error)
	// read, when set, is the nodeexec read the agent answers in its own
	// process instead of running the command (which goes over SSH when
	// the agent cannot take the read).
	read string
}

func (c *agentConn) NewSession() (nodeSession, error) {
	return &agentSession{c: c, ready: make(chan struct{}), done: make(chan struct{})}, nil
}

// agentSession is one command through the agent, or over SSH when the
// agent could not take it (ssh set).
type agentSession struct {
	c          *agentConn
	outW, errW *io.PipeWriter
	outQ, errQ *outQueue // set once it runs through the agent
	ssh        nodeSession

	// chain, when set, is what the agent runs instead of the command
	// (which goes over SSH when the agent cannot take the chain).
	chain *nodeexec.Chain

	run     string
	sub     *nats.Subscription
	ready   chan struct{} // closed once Start knows whether the agent runs it
	done    chan struct{} // closed once the output stream ended
	err     error         // how it ended; read after done
	started bool
	once    sync.Once

	mu    sync.Mutex // guards what the stream's messages change
	seq   uint64     // the last message's number
	last  time.Time  // when the last message came
	idle  *time.Timer
	ended bool
}

func (s *agentSession) StdoutPipe() (io.Reader, error) {
	r, w := io.Pipe()
	s.outW = w
	return r, nil
}

func (s *agentSession) StderrPipe() (io.Reader, error) {
	r, w := io.Pipe()
	s.errW = w
	return r, nil
}

// Start sends the command to the agent. What the agent cannot take — a
// stdin over its bound, a request it refuses (and so did not run) — goes
// over SSH instead. An agent that does not answer may have started it:
// that is a dropped session, and the step's retry settles it.
func (s *agentSession) Start(cmd string, stdin io.Reader) error {
	var data []byte
	if stdin != nil {
		var err error
		if data, err = io.ReadAll(io.LimitReader(stdin, int64(s.c.maxStdin)+1)); err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(data) > s.c.maxStdin {
			return s.overSSH(cmd, io.MultiReader(bytes.NewReader(data), stdin), "large")
		}
	}
	req := nodeexec.Request{V: contract.Version, Node: s.c.ip, Run: randomHex(8), Cmd: cmd, Stdin: data,
		TimeoutMS: s.c.timeout.Milliseconds(), Time: time.Now().UnixMilli(), Nonce: randomHex(16)}
	switch {
	case s.chain != nil:
		req.Cmd, req.Stdin, req.Chain = "", nil, s.chain
	case s.c.read != "":
		req.Cmd, req.Stdin, req.Read = "", nil, s.c.read
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg := nodeexec.Seal(s.c.key, body)
	if int64(len(msg)) > s.c.a.nc.MaxPayload() {
		return s.overSSH(cmd, bytes.NewReader(data), "large")
	}
	nc := s.c.a.nc
	// Subscribed before the request goes: the agent streams at once. A
	// subscription with a handler keeps what is pending in a list; a
	// synchronous one allocates a channel of 64 Ki messages (512 KB) for
	// each command, 32 MB of the engine's heap with 100 nodes' at once.
	if s.sub, err = nc.Subscribe(subject.ExecOutput(s.c.ip, req.Run), s.take); err != nil {
		return fmt.Errorf("subscribe to the agent's output: %w", err)
	}
	_ = s.sub.SetPendingLimits(-1, 256<<20)
	m, err := nc.Request(subject.Node(s.c.ip, subject.VerbExec), msg, s.c.a.hello+5*time.Second)
	var rep nodeexec.Reply
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		s.notStarted()
		s.c.a.bad(s.c.ip, "gone", err)
		return s.overSSH(cmd, bytes.NewReader(data), "")
	case err != nil:
		s.notStarted()
		s.c.a.bad(s.c.ip, "no-answer", err)
		return fmt.Errorf("the node's agent did not answer a command: %w", err)
	case json.Unmarshal(m.Data, &rep) != nil || rep.Error != "":
		s.notStarted()
		s.c.a.bad(s.c.ip, "refused", fmt.Errorf("refused: %s", contract.Clip(rep.Error)))
		return s.overSSH(cmd, bytes.NewReader(data), "")
	}
	s.run, s.started = req.Run, true
	s.outQ, s.errQ = newOutQueue(s.outW), newOutQueue(s.errW)
	s.c.a.sessions.Inc()
	s.mu.Lock()
	s.last = time.Now()
	s.idle = time.AfterFunc(s.c.a.live, s.silent)
	s.mu.Unlock()
	close(s.ready)
	return nil
}

// notStarted drops the subscription of a command the agent did not take.
func (s *agentSession) notStarted() {
	_ = s.sub.Unsubscribe()
	close(s.ready)
}

// overSSH runs the command over SSH instead, its output into the pipes
// already handed out.
func (s *agentSession) overSSH(cmd string, stdin io.Reader, reason string) error {
	if reason != "" {
		s.c.a.fallbacks.WithLabelValues(reason).Inc()
	}
	c, err := s.c.dial()
	if err != nil {
		return err
	}
	sess, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	for _, p := range []struct {
		w    *io.PipeWriter
		pipe func() (io.Reader, error)
	}{{s.outW, sess.StdoutPipe}, {s.errW, sess.StderrPipe}} {
		if p.w == nil {
			continue
		}
		r, _ := p.pipe()
		go func() { _, err := io.Copy(p.w, r); p.w.CloseWithError(err) }()
	}
	if err := sess.Start(cmd, stdin); err != nil {
		sess.Close()
		return err
	}
	s.ssh = sess
	return nil
}

// take takes the command's numbered output stream, one message at a
// time, to its end: its status, a gap, or (silent) a silence past the
// liveness window.
func (s *agentSession) take(m *nats.Msg) {
	<-s.ready
	if !s.started {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.seq++
	s.last = time.Now()
	var o nodeexec.Out
	if err := json.Unmarshal(m.Data, &o); err != nil || o.Seq != s.seq {
		err := fmt.Errorf("lost the command's output from the node's agent (message %d of the stream came as %d)", s.seq, o.Seq)
		s.c.a.bad(s.c.ip, "lost", err)
		s.closeRemote()
		s.end(err)
		return
	}
	switch {
	case o.Stream == "stdout":
		s.outQ.put(o.Data)
	case o.Stream == "stderr":
		s.errQ.put(o.Data)
	case o.Exit != nil && *o.Exit == 0:
		s.end(nil)
	case o.Exit != nil:
		s.end(&exitError{code: *o.Exit})
	case o.Error != "":
		s.end(fmt.Errorf("the node's agent: %s", contract.Clip(o.Error)))
	}
}

// silent ends the command once its agent said nothing for the liveness
// window, or its connection to the engine is closed.
func (s *agentSession) silent() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch quiet := time.Since(s.last); {
	case s.ended:
	case s.c.a.nc.IsClosed():
		s.end(errors.New("the session was closed"))
	case quiet < s.c.a.live:
		s.idle.Reset(s.c.a.live - quiet)
	default:
		err := fmt.Errorf("the node's agent went silent for %s while the command ran", s.c.a.live)
		s.c.a.bad(s.c.ip, "silent", err)
		s.closeRemote()
		s.end(err)
	}
}

// end ends the output stream with err; s.mu is held.
func (s *agentSession) end(err error) {
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	s.idle.Stop()
	s.closePipes()
	close(s.done)
}

// closePipes ends the output pipes once what came is read.
func (s *agentSession) closePipes() {
	s.outQ.close()
	s.errQ.close()
}

// closeRemote tells the agent to close the command's pipes.
func (s *agentSession) closeRemote() {
	b, _ := json.Marshal(nodeexec.Close{Run: s.run})
	_ = s.c.a.nc.Publish(subject.Node(s.c.ip, subject.VerbExecClose), b)
}

func (s *agentSession) Wait() error {
	if s.ssh != nil {
		return s.ssh.Wait()
	}
	if !s.started {
		return errors.New("the command was not started")
	}
	<-s.done
	return s.err
}

// Close closes the session as an SSH session closes: the command's pipes
// on the node close, and the output pipes here end.
func (s *agentSession) Close() error {
	if s.ssh != nil {
		return s.ssh.Close()
	}
	s.once.Do(func() {
		if !s.started {
			for _, w := range []*io.PipeWriter{s.outW, s.errW} {
				if w != nil {
					w.Close()
				}
			}
			return
		}
		select {
		case <-s.done:
		default:
			s.closeRemote()
		}
		_ = s.sub.Unsubscribe()
		s.mu.Lock()
		s.end(errors.New("the session was closed"))
		s.mu.Unlock()
		s.outQ.abort()
		s.errQ.abort()
	})
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
