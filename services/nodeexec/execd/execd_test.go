package execd

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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

const (
	nodeA = "10.0.0.5"
	nodeB = "10.0.0.6"
)

// execBed is the engine's bus with node A's agent executor on a real agent
// connection, with the permissions the engine gives it.
type execBed struct {
	url    string
	secret []byte
	engine *nats.Conn
	e      *Executor
	dir    string // where the tests' commands leave their marks
}

func newExecBed(t *testing.T, o Options) *execBed {
	t.Helper()
	port := bustest.FreePort(t)
	srv, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: t.TempDir(), Host: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	b := &execBed{url: fmt.Sprintf("nats://127.0.0.1:%d", port), secret: []byte("the engine's agent secret"), dir: t.TempDir()}
	srv.SetAgentSecret(b.secret)
	if b.engine, err = srv.Connect("engine"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.engine.Close)
	anc := b.agentConn(t, nodeA)
	if o.Version == "" {
		o.Version = "v-test"
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b.e = newExecutor(anc, nodeA, b.key(nodeA), o)
	b.e.beat = 100 * time.Millisecond
	if err := b.e.subscribe(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.e.Stop)
	if err := anc.Flush(); err != nil {
		t.Fatal(err)
	}
	return b
}

// agentConn connects as the agent of node ip.
func (b *execBed) agentConn(t *testing.T, ip string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(b.url, nats.UserInfo(bus.AgentUser(ip), bus.AgentPassword(b.secret, ip)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// key is node ip's sealing key, as the engine derives it.
func (b *execBed) key(ip string) []byte { return nodeexec.Key(bus.AgentPassword(b.secret, ip), ip) }

func newRequest(cmd string, stdin []byte) nodeexec.Request {
	n := make([]byte, 12)
	_, _ = rand.Read(n)
	return nodeexec.Request{V: contract.Version, Node: nodeA, Run: "r" + hex.EncodeToString(n[:6]), Cmd: cmd, Stdin: stdin,
		TimeoutMS: 10_000, Time: time.Now().UnixMilli(), Nonce: hex.EncodeToString(n)}
}

func seal(key []byte, req nodeexec.Request) []byte {
	body, _ := json.Marshal(req)
	return nodeexec.Seal(key, body)
}

// ask publishes a sealed request with nc and returns the agent's answer.
func ask(nc *nats.Conn, msg []byte) (nodeexec.Reply, error) {
	var rep nodeexec.Reply
	m, err := nc.Request(subject.Node(nodeA, subject.VerbExec), msg, 2*time.Second)
	if err != nil {
		return rep, err
	}
	return rep, json.Unmarshal(m.Data, &rep)
}

// result is what came back of a command.
type result struct {
	stdout, stderr bytes.Buffer
	order          []string // the streams' chunks, in arrival order
	code           *int
	err            string
	beats          int
}

// run runs req on node A and reads its output stream to its end.
func (b *execBed) run(t *testing.T, req nodeexec.Request) *result {
	t.Helper()
	sub, err := b.engine.SubscribeSync(subject.ExecOutput(nodeA, req.Run))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	rep, err := ask(b.engine, seal(b.key(nodeA), req))
	if err != nil || rep.Error != "" {
		t.Fatalf("request refused: %v %q", err, rep.Error)
	}
	res := &result{}
	for seq := uint64(1); ; seq++ {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("output stream: %v (after %d messages)", err, seq-1)
		}
		var o nodeexec.Out
		if err := json.Unmarshal(m.Data, &o); err != nil {
			t.Fatal(err)
		}
		if o.Seq != seq {
			t.Fatalf("message %d numbered %d", seq, o.Seq)
		}
		switch {
		case o.Stream == "stdout":
			res.stdout.Write(o.Data)
			res.order = append(res.order, "o:"+string(o.Data))
		case o.Stream == "stderr":
			res.stderr.Write(o.Data)
			res.order = append(res.order, "e:"+string(o.Data))
		case o.Beat:
			res.beats++
		case o.Exit != nil || o.Error != "":
			res.code, res.err = o.Exit, o.Error
			return res
		}
	}
}

func TestExecRuns(t *testing.T) {
	b := newExecBed(t, Options{})
	big := strings.Repeat("0123456789\n", 30_000)[:300_000]
	tests := []struct {
		name, cmd      string
		stdin          string
		stdout, stderr string
		code           int
	}{
		{"status and both streams", "echo out; echo err >&2; exit 3", "", "out\n", "err\n", 3},
		{"stdin", "cat; echo .", "hello\nworld", "hello\nworld.\n", "", 0},
		{"stdin read whole by a wrapper", `script=$(cat); exec </dev/null; eval "$script"`, "echo from-stdin; false", "from-stdin\n", "", 1},
		{"killed by a signal", "kill -9 $$", "", "", "", 137},
		{"large output in order", "yes 0123456789 | head -c 300000", "", big, "", 0},
		{"login shell", `echo "$0 $HOME"`, "", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := b.run(t, newRequest(tt.cmd, []byte(tt.stdin)))
			if res.code == nil || *res.code != tt.code {
				t.Fatalf("exit %v (error %q), want %d; stderr %q", res.code, res.err, tt.code, res.stderr.String())
			}
			if tt.name == "login shell" {
				sh, home, _ := loginShell(os.Getuid())
				if want := sh + " " + home + "\n"; res.stdout.String() != want {
					t.Errorf("stdout %q, want %q", res.stdout.String(), want)
				}
				return
			}
			if res.stdout.String() != tt.stdout || res.stderr.String() != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q %q", clip(res.stdout.String()), res.stderr.String(), clip(tt.stdout), tt.stderr)
			}
		})
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func TestExecStreamsKeepOrder(t *testing.T) {
	b := newExecBed(t, Options{})
	res := b.run(t, newRequest(`for i in 1 2 3 4 5; do echo o$i; sleep 0.02; echo e$i >&2; sleep 0.02; done; sleep 0.3`, nil))
	if res.stdout.String() != "o1\no2\no3\no4\no5\n" || res.stderr.String() != "e1\ne2\ne3\ne4\ne5\n" {
		t.Fatalf("stdout %q stderr %q", res.stdout.String(), res.stderr.String())
	}
	// Written apart in time, the two streams arrive interleaved as written.
	want := []string{"o:o1\n", "e:e1\n", "o:o2\n", "e:e2\n", "o:o3\n", "e:e3\n", "o:o4\n", "e:e4\n", "o:o5\n", "e:e5\n"}
	if strings.Join(res.order, "") != strings.Join(want, "") {
		t.Errorf("arrival order %q, want %q", res.order, want)
	}
	if res.beats == 0 {
		t.Error("no beat while the command ran")
	}
}

// waitIdle waits until the executor runs nothing.
func waitIdle(t *testing.T, e *Executor) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.InFlight() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d commands still run", e.InFlight())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExecCloseActsAsADroppedSession(t *testing.T) {
	b := newExecBed(t, Options{})
	mark := filepath.Join(b.dir, "after")
	req := newRequest(`echo started; sleep 0.5; echo next; touch `+mark, nil)
	sub, _ := b.engine.SubscribeSync(subject.ExecOutput(nodeA, req.Run))
	if rep, err := ask(b.engine, seal(b.key(nodeA), req)); err != nil || rep.Error != "" {
		t.Fatalf("refused: %v %q", err, rep.Error)
	}
	if _, err := sub.NextMsg(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(nodeexec.Close{Run: req.Run})
	if err := b.engine.Publish(subject.Node(nodeA, subject.VerbExecClose), c); err != nil {
		t.Fatal(err)
	}
	// The shell dies of SIGPIPE at its next write, as it would when its
	// SSH session closed: it never reaches the touch.
	waitIdle(t, b.e)
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(mark); err == nil {
		t.Error("the command went on writing after its session closed")
	}
	for {
		m, err := sub.NextMsg(300 * time.Millisecond)
		if err != nil {
			break
		}
		var o nodeexec.Out
		_ = json.Unmarshal(m.Data, &o)
		if o.Exit != nil || string(o.Data) == "next\n" {
			t.Errorf("output after close: %+v", o)
		}
	}
}

func TestExecDeadlineKills(t *testing.T) {
	b := newExecBed(t, Options{})
	req := newRequest("sleep 30", nil)
	req.TimeoutMS = 300
	start := time.Now()
	res := b.run(t, req)
	if res.code != nil || !strings.Contains(res.err, "deadline") {
		t.Fatalf("exit %v error %q, want the deadline's error", res.code, res.err)
	}
	waitIdle(t, b.e)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the deadline took %s", d)
	}
}

func TestExecBounds(t *testing.T) {
	b := newExecBed(t, Options{MaxExecs: 1})
	mark := filepath.Join(b.dir, "ran")
	rep, err := ask(b.engine, seal(b.key(nodeA), newRequest("touch "+mark, make([]byte, nodeexec.MaxStdin+1))))
	if err != nil || !strings.Contains(rep.Error, "over the agent's bound") {
		t.Errorf("stdin over the bound: %v %q", err, rep.Error)
	}
	long := newRequest("sleep 2", nil)
	if rep, err := ask(b.engine, seal(b.key(nodeA), long)); err != nil || rep.Error != "" {
		t.Fatalf("refused: %v %q", err, rep.Error)
	}
	rep, err = ask(b.engine, seal(b.key(nodeA), newRequest("touch "+mark, nil)))
	if err != nil || !strings.Contains(rep.Error, "its bound") {
		t.Errorf("a command over the bound of commands: %v %q", err, rep.Error)
	}
	noDeadline := newRequest("touch "+mark, nil)
	noDeadline.TimeoutMS = 0
	if rep, _ := ask(b.engine, seal(b.key(nodeA), noDeadline)); !strings.Contains(rep.Error, "deadline") {
		t.Errorf("a request without a deadline: %q", rep.Error)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Error("a refused command ran")
	}
}

func TestExecHello(t *testing.T) {
	b := newExecBed(t, Options{Version: "v9 abc"})
	m, err := b.engine.Request(subject.Node(nodeA, subject.VerbHello), nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var h nodeexec.Hello
	if err := json.Unmarshal(m.Data, &h); err != nil || h.Version != "v9 abc" || h.MaxStdin != nodeexec.MaxStdin {
		t.Errorf("hello %+v, %v", h, err)
	}
}

// TestExecRefusesWhatTheEngineDidNotSend: each request below runs nothing
// (its command would append a line to a mark file).
func TestExecRefusesWhatTheEngineDidNotSend(t *testing.T) {
	b := newExecBed(t, Options{})
	mark := filepath.Join(b.dir, "ran")
	cmd := "echo x >> " + mark
	fresh := func() nodeexec.Request { return newRequest(cmd, nil) }
	body, _ := json.Marshal(fresh())
	stale := fresh()
	stale.Time = time.Now().Add(-2 * time.Minute).UnixMilli()
	forB := fresh()
	forB.Node = nodeB
	replayed := seal(b.key(nodeA), fresh())
	if rep, err := ask(b.engine, replayed); err != nil || rep.Error != "" {
		t.Fatalf("the first of a replayed pair was refused: %v %q", err, rep.Error)
	}
	waitIdle(t, b.e)
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"unsigned", body, "not signed"},
		{"signed with node B's key", seal(b.key(nodeB), fresh()), "not signed"},
		{"signed with the wrong secret", seal(nodeexec.Key(bus.AgentPassword([]byte("another engine"), nodeA), nodeA), fresh()), "not signed"},
		{"replayed", replayed, "replay"},
		{"stale", seal(b.key(nodeA), stale), "stale"},
		{"for another node", seal(b.key(nodeA), forB), "not " + nodeA},
		{"garbage", []byte("\x00\xff"), "not signed"},
	}
	for _, tt := range tests {
		rep, err := ask(b.engine, tt.msg)
		if err != nil || !strings.Contains(rep.Error, tt.want) {
			t.Errorf("%s: answer %q, %v; want an error with %q", tt.name, rep.Error, err, tt.want)
		}
	}
	// Node B's agent may not even publish on node A's subjects: NATS
	// refuses it, whatever it signs.
	other := b.agentConn(t, nodeB)
	for _, key := range [][]byte{b.key(nodeB), b.key(nodeA)} {
		_, err := ask(other, seal(key, fresh()))
		if err == nil {
			t.Error("node B's agent got an answer from node A's agent")
		}
	}
	waitIdle(t, b.e)
	got, _ := os.ReadFile(mark)
	if n := strings.Count(string(got), "x"); n != 1 {
		t.Errorf("the command ran %d times, want once (the first of the replayed pair only)", n)
	}
	if err := other.LastError(); err == nil || !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permission") {
		t.Errorf("node B's publish to node A was not refused by NATS: %v", err)
	}
}
