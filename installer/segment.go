package installer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodefs"
)

// segment is one run of a chain script (chainScript) on a node: what its
// output has told of its steps so far.
type segment struct {
	runs  []*stepRun
	c     nodeConn
	chain *nodeexec.Chain // set when c is the node's agent
	nonce string
	red   contract.OutputRedactor
	prog  *progress

	// mu puts the two streams' lines out one at a time (each line's number
	// is the order it is published in); it guards cur.
	mu  sync.Mutex
	cur int // the step begun last, -1 before the first

	// Set by the marks, which come in order from stdout; read once the
	// session is over.
	stopped outcome // the first step that stopped the chain; at -1 before
	lost    bool    // a result was not stored
	ended   bool    // the script reached its end
}

// runSegment runs steps that travel inline in one session, and returns as
// execute does.
func (i *Installer) runSegment(runs []*stepRun) outcome {
	var total time.Duration
	for _, r := range runs {
		total += stepTimeout(r.s) + time.Minute
	}
	ctx, cancel := context.WithTimeout(runs[0].ctx, total)
	defer cancel()
	cfg, c, err := i.connect(ctx, runs[0].s.Node)
	if err != nil {
		return outcome{code: -1, err: err}
	}
	pres := make([]string, len(runs))
	for k, r := range runs {
		if pres[k], err = r.prelude(ctx, cfg); err != nil {
			return outcome{at: k, code: -1, err: err}
		}
	}
	g := &segment{runs: runs, c: c, nonce: newNonce(), red: cfg.OutputRedactor(), prog: newProgress(), cur: -1, stopped: outcome{at: -1, code: -1}}
	script, err := chainScript(runs, pres, g.nonce)
	if err != nil {
		return outcome{code: -1, err: err}
	}
	// Through the node's agent, the agent runs the chain itself; the
	// script is what goes over SSH when the agent cannot take it.
	if _, ok := c.(*agentConn); ok {
		if g.chain, err = chainSpec(runs, pres, g.nonce); err != nil {
			return outcome{code: -1, err: err}
		}
	}
	return g.result(ctx, g.run(ctx, script))
}

// run runs script in one session. Each step's output lines go to onLine;
// control lines go to onMark, in order, from stdout. When ctx ends first,
// kill stops the step running.
func (g *segment) run(ctx context.Context, script string) execResult {
	if ctx.Err() != nil {
		return execResult{code: -1, err: ctx.Err()}
	}
	// The script is read whole before it runs, so nothing it runs can read
	// the rest of it, and it never reaches argv.
	sess, stdout, stderr, err := chainSession(g.c, g.chain, `bash -c '`+readScript+`; exec </dev/null; eval "$script"'`, script)
	if err != nil {
		return execResult{err: err}
	}
	defer sess.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go g.pump(&wg, 0, "stdout", stdout)
	go g.pump(&wg, 1, "stderr", stderr)
	return await(ctx, sess, &wg, func() {
		g.kill()
		// Closed at once: a chain shell that outlived the kill (it had not
		// recorded its pid yet) dies of SIGPIPE at its next control line,
		// which comes before any step begins.
		sess.Close()
	})
}

// pump reads one output stream of the chain: idx 0 is stdout, 1 stderr.
// Each stream's lines belong to the step whose begin it read last.
func (g *segment) pump(wg *sync.WaitGroup, idx int, stream string, r io.Reader) {
	defer wg.Done()
	defer g.prog.close(idx)
	cur := -1
	j := joiner{alive: g.nonce + " alive"}
	defer func() {
		if j.pending != "" && cur >= 0 {
			g.onLine(cur, stream, j.pending)
		}
	}()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4*1024), 1<<20) // grows as a line needs
	for sc.Scan() {
		text, ok := j.line(sc.Text())
		if !ok {
			continue
		}
		i := strings.Index(text, g.nonce)
		if i < 0 {
			if cur >= 0 {
				g.onLine(cur, stream, text)
			}
			continue
		}
		if i > 0 && cur >= 0 { // a last line without its newline
			g.onLine(cur, stream, text[:i])
		}
		m, ok := parseMark(strings.Fields(text[i+len(g.nonce):]))
		if !ok {
			continue
		}
		switch m.what {
		case "begin":
			cur = m.k
		case "done", "exit", "settle", "owner", "badfile":
			g.prog.pass(idx, m.k)
		}
		if idx == 0 {
			g.onMark(m)
		}
	}
}

// joiner takes out of a stream the chain's "alive" lines, which its shell
// writes past the tee: one may land in the middle of a line the tee
// writes in two pieces, whose second piece then comes as the next line.
type joiner struct {
	alive   string
	pending string // the first piece of a line cut in two
}

// line returns a scanned line as the stream wrote it, false while the line
// waits for its second piece.
func (j *joiner) line(text string) (string, bool) {
	text, j.pending = j.pending+text, ""
	if p, ok := strings.CutSuffix(text, j.alive); ok {
		j.pending = p
		return "", false
	}
	return text, true
}

func (g *segment) valid(k int) bool { return k >= 0 && k < len(g.runs) }

func (g *segment) onLine(k int, stream, text string) {
	if !g.valid(k) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.runs[k].output(g.red, stream, text)
}

// tail is step k's last lines of stderr, redacted.
func (g *segment) tail(k int) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.red.Redact(g.runs[k].tail.String())
}

// onMark reports what a control line tells; the first that stops the
// chain ends the reading of results.
func (g *segment) onMark(m mark) {
	if m.what == "end" {
		g.ended = true
		return
	}
	if !g.valid(m.k) || g.stopped.at >= 0 || g.lost {
		return
	}
	r := g.runs[m.k]
	switch m.what {
	case "begin":
		g.mu.Lock()
		g.cur = m.k
		g.mu.Unlock()
		r.started = time.Now().UTC()
		_ = r.report(contract.StateRunning, nil, "", false)
	case "sent":
		g.sent(r, m.args)
	case "done":
		g.prog.wait(m.k)
		if len(m.args) == 1 && (m.args[0] == contract.StateSucceeded || m.args[0] == contract.StateUnchanged) {
			g.lost = !r.succeed(m.args[0])
		}
	case "exit":
		g.prog.wait(m.k)
		rc, _ := strconv.Atoi(strings.Join(m.args, ""))
		code, err := r.exitError(execResult{code: rc}, r.cancelled.Load() != nil || g.runs[0].cancelled.Load() != nil, g.tail(m.k))
		if err != nil {
			g.stopped = outcome{at: m.k, code: code, err: err}
		} else {
			g.lost = !r.succeed(contract.StateSucceeded)
		}
	case "settle":
		g.prog.wait(m.k)
		g.stop(m.k, fmt.Errorf("an earlier run of %s on %s: %s", r.s.Key, r.s.Node, g.tail(m.k)))
	case "owner":
		g.stop(m.k, r.ownedBy(strings.Join(m.args, " ")))
	case "badfile":
		g.stop(m.k, fmt.Errorf("transfer to %s incomplete (node has %q); sending again", r.s.Node, strings.Join(m.args, " ")))
	}
}

// stop records that step k stopped the chain before its script ran.
func (g *segment) stop(k int, err error) { g.stopped = outcome{at: k, code: -1, err: err} }

// sent tells of a file the node installed from the script.
func (g *segment) sent(r *stepRun, args []string) {
	fi, err := strconv.Atoi(strings.Join(args, ""))
	if err != nil || fi < 0 || fi >= len(r.s.Files) {
		return
	}
	r.i.metrics.bytes.Add(float64(len(r.s.Files[fi].Content)))
	g.mu.Lock()
	r.line("stdout", "sent "+r.s.Files[fi].Path)
	g.mu.Unlock()
}

// current is the step that runs, or ran last (0 before the first begins).
func (g *segment) current() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(g.cur, 0)
}

// kill stops the chain on the node, from the step that runs on.
func (g *segment) kill() {
	var keys []string
	deployment := ""
	for _, r := range g.runs[g.current():] {
		keys, deployment = append(keys, nodefs.MarkerName(r.s.Key)), r.s.Deployment
	}
	killChain(g.c, g.nonce, deployment, keys)
}

// result is how the segment ended, once its session has, as execute
// returns it.
func (g *segment) result(ctx context.Context, res execResult) outcome {
	at := g.current()
	switch {
	case g.lost:
		return outcome{at: at, code: -1, lost: true}
	case g.stopped.at >= 0:
		return g.stopped
	}
	head := g.runs[0]
	cancelled := head.cancelled.Load() != nil
	if ctx.Err() != nil && head.ctx.Err() == nil {
		// The chain's own deadline, not its message's end, stopped it.
		res.err = context.DeadlineExceeded
	}
	if res.err == nil && !cancelled {
		if !g.ended {
			return outcome{at: at, code: -1, err: fmt.Errorf("the node's shell ended (exit status %d) before %s finished", res.code, g.runs[at].s.ID)}
		}
		return outcome{at: len(g.runs)}
	}
	_, err := g.runs[at].exitError(execResult{code: -1, err: res.err}, cancelled, "")
	return outcome{at: at, code: -1, err: err}
}

// mark is a control line of a chain script.
type mark struct {
	what string // begin, done, exit, settle, owner, badfile, sent, end
	k    int
	args []string
}

// progress tracks how far each output stream of a chain has got, so that
// a step's result is published only after every line it wrote.
type progress struct {
	mu     sync.Mutex
	cond   *sync.Cond
	passed [2]int // per stream: the highest step whose end it has read
	closed [2]bool
}

func newProgress() *progress {
	p := &progress{passed: [2]int{-1, -1}}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *progress) pass(stream, k int) {
	p.mu.Lock()
	p.passed[stream] = max(p.passed[stream], k)
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *progress) close(stream int) {
	p.mu.Lock()
	p.closed[stream] = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

// wait returns once both streams have read past step k's end (or ended).
func (p *progress) wait(k int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !((p.passed[0] >= k || p.closed[0]) && (p.passed[1] >= k || p.closed[1])) {
		p.cond.Wait()
	}
}

// parseMark reads a control line's fields after the nonce.
func parseMark(f []string) (mark, bool) {
	if len(f) == 0 {
		return mark{}, false
	}
	m := mark{what: f[0], k: -1}
	if len(f) > 1 {
		k, err := strconv.Atoi(f[1])
		if err != nil {
			return mark{}, false
		}
		m.k, m.args = k, f[2:]
	}
	return m, true
}
