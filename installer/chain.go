package installer

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// A chain is a node's consecutive steps that nothing between them needs
// the engine for: they travel in one SSH session, as one script that runs
// them in order. Each step keeps what it has alone: the settling of an
// earlier run, its marker on the node (written when, and only when, its
// script succeeds), the owner check of a claim, its files (inline,
// checksummed), its lock, deadline and process group, its events and its
// log lines. A chain that stops half-way resumes at the first step without
// a marker. The script tells the installer where each step begins and
// ends with control lines that carry a nonce no step can know.

// maxInline bounds the inline files a step carries in a chain script;
// a step with more, or with files from this machine, runs alone.
const maxInline = 1 << 20

// chainFuncs are the chain script's helpers. de_mark writes a control line
// on both streams, so that each stream's lines are attributed to the step
// that wrote them. de_file installs a file from base64 on stdin unless the
// node has it already, checking its size and SHA-256 before it moves it
// into place.
const chainFuncs = reapFuncs + `de_mark() { printf '%s %s\n' "$DE_N" "$*"; printf '%s %s\n' "$DE_N" "$*" >&2; }
de_file() {
  k=$1 i=$2 p=$3 m=$4 sum=$5 size=$6
  if [ -f "$p" ] && [ "$(sha256sum < "$p" | cut -d' ' -f1) $(stat -c %a "$p")" = "$sum $m" ]; then cat >/dev/null; return 0; fi
  mkdir -p "$(dirname "$p")"
  ( umask 077; base64 -d > "$p.de-tmp" ) || { de_mark badfile "$k" "$p" unreadable; exit 0; }
  got="$(stat -c %s "$p.de-tmp") $(sha256sum < "$p.de-tmp" | cut -d' ' -f1)"
  if [ "$got" != "$size $sum" ]; then rm -f "$p.de-tmp"; de_mark badfile "$k" "$p" $got; exit 0; fi
  chmod "$m" "$p.de-tmp" && mv -f "$p.de-tmp" "$p" && de_mark sent "$k" "$i"
}
`

// chainStepWrapper is a step alone's command run by the chain's shell,
// with the step's deadline taken as it begins; the chain made the run
// directory once, and the step's script is read without a process of its
// own. chainScript launches it and waits for it as launch does.
var chainStepWrapper = strings.NewReplacer(
	"setsid -w timeout", "DE_UNTIL=$(( ${EPOCHSECONDS:-$(date +%%s)} + %[1]d )) setsid -w timeout",
	"%[5]d", "$DE_UNTIL",
	"script=$(cat);", `IFS= read -r -d "" script;`,
).Replace(stepCommand)

// chainSettle is settleScript as a function of the chain script (key and
// hash its arguments), which returns where the script exits: no process
// of its own when, as mostly, no earlier run left its process group.
var chainSettle = "de_settle() {\n" + strings.ReplaceAll(fmt.Sprintf(settleScript, "$1", `"$2"`), "exit ", "return ") + "}\n"

// chainable tells whether a step can travel in a chain script: its files
// are inline and small.
func chainable(s contract.Step) bool {
	size := 0
	for _, f := range s.Files {
		if f.LocalPath != "" {
			return false
		}
		size += len(f.Content)
	}
	return size <= maxInline
}

// chainScript is the one script that runs runs' steps in order on the
// node; pres are their preludes (stepRun.prelude).
func chainScript(runs []*stepRun, pres []string, nonce string) (string, error) {
	var b strings.Builder
	// The chain's shell records its pid, so that a chain stopped from the
	// engine starts no further step (killChain).
	fmt.Fprintf(&b, "DE_N=%[1]s\n%[2]s%[3]smkdir -p %[4]s\necho $$ > %[5]s\ntrap 'rm -f %[5]s' EXIT\n", nonce, chainFuncs, chainSettle, nodefs.Run, chainPID(nonce))
	eof := "DE_EOF_" + nonce
	for k, r := range runs {
		s := r.s
		key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
		// An earlier run of the step may still be alive on the node: it is
		// waited for or killed first, as for a step alone.
		fmt.Fprintf(&b, "# %s\nde_mark begin %d\nde_settle %s %s || { de_mark settle %d; exit 0; }\n", s.ID, k, key, s.Hash, k)
		fmt.Fprintf(&b, "have=; [ -f %[1]s ] && read -r have < %[1]s\n", marker)
		fmt.Fprintf(&b, "if [ \"$have\" = %s ]; then de_mark done %d %s\n", kit.ShellQuote(s.Hash+" "+s.Deployment), k, contract.StateSucceeded)
		fmt.Fprintf(&b, "elif [ \"${have%%%% *}\" = %s ]; then de_mark done %d %s\nelse\n", kit.ShellQuote(s.Hash), k, contract.StateUnchanged)
		if s.Claim {
			fmt.Fprintf(&b, "o=$(%s)\nif [ -n \"$o\" ] && [ \"$o\" != %s ]; then de_mark owner %d \"$o\"; exit 0; fi\n",
				nodefs.ReadOwner, kit.ShellQuote(s.Engine), k)
		}
		if len(s.Files) > 0 {
			// The node is about to leave the state its marker records.
			fmt.Fprintf(&b, "rm -f %s\n", marker)
		}
		for fi, f := range s.Files {
			if err := checkPath(f.Path); err != nil {
				return "", err
			}
			open, size, sum, err := source(f)
			if err != nil {
				return "", err
			}
			rd, err := open()
			if err != nil {
				return "", err
			}
			data, err := io.ReadAll(rd)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "de_file %d %d %s %s %s %d <<'%s'\n%s\n%s\n", k, fi, kit.ShellQuote(f.Path), fileMode(f), sum, size, eof,
				wrap76(base64.StdEncoding.EncodeToString(data)), eof)
		}
		script := withPrelude(pres[k], s.Script)
		fmt.Fprintf(&b, chainStepWrapper, stepSecs(s)+5, key, s.Hash, s.Deployment, 0, exitLocked)
		fmt.Fprintf(&b, " <<'%[1]s' &\n%[2]s%[1]s\n%[4]s\nde_mark exit %[3]d $rc\n[ $rc -eq 0 ] || exit 0\nfi\n", eof, script, k, awaitRun(key))
	}
	b.WriteString("de_mark end\n")
	return b.String(), nil
}

// chainPID is where a chain's shell records its pid on the node.
func chainPID(nonce string) string { return nodefs.Run + "/chain-" + nonce + ".pid" }

// killChain stops a chain on the node: first its shell, so that it starts
// no further step, then the run of each of its steps from the one that
// runs, with all it started.
func killChain(c *ssh.Client, nonce string, keys []string) {
	sess, err := c.NewSession()
	if err != nil {
		return
	}
	defer sess.Close()
	var b strings.Builder
	b.WriteString(reapFuncs)
	fmt.Fprintf(&b, "read -r p < %[1]s 2>/dev/null && kill -KILL \"$p\" 2>/dev/null; rm -f %[1]s\n", chainPID(nonce))
	for _, k := range keys {
		b.WriteString(killRun(k))
	}
	b.WriteString("true\n")
	_ = sess.Run(b.String())
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteByte('\n')
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func fileMode(f contract.StepFile) string {
	if f.Mode == 0 {
		return "644"
	}
	return fmt.Sprintf("%o", f.Mode&0o7777)
}

// checkPath refuses a file path that is not plain and absolute.
func checkPath(p string) error {
	if !path.IsAbs(p) || strings.Contains(p, "..") || strings.ContainsAny(p, "'\n\x00") {
		return permanent{fmt.Errorf("refusing to write %q: not a plain absolute path", p)}
	}
	return nil
}

// stepTimeout is a step's deadline on the node.
func stepTimeout(s contract.Step) time.Duration {
	if s.TimeoutS <= 0 {
		return 15 * time.Minute
	}
	return time.Duration(s.TimeoutS) * time.Second
}

func stepSecs(s contract.Step) int { return max(int(stepTimeout(s)/time.Second), 1) }

func newNonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "DE" + hex.EncodeToString(b)
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

// runChain runs script on c in one session. Each step's output lines go to
// onLine with the step's index; control lines go to onMark, in order, from
// stdout. kill stops the step running when ctx ends first.
func runChain(ctx context.Context, c *ssh.Client, script, nonce string, onLine func(k int, stream, text string), onMark func(mark), prog *progress, kill func()) execResult {
	if ctx.Err() != nil {
		return execResult{code: -1, err: ctx.Err()}
	}
	// The script is read whole before it runs, so nothing it runs can read
	// the rest of it, and it never reaches argv.
	sess, stdout, stderr, err := session(c, `bash -c 'script=$(cat); exec </dev/null; eval "$script"'`, script)
	if err != nil {
		return execResult{err: err}
	}
	defer sess.Close()
	var wg sync.WaitGroup
	pump := func(idx int, stream string, r io.Reader) {
		defer wg.Done()
		defer prog.close(idx)
		cur := -1
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4*1024), 1<<20) // grows as a line needs
		for sc.Scan() {
			text := sc.Text()
			i := strings.Index(text, nonce)
			if i < 0 {
				if cur >= 0 {
					onLine(cur, stream, text)
				}
				continue
			}
			if i > 0 && cur >= 0 { // a last line without its newline
				onLine(cur, stream, text[:i])
			}
			m, ok := parseMark(strings.Fields(text[i+len(nonce):]))
			if !ok {
				continue
			}
			switch m.what {
			case "begin":
				cur = m.k
			case "done", "exit", "settle", "owner", "badfile":
				prog.pass(idx, m.k)
			}
			if idx == 0 {
				onMark(m)
			}
		}
	}
	wg.Add(2)
	go pump(0, "stdout", stdout)
	go pump(1, "stderr", stderr)
	return await(ctx, sess, &wg, func() {
		kill()
		// Closed at once: a chain shell that outlived the kill (it had not
		// recorded its pid yet) dies of SIGPIPE at its next control line,
		// which comes before any step begins.
		sess.Close()
	})
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
	nonce := newNonce()
	script, err := chainScript(runs, pres, nonce)
	if err != nil {
		return outcome{code: -1, err: err}
	}
	red := cfg.OutputRedactor()
	prog := newProgress()
	var (
		mu      sync.Mutex
		cur     = -1
		stopped = outcome{at: -1, code: -1}
		ended   bool
		stored  = true
	)
	valid := func(k int) bool { return k >= 0 && k < len(runs) }
	tail := func(k int) string {
		mu.Lock()
		defer mu.Unlock()
		return red.Redact(runs[k].tail.String())
	}
	// The two streams' lines go out one at a time: each line's number is
	// the order it is published in.
	onLine := func(k int, stream, text string) {
		if !valid(k) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		runs[k].output(red, stream, text)
	}
	// Marks come in order from stdout; the first that stops the chain
	// ends the reading of results.
	onMark := func(m mark) {
		if m.what == "end" {
			ended = true
			return
		}
		if !valid(m.k) || stopped.at >= 0 || !stored {
			return
		}
		r := runs[m.k]
		switch m.what {
		case "begin":
			mu.Lock()
			cur = m.k
			mu.Unlock()
			r.started = time.Now().UTC()
			_ = r.report(contract.StateRunning, nil, "", false)
		case "sent":
			if fi, err := strconv.Atoi(strings.Join(m.args, "")); err == nil && fi >= 0 && fi < len(r.s.Files) {
				i.metrics.bytes.Add(float64(len(r.s.Files[fi].Content)))
				mu.Lock()
				r.line("stdout", "sent "+r.s.Files[fi].Path)
				mu.Unlock()
			}
		case "done":
			prog.wait(m.k)
			if len(m.args) == 1 && (m.args[0] == contract.StateSucceeded || m.args[0] == contract.StateUnchanged) {
				stored = r.succeed(m.args[0])
			}
		case "exit":
			prog.wait(m.k)
			rc, _ := strconv.Atoi(strings.Join(m.args, ""))
			code, err := r.exitError(execResult{code: rc}, r.cancelled.Load() != nil || runs[0].cancelled.Load() != nil, tail(m.k))
			if err != nil {
				stopped = outcome{at: m.k, code: code, err: err}
			} else {
				stored = r.succeed(contract.StateSucceeded)
			}
		case "settle":
			prog.wait(m.k)
			stopped = outcome{at: m.k, code: -1, err: fmt.Errorf("an earlier run of %s on %s: %s", r.s.Key, r.s.Node, tail(m.k))}
		case "owner":
			stopped = outcome{at: m.k, code: -1, err: r.ownedBy(strings.Join(m.args, " "))}
		case "badfile":
			stopped = outcome{at: m.k, code: -1, err: fmt.Errorf("transfer to %s incomplete (node has %q); sending again", r.s.Node, strings.Join(m.args, " "))}
		}
	}
	kill := func() {
		mu.Lock()
		k := max(cur, 0)
		mu.Unlock()
		var keys []string
		for _, r := range runs[k:] {
			keys = append(keys, nodefs.MarkerName(r.s.Key))
		}
		killChain(c, nonce, keys)
	}
	res := runChain(ctx, c, script, nonce, onLine, onMark, prog, kill)
	at := max(cur, 0)
	switch {
	case !stored:
		return outcome{at: at, code: -1, lost: true}
	case stopped.at >= 0:
		return stopped
	}
	cancelled := runs[0].cancelled.Load() != nil
	if ctx.Err() != nil && runs[0].ctx.Err() == nil {
		// The chain's own deadline, not its message's end, stopped it.
		res.err = context.DeadlineExceeded
	}
	if res.err == nil && !cancelled {
		if !ended {
			return outcome{at: at, code: -1, err: fmt.Errorf("the node's shell ended (exit status %d) before %s finished", res.code, runs[at].s.ID)}
		}
		return outcome{at: len(runs)}
	}
	_, err = runs[at].exitError(execResult{code: -1, err: res.err}, cancelled, "")
	return outcome{at: at, code: -1, err: err}
}
