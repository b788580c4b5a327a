package installer

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

// An agent command's output stream ends at its status, and otherwise as
// the installer must see it: at a gap ("lost"), after a silence past the
// liveness window ("silent"), or when the session is closed — each with
// the output that came before it, and a gap or a silence takes the agent
// out of use. The agent here answers at the bus (the real one's tests are
// forTransports'); it sends outs, numbered as given, then nothing.
func TestAgentStreamEnds(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	const ip, pw = "10.9.9.8", "pw"
	key := nodeexec.Key(pw, ip)
	one := 1
	for _, tc := range []struct {
		name  string
		outs  []nodeexec.Out
		close bool   // the test closes the session after the output
		want  string // in the error; "" for none
		bad   string // the agent's reason to be out of use; "" when still used
	}{
		{"status", []nodeexec.Out{{Seq: 1, Stream: "stdout", Data: []byte("out\n")}, {Seq: 2, Exit: &one}}, false, "exit status 1", ""},
		{"gap", []nodeexec.Out{{Seq: 1, Stream: "stdout", Data: []byte("out\n")}, {Seq: 3, Stream: "stdout", Data: []byte("later\n")}}, false, "message 2 of the stream came as 3", "lost"},
		{"silence", []nodeexec.Out{{Seq: 1, Stream: "stdout", Data: []byte("out\n")}, {Seq: 2, Beat: true}}, false, "went silent", "silent"},
		{"closed", []nodeexec.Out{{Seq: 1, Stream: "stdout", Data: []byte("out\n")}}, true, "the session was closed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := b.NC.Subscribe(subject.Node(ip, subject.VerbExec), func(m *nats.Msg) {
				body, err := nodeexec.Open(key, m.Data)
				var req nodeexec.Request
				if err != nil || json.Unmarshal(body, &req) != nil {
					t.Errorf("the request does not open: %v", err)
					return
				}
				r, _ := json.Marshal(nodeexec.Reply{V: 1})
				_ = m.Respond(r)
				for _, o := range tc.outs {
					out, _ := json.Marshal(o)
					_ = b.NC.Publish(subject.ExecOutput(ip, req.Run), out)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sub.Unsubscribe() }()
			fallbacks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"reason"})
			a := &agents{nc: b.NC, version: "v1", password: func(string) string { return pw }, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				hello: time.Second, live: 300 * time.Millisecond, sessions: prometheus.NewCounter(prometheus.CounterOpts{Name: "y"}),
				fallbacks: fallbacks, known: map[string]agentState{ip: {ok: true, maxStdin: 1024, until: time.Now().Add(time.Minute)}}}
			c := &agentConn{a: a, ip: ip, key: key, maxStdin: 1024, timeout: time.Minute,
				dial: func() (nodeConn, error) { return nil, errors.New("no SSH here") }}
			s, _ := c.NewSession()
			stdout, _ := s.StdoutPipe()
			if err := s.Start("true", nil); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() { b, _ := io.ReadAll(stdout); got <- string(b) }()
			if tc.close {
				// The output came before the session is closed.
				time.Sleep(100 * time.Millisecond)
				s.Close()
			}
			start := time.Now()
			ended := make(chan error, 1)
			go func() { ended <- s.Wait() }()
			select {
			case err = <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("the stream did not end within 5s")
			}
			switch {
			case tc.want == "" && err != nil, tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("the stream ended with %v, want %q", err, tc.want)
			case tc.bad == "silent" && time.Since(start) < 250*time.Millisecond:
				t.Errorf("a silence ended the stream after %s, before the liveness window (300ms)", time.Since(start))
			}
			select {
			case out := <-got:
				if !tc.close && out != "out\n" {
					t.Errorf("the output before the end was %q, want %q", out, "out\n")
				}
			case <-time.After(5 * time.Second):
				t.Error("the output pipe did not end with the stream")
			}
			s.Close()
			_, used := a.state(t.Context(), ip)
			if used != (tc.bad == "") {
				t.Errorf("after the stream ended, the agent is used: %v, want %v", used, tc.bad == "")
			}
			if tc.bad != "" {
				if n := testutil.ToFloat64(fallbacks.WithLabelValues(tc.bad)); n != 1 {
					t.Errorf("fallbacks{reason=%q} = %v, want 1", tc.bad, n)
				}
			}
		})
	}
}
