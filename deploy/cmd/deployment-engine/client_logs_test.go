package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/deploy/engine"
	"github.com/deployment-engine/engine/deploy/engine/enginetest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// lockedBuffer is a command's output that the test reads while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// engineOnBus runs the real engine on a NATS server of the test's own, so
// that the test can publish what a node's agent would.
func engineOnBus(t *testing.T) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	addr, stop := enginetest.Start(t, testToken, engine.Options{NATSURL: ns.ClientURL()})
	t.Cleanup(stop)
	t.Setenv("DE_SERVER", "http://"+addr)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// logs --follow prints the lines of web's agents as they come, the
// config's secret redacted and a terminal escape shown escaped, first the
// tail the log store kept; --json prints each line's object; a component
// the config lacks is exit 1 naming the field.
func TestCLILogsFollow(t *testing.T) {
	nc := engineOnBus(t)
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false"); r.code != exitOK {
		t.Fatalf("config set: %+v", r)
	}
	agent := func(line string) {
		t.Helper()
		b, _ := json.Marshal(contract.LogLine{V: contract.Version, Node: "127.0.0.2", Component: "web", Stream: "/var/log/web.log",
			Seq: 1, Time: time.Now().UTC(), Line: line})
		if err := nc.Publish(subject.NodeLog("127.0.0.2", "web"), b); err != nil {
			t.Fatal(err)
		}
	}
	// A line the log store keeps before anyone follows: the tail.
	agent("stored root=s3cret-root-pw")
	waitFor(t, func() bool {
		r := cli(t, "logs", "web_0.log")
		return r.code == exitOK && strings.Contains(r.stdout, "stored root=<redacted>")
	})

	follow := func(args ...string) (*lockedBuffer, func() (int, string)) {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errb lockedBuffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, append([]string{"logs", "--follow"}, args...), &out, &errb) }()
		t.Cleanup(cancel)
		return &out, func() (int, string) { cancel(); return <-done, errb.String() }
	}

	out, stop := follow("web", "--tail", "5")
	waitFor(t, func() bool { return strings.Contains(out.String(), "127.0.0.2 web stored root=<redacted>\n") })
	waitFor(t, func() bool {
		agent("live \x1b[2J root=s3cret-root-pw")
		return strings.Contains(out.String(), "127.0.0.2 web live \\x1b[2J root=<redacted>\n")
	})
	if code, stderr := stop(); code != exitOK || strings.Contains(out.String(), "s3cret") {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, stderr, out.String())
	}

	out, stop = follow("web", "127.0.0.2", "--json")
	waitFor(t, func() bool {
		agent("as json")
		for _, l := range strings.Split(out.String(), "\n") {
			var fl contract.FollowLine
			if json.Unmarshal([]byte(l), &fl) == nil && fl.Line == "as json" && fl.Node == "127.0.0.2" && fl.Instance == "web_0.log" {
				return true
			}
		}
		return false
	})
	if code, stderr := stop(); code != exitOK {
		t.Fatalf("--json: exit %d, stderr %q", code, stderr)
	}

	if r := cli(t, "logs", "--follow", "db"); r.code != exitFailed || !strings.Contains(r.stderr, "component: ") || !strings.Contains(r.stderr, "HTTP 400") {
		t.Fatalf("an unknown component: %+v", r)
	}
	if r := cli(t, "logs", "--follow", "web", "127.0.0.3"); r.code != exitFailed || !strings.Contains(r.stderr, "ip: ") {
		t.Fatalf("a node web does not run on: %+v", r)
	}
	if r := cli(t, "logs", "--follow"); r.code != exitUsage {
		t.Fatalf("no component: %+v", r)
	}
}

// waitFor polls ok every 100 ms for up to 10 s.
func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not within 10 s")
		}
	}
}

func TestEscapeLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain\ttab":           "plain\ttab",
		"\x1b[31mred\r":        `\x1b[31mred\r`,
		"a\u202eb":             `a\u202eb`,
		"ok ünïcode":           "ok ünïcode",
		"bad \xff byte":        `bad \ufffd byte`,
		"bell\a and nul\x00 z": `bell\a and nul\x00 z`,
	} {
		if got := escapeLine(in); got != want {
			t.Errorf("escapeLine(%q) = %q, want %q", in, got, want)
		}
	}
}
