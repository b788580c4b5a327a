package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

// followDeployment follows a deployment to its end: a progress bar on
// stderr, the live log on stdout (or, with --json, every event as one JSON
// line on stdout). Exit 0 when it succeeded, 1 when it failed.
func (s *session) followDeployment(ctx context.Context, id string) int {
	p := newProgress(s.stderr)
	if !s.json {
		fmt.Fprintf(s.stderr, "deployment %s\n", id)
	}
	d, err := s.c.Follow(ctx, id, func(ev client.Event) error {
		if s.json {
			line, err := json.Marshal(struct {
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}{ev.Kind, ev.Data})
			if err != nil {
				return fmt.Errorf("encode event: %w", err)
			}
			_, err = fmt.Fprintf(s.stdout, "%s\n", line)
			return err
		}
		switch {
		case ev.Summary != nil:
			p.summary(*ev.Summary)
		case ev.Step != nil:
			p.step(*ev.Step)
		case ev.Log != nil:
			p.clear()
			if _, err := fmt.Fprintf(s.stdout, "%s %s | %s\n", ev.Log.Node, ev.Log.Component, ev.Log.Line); err != nil {
				return err
			}
		}
		p.draw()
		return nil
	})
	p.clear()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(s.stderr, "stopped following; deployment %s goes on in the engine\n", id)
			return exitFailed
		}
		return s.fail(err)
	}
	if !s.json {
		p.summary(d)
		p.done()
		// The summary lists the first failed steps; more are paged.
		failed := d.Failed
		if d.Counts[contract.StateFailed] > len(failed) {
			if failed, err = s.c.AllSteps(ctx, id, contract.StateFailed); err != nil {
				fmt.Fprintf(s.stderr, "cannot list the failed steps: %v\n", err)
			}
		}
		summarize(s.stderr, d, failed)
	}
	if d.State == contract.DeploySucceeded {
		return exitOK
	}
	return exitFailed
}

// summarize prints the end of a deployment and its failed steps.
func summarize(w io.Writer, d contract.DeploymentPage, failed []contract.StepStatus) {
	took := ""
	if d.Finished != nil && !d.Created.IsZero() {
		took = " in " + d.Finished.Sub(d.Created).Round(time.Second).String()
	}
	fmt.Fprintf(w, "deployment %s %s%s: %d step(s) changed\n", d.ID, d.State, took, d.Changed)
	if d.Error != "" {
		fmt.Fprintf(w, "  %s\n", d.Error)
	}
	for _, h := range d.Held {
		fmt.Fprintf(w, "  held: node %s, its steps not run: %s\n", h.IP, h.Reason)
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].ID < failed[j].ID })
	for _, st := range failed {
		code := ""
		if st.ExitCode != nil {
			code = fmt.Sprintf(" (exit %d)", *st.ExitCode)
		}
		fmt.Fprintf(w, "  failed: %s %s %s, attempt %d%s: %s\n", st.Node, st.Component, st.Action, st.Attempt, code, printable(st.Error))
	}
}

// progress draws "[#####-----] 12/40 steps" on a terminal, redrawn in
// place; elsewhere it writes a line each time a step ends. It counts from
// the deployment's summary (total, steps per state) and the step events
// that followed it: the stream replays those from the deployment's start,
// so either may be ahead, and each count is the larger of the two.
type progress struct {
	w      io.Writer
	tty    bool
	total  int
	base   map[string]int    // steps per state, as the last summary said
	states map[string]string // each step's state, as its events said
	drawn  bool
	last   string // key of the last line printed (not a terminal)
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), states: map[string]string{}}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// summary takes the counts of d; step events count on from it.
func (p *progress) summary(d contract.DeploymentPage) {
	p.total, p.base, p.states = d.Total, d.Counts, map[string]string{}
}

func (p *progress) step(ev contract.StepEvent) {
	p.states[ev.ID] = ev.State
}

// counts are the steps in all, ended, failed and running.
func (p *progress) counts() (total, done, failed, running int) {
	var ed, ef, er int
	for _, st := range p.states {
		ed, ef, er = ed+b2i(contract.Final(st)), ef+b2i(st == contract.StateFailed), er+b2i(st == contract.StateRunning)
	}
	for st, n := range p.base {
		done += n * b2i(contract.Final(st))
	}
	total, done, failed = max(p.total, len(p.states)), max(done, ed), max(p.base[contract.StateFailed], ef)
	running = p.base[contract.StateRunning]
	if len(p.states) > 0 {
		running = er
	}
	return total, done, failed, running
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// line is the bar as text.
func (p *progress) line() string {
	total, done, failed, running := p.counts()
	if total == 0 {
		return "[" + strings.Repeat("-", 30) + "] planning"
	}
	const width = 30
	n := min(done, total) * width / total
	s := fmt.Sprintf("[%s%s] %d/%d steps", strings.Repeat("#", n), strings.Repeat("-", width-n), done, total)
	if running > 0 {
		s += fmt.Sprintf(", %d running", running)
	}
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	return s
}

func (p *progress) draw() {
	l := p.line()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", l)
		p.drawn = true
		return
	}
	// Not a terminal: one line each time a step ends.
	if total, _, _, _ := p.counts(); total > 0 && p.key() != p.last {
		fmt.Fprintln(p.w, l)
		p.last = p.key()
	}
}

// key is what a line is printed for when stderr is not a terminal: the
// number of steps, of ended ones and of failed ones.
func (p *progress) key() string {
	total, done, failed, _ := p.counts()
	return fmt.Sprintf("%d/%d/%d", done, total, failed)
}

// clear takes the bar off the terminal's last line.
func (p *progress) clear() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// done draws the final bar on its own line.
func (p *progress) done() {
	if p.tty || p.key() != p.last {
		fmt.Fprintln(p.w, p.line())
	}
	p.last = p.key()
}
