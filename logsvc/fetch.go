package logsvc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeclient"
	"github.com/deployment-engine/engine/services/subject"
)

// Runtime logs of nodes whose agent does not report are fetched over SSH
// (the installer's exec) every FetchEvery, from where the last fetch
// stopped, and go the way an agent's lines go.
const (
	// fetchChunk is the most one fetch reads of one file: base64 of it
	// stays within one output line of the installer's exec.
	fetchChunk = 512 << 10
	// fetchBacklog is how much of a file the first fetch sends.
	fetchBacklog = 64 << 10
	// offsetsKey keeps the fetch offsets in the engine's KV bucket.
	offsetsKey = "logsvc.fetch-offsets"
)

// fetchScript prints the file's size, the offset it reads from, and
// base64 of up to fetchChunk bytes from there. An offset below zero means
// "the last fetchBacklog bytes"; one past the end (a rotated file) starts
// again from the top.
const fetchScript = `set -eu
f=%s; off=%d
[ -f "$f" ] || exit 3
size=$(stat -c %%s "$f")
if [ "$off" -lt 0 ]; then off=$(( size > %d ? size - %d : 0 )); fi
if [ "$off" -gt "$size" ]; then off=0; fi
echo "$size"; echo "$off"
tail -c +$((off + 1)) "$f" | head -c %d | base64 -w0; echo
`

// fetched is what one fetch of a file brought: its complete lines and the
// offset after the last of them.
type fetched struct {
	lines []string
	next  int64
}

// parseFetch reads fetchScript's output.
func parseFetch(out string) (fetched, error) {
	parts := strings.SplitN(out, "\n", 4)
	if len(parts) < 3 {
		return fetched{}, fmt.Errorf("fetch: unexpected output %q", truncate(out, 80))
	}
	size, err1 := strconv.ParseInt(parts[0], 10, 64)
	off, err2 := strconv.ParseInt(parts[1], 10, 64)
	data, err3 := base64.StdEncoding.DecodeString(strings.TrimSpace(parts[2]))
	if err := errors.Join(err1, err2, err3); err != nil || off < 0 || off > size || int64(len(data)) > size-off || len(data) > fetchChunk {
		return fetched{}, fmt.Errorf("fetch: unexpected output %q", truncate(out, 80))
	}
	f := fetched{next: off}
	for len(data) > 0 {
		i, skip := bytes.IndexByte(data, '\n'), 1
		if i < 0 {
			if len(data) < fetchChunk {
				break // the rest of the line comes next time
			}
			i, skip = len(data), 0 // a line longer than a chunk is cut
		}
		f.lines = append(f.lines, string(bytes.TrimRight(data[:i], "\r")))
		f.next += int64(i + skip)
		data = data[i+skip:]
	}
	return f, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// fetcher fetches the runtime logs of nodes without an agent until ctx ends.
func (s *Service) fetcher(ctx context.Context) {
	defer close(s.fetchDone)
	offsets := map[string]int64{}
	if e, err := s.o.Res.Engine.Get(ctx, offsetsKey); err == nil {
		_ = json.Unmarshal(e.Value(), &offsets)
	}
	t := time.NewTicker(s.o.FetchEvery)
	defer t.Stop()
	seq := int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cfg, err := bus.LoadConfig(ctx, s.o.Res.Config)
		if err != nil {
			continue
		}
		changed := false
		for _, comp := range contract.SortedKeys(cfg.Components) {
			paths := s.o.LogPaths(cfg.CatalogName(), comp)
			for _, ip := range cfg.Components[comp] {
				if len(paths) == 0 || s.agentReports(ctx, ip) {
					continue
				}
				for _, p := range paths {
					key := ip + " " + p
					off, seen := offsets[key]
					if !seen {
						off = -1
					}
					f, err := s.fetch(ctx, ip, p, off)
					if err != nil {
						continue
					}
					for _, line := range f.lines {
						seq++
						b, _ := json.Marshal(contract.LogLine{V: contract.Version, Node: ip, Component: comp, Stream: p, Seq: seq, Time: time.Now().UTC(), Line: line})
						select {
						case s.rtCh <- &nats.Msg{Subject: subject.NodeLog(ip, comp), Data: b}:
						case <-s.stopping:
							return
						}
					}
					if f.next != off {
						offsets[key], changed = f.next, true
					}
				}
			}
		}
		if changed {
			b, _ := json.Marshal(offsets)
			if _, err := s.o.Res.Engine.Put(ctx, offsetsKey, b); err != nil {
				s.log.Warn("record log fetch offsets", "err", err)
			}
		}
	}
}

// agentReports tells whether the node's agent reports (its last
// heartbeat, as the monitor keeps it, is recent): its lines then come
// live, not by fetching.
func (s *Service) agentReports(ctx context.Context, ip string) bool {
	tok, err := subject.IPToken(ip)
	if err != nil {
		return false
	}
	e, err := s.o.Res.Nodes.Get(ctx, tok)
	var hb contract.Heartbeat
	return err == nil && json.Unmarshal(e.Value(), &hb) == nil && nodeclient.Reporting(hb, e.Created(), time.Now(), nodeclient.Missed)
}

func (s *Service) fetch(ctx context.Context, ip, path string, off int64) (fetched, error) {
	script := fmt.Sprintf(fetchScript, kit.ShellQuote(path), off, fetchBacklog, fetchBacklog, fetchChunk)
	r, err := nodeclient.Exec(ctx, s.o.NC, ip, script, 25*time.Second)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch %s on %s: %w", path, ip, err)
	}
	if r.Error != "" || r.ExitCode != 0 {
		return fetched{}, fmt.Errorf("fetch %s on %s: exit %d %s", path, ip, r.ExitCode, r.Error)
	}
	return parseFetch(r.Output)
}
