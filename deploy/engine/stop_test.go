package engine

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/subject"
)

// The whole engine stops within its bound with a deploy in flight, and
// none of its goroutines is left:
//   - all in one process, the deploy checking a node whose SSH never
//     answers (a frozen node: TCP accepted, no banner), which would go on
//     for every try of its handshake: the planner's Stop answers it 503;
//   - an API-only process of a split engine whose deploy waits on a planner
//     of another process that does not answer: the request ends with the
//     servers' base context, not at the HTTP shutdown's deadline.
func TestServeStopsMidDeploy(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup readies what the engine's deploy will wait on, says how
		// to serve the engine and when the wait has begun.
		setup    func(t *testing.T) (Options, <-chan struct{})
		wantCode int
	}{
		{"a frozen node", frozenNode, http.StatusServiceUnavailable},
		{"a planner of another process", silentPlanner, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, waiting := tc.setup(t)
			base := engineGoroutines()
			addr, stop := engineStop(t, o)
			if o.NATSURL == "" {
				cfg := `{"components":{"nats":["127.0.0.1"]},"properties":{"domain":"stop.local","home":"127.0.0.2","root":"x"}}`
				if code, body, _ := do(t, "POST", "http://"+addr+"/deployment-engine/config?check=0", cfg, true); code != 201 {
					t.Fatalf("POST config: %d %s", code, body)
				}
			}
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			// What the node saw before the deploy was sent is not the
			// deploy's wait: the engine stops only once the request is
			// written and its wait has begun.
			for len(waiting) > 0 {
				<-waiting
			}
			answered, wrote := make(chan answer, 1), make(chan struct{})
			go func() { answered <- post(client, "http://"+addr+"/deployment-engine/deploy", wrote) }()
			for _, c := range []<-chan struct{}{wrote, waiting} {
				select {
				case <-c:
				case <-time.After(30 * time.Second):
					t.Fatal("the deploy was never sent, or never began to wait")
				}
			}

			began := time.Now()
			stop()
			took := time.Since(began)
			t.Logf("Serve returned %s after its ctx ended", took.Round(time.Millisecond))
			if took > 10*time.Second {
				t.Errorf("Serve took %s to stop with a deploy in flight, want ≤ 10 s", took)
			}
			select {
			case a := <-answered:
				t.Logf("the deploy in flight was answered %d %q %v", a.code, a.body, a.err)
				if tc.wantCode != 0 && (a.code != tc.wantCode || !strings.Contains(a.body, "stopping")) {
					t.Errorf("the deploy in flight was answered %d %q %v, want %d stopping", a.code, a.body, a.err, tc.wantCode)
				}
			case <-time.After(5 * time.Second):
				t.Error("the deploy's requester got no answer after the engine stopped")
			}
			client.CloseIdleConnections()
			deadline := time.Now().Add(5 * time.Second)
			for left := engineGoroutines(); len(left) > len(base); left = engineGoroutines() {
				if time.Now().After(deadline) {
					t.Fatalf("%d of the engine's goroutines after Serve returned, %d before it started:\n%s", len(left), len(base), strings.Join(left, "\n\n"))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// frozenNode is a node that takes SSH connections and never answers on
// them, for a whole engine in one process.
func frozenNode(t *testing.T) (Options, <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{}, 64) // a signal for each connection taken
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return Options{NoAgents: true, SSHPort: port}, waiting
}

// silentPlanner is a NATS server where another process takes the
// planner's deploys and never answers them, for an API-only engine.
func silentPlanner(t *testing.T) (Options, <-chan struct{}) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	waiting := make(chan struct{}, 1)
	if _, err := nc.Subscribe(subject.DeployStart(), func(*nats.Msg) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return Options{NATSURL: ns.ClientURL(), Only: []string{"api"}}, waiting
}

type answer struct {
	code int
	body string
	err  error
}

// post sends a deploy; wrote closes once the request is written.
func post(client *http.Client, url string, wrote chan struct{}) answer {
	var once sync.Once
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(wrote) }) }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, body: string(b)}
}

// engineGoroutines are the stacks of the goroutines that run the engine's
// code or the NATS client's (its connections), but the tests' own. The
// NATS server's are not counted: one of its own waits out a 30 s timer
// after it shut down (a stream source's setup).
func engineGoroutines() []string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "engine.TestServeStopsMidDeploy") || strings.Contains(g, "engine.frozenNode") ||
			strings.Contains(g, "nats-io/nats-server") {
			continue
		}
		if strings.Contains(g, "deployment-engine/engine/") || strings.Contains(g, "nats-io/nats.go") {
			out = append(out, g)
		}
	}
	return out
}
