package installer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/deployment-engine/engine/services/contract"
)

// outcome is how a message's steps ran once.
type outcome struct {
	// at is the step that stopped the run (len(runs) when none did), code
	// its exit status (-1 for none) and err why it stopped.
	at, code int
	err      error
	// lost is set when a result could not be stored: the steps are left
	// to come back.
	lost bool
}

// execute runs a message's steps once, in order, and reports each step's
// start and success as it happens, its result stored before the next step
// begins. Steps go in chain scripts (runSegment), a step alone as a chain
// of one; only a step whose files the installer sends itself runs apart
// (runSent), and a read of a file back from the node (runRead).
func (i *Installer) execute(runs []*stepRun) outcome {
	for k := 0; k < len(runs); {
		j := k + 1
		var out outcome
		switch {
		case runs[k].s.ReadBack != "":
			out = runs[k].runRead()
		case chainable(runs[k].s):
			for j < len(runs) && chainable(runs[j].s) {
				j++
			}
			out = i.runSegment(runs[k:j])
		default:
			out = runs[k].runSent()
		}
		if out.err != nil || out.lost {
			out.at += k
			return out
		}
		k = j
	}
	return outcome{at: len(runs)}
}

// errCancelled is a step stopped by its deployment's cancel: nothing will
// try it again.
var errCancelled = permanent{errors.New("cancelled")}

// exitError classifies how a step's script ended on the node: the exit
// code to report (-1 for none) and why it failed, nil when it did not.
// cancelled tells whether the step's deployment was cancelled meanwhile;
// tail is its last lines of stderr.
func (r *stepRun) exitError(res execResult, cancelled bool, tail string) (int, error) {
	switch {
	case cancelled:
		return -1, errCancelled
	case errors.Is(res.err, context.DeadlineExceeded):
		return exitTimedOut, r.timedOut()
	case res.err != nil:
		return -1, res.err
	case res.code == 0:
		return 0, nil
	case res.code == exitLocked:
		return -1, errors.New("another run of this step holds its lock on the node")
	case res.code == exitTimedOut:
		return exitTimedOut, r.timedOut()
	}
	return res.code, permanent{errScript{code: res.code, tail: tail}}
}

// exitTimedOut is the exit status of a step killed at its deadline, as
// timeout(1) gives it, whether the node's shell or the engine stopped it.
const exitTimedOut = 124

// timedOut is a step killed at its deadline: a retry would only wait as
// long again.
func (r *stepRun) timedOut() error {
	return permanent{fmt.Errorf("timed out after %s; the command was killed on the node", stepTimeout(r.s))}
}

// errScript is a script that ran and failed: no retry mends it.
type errScript struct {
	code int
	tail string
}

func (e errScript) Error() string {
	if e.tail == "" {
		return fmt.Sprintf("exited with status %d", e.code)
	}
	return fmt.Sprintf("exited with status %d: %s", e.code, e.tail)
}

// stderrTail keeps a step's last lines of stderr, for its error.
type stderrTail []string

func (t *stderrTail) add(stream, text string) {
	if stream != "stderr" {
		return
	}
	*t = append(*t, text)
	if len(*t) > 5 {
		*t = (*t)[1:]
	}
}

func (t stderrTail) String() string { return strings.Join(t, " | ") }

// Bounds of an outputTail: the lines it keeps, and their bytes.
const (
	keptLines = 20
	keptBytes = 4 << 10
)

// outputTail keeps the last lines of a step's output, both streams, for
// a result that shows them: at most keptLines lines and keptBytes bytes,
// a longer line cut to its end.
type outputTail struct {
	lines []string
	size  int
}

func (t *outputTail) add(text string) {
	if len(text) > keptBytes {
		cut := len(text) - keptBytes
		for cut < len(text) && !utf8.RuneStart(text[cut]) {
			cut++
		}
		text = "…" + text[cut:]
	}
	t.lines = append(t.lines, text)
	t.size += len(text) + 1
	for len(t.lines) > keptLines || t.size > keptBytes {
		t.size -= len(t.lines[0]) + 1
		t.lines = t.lines[1:]
	}
}

func (t outputTail) String() string { return strings.Join(t.lines, "\n") }

// streamTail keeps the end of one stream of a step's output, up to max
// bytes (contract.MaxStreamBytes when 0), and counts what it cut from the
// start.
type streamTail struct {
	b   []byte
	cut int
	max int
}

func (t *streamTail) bound() int {
	if t.max <= 0 || t.max > contract.MaxStreamBytes {
		return contract.MaxStreamBytes
	}
	return t.max
}

func (t *streamTail) add(text string) {
	t.b = append(append(t.b, text...), '\n')
	// Cut only once twice the bound is held: each byte is copied a
	// bounded number of times however long the stream.
	if len(t.b) > 2*t.bound() {
		t.trim()
	}
}

func (t *streamTail) trim() {
	if n := len(t.b) - t.bound(); n > 0 {
		for n < len(t.b) && !utf8.RuneStart(t.b[n]) {
			n++
		}
		t.cut += n
		t.b = append(t.b[:0:0], t.b[n:]...)
	}
}

// String is the stream as kept, after a line that says how many bytes of
// its start were cut, if any.
func (t *streamTail) String() string {
	t.trim()
	if t.cut == 0 {
		return string(t.b)
	}
	return fmt.Sprintf("[%d bytes cut: the last %d follow]\n%s", t.cut, len(t.b), t.b)
}
