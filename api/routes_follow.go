package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

const (
	// followTailMax bounds ?tail=: the lines read back per instance.
	followTailMax = 1000
	// followBuffer is how many lines may wait for a client: one that falls
	// further behind has its stream cut, rather than hold lines without
	// end or drop some unseen.
	followBuffer = 1024
	// followLineMax cuts a line an agent sent longer than its own limit.
	followLineMax = 64 << 10
	// followFileMax cuts the name of the node's file a line came from.
	followFileMax = 256
)

// followQuery is what GET /logs/follow asks for.
type followQuery struct {
	component, ip string
	tail          int
}

// readFollowQuery reads the query, answering 400 naming the field at
// fault.
func readFollowQuery(w http.ResponseWriter, r *http.Request) (followQuery, bool) {
	v := r.URL.Query()
	q := followQuery{component: v.Get("component"), ip: v.Get("ip")}
	bad := func(field, reason string) (followQuery, bool) {
		writeJSON(w, http.StatusBadRequest, contract.ErrorBody{Error: field + ": " + reason,
			Problems: []contract.Problem{{Path: field, Reason: reason}}})
		return followQuery{}, false
	}
	switch {
	case q.component == "":
		return bad("component", "required: the component whose log lines to follow")
	case !subject.ValidToken(q.component):
		return bad("component", fmt.Sprintf("%q is not a component's name", contract.Clip(q.component)))
	}
	if q.ip != "" {
		a, err := netip.ParseAddr(q.ip)
		if err != nil || !a.Is4() {
			return bad("ip", fmt.Sprintf("%q is not an IPv4 address", contract.Clip(q.ip)))
		}
		q.ip = a.String()
	}
	if t := v.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > followTailMax {
			return bad("tail", fmt.Sprintf("%q is not a number of lines from 0 to %d", contract.Clip(t), followTailMax))
		}
		q.tail = n
	}
	return q, true
}

// followLogs answers GET /logs/follow: a component's runtime log lines,
// as its nodes' agents send them, as server-sent "line" events; first,
// with ?tail=N, the last N lines of each instance's file in the log store.
// Only the lines of the config's instances go out (an agent may publish
// for any component on its own node), each with the config's secrets
// redacted. The stream ends when the client leaves, when its token stops
// verifying (auth's revoker), or with a "cut" event when the client falls
// followBuffer lines behind.
func (s *server) followLogs(w http.ResponseWriter, r *http.Request) {
	q, ok := readFollowQuery(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	kv, cfg, ok := s.loadConfig(w, r)
	if !ok {
		return
	}
	f, err := newFollower(cfg, q)
	if err != nil {
		field := "component"
		if _, known := cfg.Components[q.component]; known {
			field = "ip"
		}
		writeJSON(w, http.StatusBadRequest, contract.ErrorBody{Error: field + ": " + err.Error(),
			Problems: []contract.Problem{{Path: field, Component: q.component, IP: q.ip, Reason: err.Error()}}})
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming not supported")
		return
	}
	// Subscribe before reading the tail: no line falls between the two.
	subj := subject.NodeLogsOf(q.component)
	if q.ip != "" {
		subj = subject.NodeLog(q.ip, q.component)
	}
	sub, err := s.o.NC.Subscribe(subj, f.take)
	if err != nil {
		s.log.Error("follow logs", "subject", subj, "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot follow the component's log lines")
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	// The watch starts before the answer does, and gives the config as it
	// is now first: a config stored since it was read above is not missed
	// (its secrets would otherwise go out unredacted).
	wt, err := kv.Watch(ctx, bus.KeyConfig)
	if err != nil {
		s.log.Error("follow logs: watch the config", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot follow the config's changes")
		return
	}
	defer func() { _ = wt.Stop() }()
	go f.watch(ctx, wt)

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	if q.tail > 0 {
		for _, l := range s.tailLines(ctx, f, q.tail) {
			writeLine(w, l)
		}
		flusher.Flush()
	}
	f.relay(ctx, w, flusher)
}

// loadConfig reads the stored config, its secrets open: the follower
// redacts them. It answers 403 when there is none, as the manual's routes
// do.
func (s *server) loadConfig(w http.ResponseWriter, r *http.Request) (jetstream.KeyValue, contract.Config, bool) {
	if s.js == nil {
		writeError(w, http.StatusServiceUnavailable, "not connected to the bus")
		return nil, contract.Config{}, false
	}
	kv, err := s.js.KeyValue(r.Context(), bus.KVConfig)
	var cfg contract.Config
	if err == nil {
		cfg, err = bus.LoadConfig(r.Context(), kv)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		writeError(w, http.StatusForbidden, "no config has been submitted yet")
	case err != nil:
		s.log.Error("read the config", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the stored config cannot be read; check the engine's log")
	default:
		return kv, cfg, true
	}
	return nil, contract.Config{}, false
}

// follower passes one component's lines from the bus to one client.
type follower struct {
	q   followQuery
	ch  chan contract.FollowLine
	cut chan struct{}
	// cutOnce closes cut: the bus's callback finds the client behind.
	cutOnce sync.Once

	mu sync.Mutex
	// inst is the instance file of each node followed, as the config
	// places them; a line from any other node is dropped. order is their
	// nodes in the config's order.
	inst  map[string]string
	order []string
	red   contract.OutputRedactor
}

func newFollower(cfg contract.Config, q followQuery) (*follower, error) {
	f := &follower{q: q, ch: make(chan contract.FollowLine, followBuffer), cut: make(chan struct{})}
	if err := f.update(cfg); err != nil {
		return nil, err
	}
	return f, nil
}

// update takes the config's instances of the component (on the node
// asked for) and its secrets.
func (f *follower) update(cfg contract.Config) error {
	ip := f.q.ip
	if ip == "" {
		ip = "0.0.0.0"
	}
	ips, err := cfg.InstancesOf(f.q.component, ip)
	if err != nil {
		ips = nil // gone from the config: no line passes
	}
	inst := make(map[string]string, len(ips))
	var order []string
	for _, ip := range ips {
		n, ip := instanceIndex(cfg.Components[f.q.component], ip), canonicalIP(ip)
		if _, dup := inst[ip]; n >= 0 && !dup {
			inst[ip] = f.q.component + "_" + strconv.Itoa(n) + ".log"
			order = append(order, ip)
		}
	}
	f.mu.Lock()
	// Every secret seen stays redacted: a process may still print an old one.
	f.inst, f.order, f.red = inst, order, f.red.Also(cfg)
	f.mu.Unlock()
	return err
}

// instanceIndex is ip's place among the component's nodes, as the log
// store numbers its files: the first time it is listed.
func instanceIndex(ips []string, ip string) int {
	for i, v := range ips {
		if canonicalIP(v) == canonicalIP(ip) {
			return i
		}
	}
	return -1
}

// canonicalIP is ip as subjects carry it.
func canonicalIP(ip string) string {
	if a, err := netip.ParseAddr(strings.TrimSpace(ip)); err == nil {
		return a.String()
	}
	return ip
}

// instances are the followed nodes and their files, in the config's order.
func (f *follower) instances() (ips, names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ip := range f.order {
		ips, names = append(ips, ip), append(names, f.inst[ip])
	}
	return ips, names
}

// take is the bus's callback: it never blocks. The node and component
// are the subject's, which the bus's permissions bind to the agent; the
// body is the agent's to choose and only gives the line, its file and
// time.
func (f *follower) take(m *nats.Msg) {
	ns, err := subject.ParseNodeLog(m.Subject)
	if err != nil || ns.Component != f.q.component {
		return
	}
	f.mu.Lock()
	name, ok := f.inst[ns.IP]
	red := f.red
	f.mu.Unlock()
	if !ok {
		return
	}
	var l contract.LogLine
	if json.Unmarshal(m.Data, &l) != nil {
		return
	}
	line := contract.FollowLine{Node: ns.IP, Component: ns.Component, Instance: name,
		File: red.Redact(clipBytes(l.Stream, followFileMax)), Time: l.Time.UTC(), Line: red.Redact(clipBytes(l.Line, followLineMax))}
	if y := line.Time.Year(); line.Time.IsZero() || y < 1 || y > 9999 {
		// JSON cannot hold it.
		line.Time = time.Now().UTC()
	}
	select {
	case f.ch <- line:
	default:
		f.cutOnce.Do(func() { close(f.cut) })
	}
}

// clipBytes cuts s to at most n bytes.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// watch follows the stored config until ctx ends: the config as the
// watch found it, then each new one, changes the nodes followed and the
// secrets redacted.
func (f *follower) watch(ctx context.Context, wt jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-wt.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if cfg, err := bus.DecodeConfig(e.Value()); err == nil {
				_ = f.update(cfg)
			}
		}
	}
}

// relay writes the lines as they come, with a comment every 15 s to keep
// the connection, until the client leaves or falls behind.
func (f *follower) relay(ctx context.Context, w http.ResponseWriter, flusher http.Flusher) {
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.cut:
			b, _ := json.Marshal(contract.ErrorBody{Error: fmt.Sprintf(
				"the client fell %d lines behind; the stream ends: follow again", followBuffer)})
			writeEvent(w, "cut", b)
			flusher.Flush()
			return
		case <-keepalive.C:
			_, _ = fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
		case l := <-f.ch:
			writeLine(w, l)
			// Write what is waiting before the flush: one flush a burst.
			for n := len(f.ch); n > 0; n-- {
				writeLine(w, <-f.ch)
			}
			flusher.Flush()
		}
	}
}

// writeLine writes one "line" event; a line JSON cannot hold is left out.
func writeLine(w http.ResponseWriter, l contract.FollowLine) {
	if b, err := json.Marshal(l); err == nil {
		writeEvent(w, "line", b)
	}
}
