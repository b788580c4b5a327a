package api

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// tailLines are the last n runtime lines of each followed instance's file
// in the log store, in the config's order of the nodes. What cannot be
// read is left out: the stream has begun.
func (s *server) tailLines(ctx context.Context, f *follower, n int) []contract.FollowLine {
	f.mu.Lock()
	red := f.red
	f.mu.Unlock()
	ips, names := f.instances()
	var out []contract.FollowLine
	for i, name := range names {
		lines, err := s.lastLines(ctx, name, n)
		if err != nil {
			s.log.Warn("follow logs: read the tail", "log", name, "err", err)
			continue
		}
		for _, raw := range lines {
			t, file, line, ok := parseRuntimeLine(raw)
			if !ok {
				continue
			}
			out = append(out, contract.FollowLine{Node: ips[i], Component: f.q.component, Instance: name,
				File: red.Redact(file), Time: t, Line: red.Redact(line), Tail: true})
		}
	}
	return out
}

// lastLines reads the runtime lines of the end of a log: at most its last
// LogReadMax bytes, the first line dropped when it may be cut.
func (s *server) lastLines(ctx context.Context, name string, n int) ([]string, error) {
	c, rep, err := s.readLog(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	if rep.Code == http.StatusNotFound {
		return nil, nil // nothing written for the instance yet
	}
	if rep.Code != http.StatusOK {
		return nil, errCode(rep.Code)
	}
	if off := c.Size - contract.LogReadMax; off > 0 {
		if c, rep, err = s.readLog(ctx, name, off); err != nil {
			return nil, err
		}
		if rep.Code != http.StatusOK {
			return nil, errCode(rep.Code)
		}
		if i := bytes.IndexByte(c.Data, '\n'); i >= 0 {
			c.Data = c.Data[i+1:]
		}
	}
	var lines []string
	for _, l := range strings.Split(string(c.Data), "\n") {
		if _, _, _, ok := parseRuntimeLine(l); ok {
			lines = append(lines, l)
		}
	}
	return lines[max(0, len(lines)-n):], nil
}

type errCode int

func (e errCode) Error() string { return "the log service answered " + strconv.Itoa(int(e)) }

// parseRuntimeLine reads a runtime line as the log store writes it:
// "<RFC 3339 time> [runtime <file>] <line>", the file quoted when it is
// not one plain word. Install output and other lines do not parse.
func parseRuntimeLine(s string) (t time.Time, file, line string, ok bool) {
	ts, rest, found := strings.Cut(s, " ")
	if !found {
		return
	}
	var err error
	if t, err = time.Parse(time.RFC3339, ts); err != nil {
		return
	}
	if rest, found = strings.CutPrefix(rest, "[runtime "); !found {
		return
	}
	if strings.HasPrefix(rest, `"`) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return
		}
		file, _ = strconv.Unquote(q)
		rest = rest[len(q):]
	} else {
		i := strings.IndexByte(rest, ']')
		if i < 0 {
			return
		}
		file, rest = rest[:i], rest[i:]
	}
	if file == "-" {
		file = "" // the store's mark of none
	}
	if line, found = strings.CutPrefix(rest, "] "); !found {
		return
	}
	return t.UTC(), file, line, true
}
