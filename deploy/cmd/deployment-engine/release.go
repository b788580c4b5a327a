package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

func init() {
	commands["release"] = clientCommand("release", releaseCmd)
}

// releaseCmd: release upload FILE | release list.
func releaseCmd(ctx context.Context, s *session) int {
	if len(s.args) == 0 {
		return s.usage("release needs upload FILE or list")
	}
	switch sub := s.args[0]; sub {
	case "list":
		if code := s.begin(len(s.args) == 1, "release list takes no argument"); code != exitOK {
			return code
		}
		rels, raw, err := s.c.Releases(ctx)
		return s.answer(raw, err, func() {
			tw := table(s.stdout, "NAME\tVERSION\tJOBS\tPACKAGES")
			for _, r := range rels {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Version, strings.Join(r.Jobs, ","), dash(strings.Join(r.Packages, ",")))
			}
			_ = tw.Flush()
		})
	case "upload":
		if len(s.args) != 2 {
			return s.usage("release upload needs FILE")
		}
		f, err := os.Open(s.args[1])
		if err != nil {
			fmt.Fprintf(s.stderr, "release: %v\n", err)
			return exitUsage
		}
		defer func() { _ = f.Close() }()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			fmt.Fprintf(s.stderr, "release: %s is not a file\n", s.args[1])
			return exitUsage
		}
		if code := s.connect(); code != exitOK {
			return code
		}
		bar := &uploadBar{w: s.stderr, total: st.Size(), tty: isTerminal(s.stderr)}
		rel, created, raw, err := s.c.UploadRelease(ctx, io.TeeReader(f, bar), st.Size())
		bar.finish()
		if err != nil {
			return s.fail(err)
		}
		if s.json {
			s.printJSON(raw)
			return exitOK
		}
		what := "uploaded"
		if !created {
			what = "already stored"
		}
		fmt.Fprintf(s.stdout, "release %s/%s %s: jobs %s; packages %s\n", rel.Name, rel.Version, what,
			strings.Join(rel.Jobs, ", "), dash(strings.Join(rel.Packages, ", ")))
		return exitOK
	default:
		return s.usage("unknown release command %q: say upload FILE or list", sub)
	}
}

// uploadBar draws "[#####-----] 45% 12.3/27.0 MB" while a file streams:
// redrawn in place on a terminal at most 5 times a second, else one line
// per 10%.
type uploadBar struct {
	w           io.Writer
	total, sent int64
	tty         bool
	mu          sync.Mutex
	last        time.Time
	lastTenth   int64
}

func (b *uploadBar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent += int64(len(p))
	if b.tty {
		if time.Since(b.last) > 200*time.Millisecond {
			b.last = time.Now()
			fmt.Fprintf(b.w, "\r%s", b.line())
		}
	} else if b.total > 0 {
		if tenth := b.sent * 10 / b.total; tenth > b.lastTenth {
			b.lastTenth = tenth
			fmt.Fprintln(b.w, b.line())
		}
	}
	return len(p), nil
}

func (b *uploadBar) line() string {
	frac := 1.0
	if b.total > 0 {
		frac = float64(b.sent) / float64(b.total)
	}
	n := int(frac * 30)
	return fmt.Sprintf("[%s%s] %3.0f%% %.1f/%.1f MB", strings.Repeat("#", n), strings.Repeat("-", 30-n), frac*100,
		float64(b.sent)/1e6, float64(b.total)/1e6)
}

func (b *uploadBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\n", b.line())
	}
}
