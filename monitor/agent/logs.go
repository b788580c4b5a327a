package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

const (
	// backlog is how much of a log file the agent sends when it first sees
	// it; older lines stay on the node.
	backlog = 1 << 20
	// maxLine cuts lines that never end.
	maxLine = 64 << 10
)

// follower is one log file the agent follows.
type follower struct {
	comp, path string
	seq        int64
}

// followLogs sends every new line of the components' log files to the
// engine, once a second, and keeps its offsets in the state file so that a
// restarted agent carries on where it stopped. A log given as a pattern
// (a BOSH job's /var/vcap/sys/log/<job>/*.log) follows each file it
// matches, those the job creates later too.
func (a *Agent) followLogs(ctx context.Context) {
	offsets := map[string]int64{}
	if a.o.StateFile != "" {
		if b, err := os.ReadFile(a.o.StateFile); err == nil {
			_ = json.Unmarshal(b, &offsets)
		}
	}
	followed := map[string]*follower{}
	var fs []*follower
	add := func(comp, path string) {
		if followed[path] == nil {
			followed[path] = &follower{comp: comp, path: path}
			fs = append(fs, followed[path])
		}
	}
	patterns := 0
	for _, c := range a.cfg.Components {
		patterns += len(c.Logs)
	}
	if patterns == 0 {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, c := range a.cfg.Components {
			for _, p := range c.Logs {
				if !strings.ContainsAny(p, "*?[") {
					add(c.Name, p)
					continue
				}
				matches, _ := filepath.Glob(p) // a bad pattern matches nothing
				for _, m := range matches {
					add(c.Name, m)
				}
			}
		}
		changed := false
		for _, f := range fs {
			off, seen := offsets[f.path]
			n := a.readLog(f, off, seen)
			if n != off || !seen {
				offsets[f.path], changed = n, true
			}
		}
		if changed && a.o.StateFile != "" {
			b, _ := json.Marshal(offsets)
			_ = os.WriteFile(a.o.StateFile, b, 0o600)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readLog sends f's lines from off on and returns the new offset.
func (a *Agent) readLog(f *follower, off int64, seen bool) int64 {
	fh, err := os.Open(f.path)
	if err != nil {
		return off
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return off
	}
	size := st.Size()
	switch {
	case !seen:
		off = max(0, size-backlog)
	case size < off:
		// Rotated or truncated: start again from its top.
		off = 0
	}
	if size == off {
		return off
	}
	buf := make([]byte, min(size-off, 4<<20))
	n, err := fh.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return off
	}
	// A line without its newline yet is read again next time.
	data, used := buf[:n], 0
	now := time.Now().UTC()
	for len(data) > 0 {
		i, skip := bytes.IndexByte(data, '\n'), 1
		if i < 0 {
			if len(data) < maxLine {
				break
			}
			i, skip = len(data), 0
		}
		f.seq++
		l := contract.LogLine{V: contract.Version, Node: a.cfg.IP, Component: f.comp, Stream: f.path, Seq: f.seq, Time: now, Line: string(bytes.TrimRight(data[:i], "\r"))}
		b, _ := json.Marshal(l)
		_ = a.nc.Publish(subject.NodeLog(a.cfg.IP, f.comp), b)
		used += i + skip
		data = data[i+skip:]
	}
	return off + int64(used)
}
