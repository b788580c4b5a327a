package engine

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The whole engine stops within its bound with a deploy in flight: the
// deploy's check of a node whose SSH never answers (a frozen node: TCP
// accepted, no banner) would go on for every try of its handshake. Serve
// returns within 10 s of its ctx ending, every service's Stop included,
// the deploy's requester gets its answer, and none of the engine's
// goroutines (nor the embedded NATS server's) is left.
func TestServeStopsMidDeploy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		for len(accepted) > 0 {
			_ = (<-accepted).Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	base := engineGoroutines()
	addr, stop := engineStop(t, Options{NoAgents: true, SSHPort: port})
	E := "http://" + addr + "/deployment-engine"
	cfg := `{"components":{"nats":["127.0.0.1"]},"properties":{"domain":"stop.local","home":"127.0.0.2","root":"x"}}`
	if code, body, _ := do(t, "POST", E+"/config?check=0", cfg, true); code != 201 {
		t.Fatalf("POST config: %d %s", code, body)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", E+"/deploy", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- answer{code: resp.StatusCode, body: string(b)}
	}()
	select {
	case c := <-accepted:
		accepted <- c // closed at the end, as the others
	case <-time.After(30 * time.Second):
		t.Fatal("the deploy never reached the frozen node")
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
		// The planner's Stop answered the deploy it was checking.
		if a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, "stopping") {
			t.Errorf("the deploy in flight was answered %d %q %v, want 503 stopping", a.code, a.body, a.err)
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
}

// engineGoroutines are the stacks of the goroutines that run the engine's
// code or the NATS server's and client's, but the tests' own.
func engineGoroutines() []string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "engine.TestServeStopsMidDeploy") {
			continue
		}
		if strings.Contains(g, "deployment-engine/engine/") || strings.Contains(g, "nats-io/") {
			out = append(out, g)
		}
	}
	return out
}
