package engine

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/api/asyncapitest"
	"github.com/deployment-engine/engine/services/subject"
)

// The events the whole engine publishes, as a tool that follows them sees
// them (the observer user over TLS, subscribed to de.evt.>), each follow
// the engine's AsyncAPI document: a deploy that fails on a node whose SSH
// refuses, a stop of an instance there, auto-heal switched off and on,
// each with its audit entry. The same events fail the check once the
// document renames a field of theirs.
func TestEventsFollowTheAsyncAPIDocument(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	addr, stop := engineStop(t, Options{DataDir: dir, NoAgents: true, SSHPort: answeringNode(t), NATSListen: "127.0.0.1:" + port})
	defer stop()

	pw, err := os.ReadFile(filepath.Join(dir, "nats-observer"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("tls://127.0.0.1:"+port, nats.UserInfo("observer", strings.TrimSpace(string(pw))),
		nats.RootCAs(filepath.Join(dir, AutoCertFile)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 4096)
	if _, err := nc.ChanSubscribe(subject.AllEvents, msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	base := "http://" + addr + "/deployment-engine"
	cfg := `{"components":{"nats":["127.0.0.1"]},"properties":{"domain":"events.local","home":"127.0.0.2","root":"x"}}`
	if code, body, _ := do(t, "POST", base+"/config?check=0", cfg, true); code != 201 {
		t.Fatalf("POST config: %d %s", code, body)
	}
	code, body, _ := do(t, "POST", base+"/deploy", "", true)
	if code != 202 {
		t.Fatalf("POST deploy: %d %s", code, body)
	}
	var started struct{ ID string }
	_ = json.Unmarshal(body, &started)
	var events []*nats.Msg
	finished := subject.DeployEvent(started.ID, subject.DeployFinished)
	events = collect(t, msgs, events, func(m *nats.Msg) bool { return m.Subject == finished }, 2*time.Minute)
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/stop", `{"name":"nats","ip":"127.0.0.1"}`},
		{"PUT", "/heal", `{"enabled":false}`},
		{"PUT", "/heal", `{"enabled":true}`},
	} {
		code, body, _ := do(t, c.method, base+c.path, c.body, true)
		t.Logf("%s %s: %d %s", c.method, c.path, code, strings.TrimSpace(string(body)))
	}
	enabled := subject.HealEvent("enabled")
	events = collect(t, msgs, events, func(m *nats.Msg) bool { return m.Subject == enabled }, 30*time.Second)
	// What else is on its way (the last audit entry).
	events = collect(t, msgs, events, func(*nats.Msg) bool { return false }, time.Second)

	doc, err := api.AsyncAPI(api.BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := asyncapitest.Load(doc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range events {
		ch, err := ck.Check(m.Subject, m.Data)
		if err != nil {
			t.Errorf("AsyncAPI drift: %v", err)
		}
		seen[ch]++
	}
	t.Logf("%d events, by channel: %v", len(events), seen)
	for _, ch := range []string{"deploymentStarted", "deploymentStep", "deploymentFinished", "audit", "heal", "engine"} {
		if seen[ch] == 0 {
			t.Errorf("no event on channel %s; the test drives one", ch)
		}
	}

	// The same events against a document whose deployment events call
	// their state "status": each of them fails.
	var m map[string]any
	_ = json.Unmarshal(doc, &m)
	props := m["components"].(map[string]any)["schemas"].(map[string]any)["DeploymentEvent"].(map[string]any)["properties"].(map[string]any)
	props["status"] = props["state"]
	delete(props, "state")
	broken, _ := json.Marshal(m)
	if ck, err = asyncapitest.Load(broken); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, m := range events {
		if ch, err := ck.Check(m.Subject, m.Data); err != nil {
			failed++
			if !strings.HasPrefix(ch, "deployment") || !strings.Contains(err.Error(), "state") {
				t.Errorf("with the state renamed, %s failed: %v", m.Subject, err)
			}
		}
	}
	if want := seen["deploymentStarted"] + seen["deploymentFinished"]; failed != want {
		t.Errorf("with the state renamed, %d events failed, want the %d deployment events", failed, want)
	}
}

// collect adds the events on msgs to events until one satisfies last, or
// for within.
func collect(t *testing.T, msgs <-chan *nats.Msg, events []*nats.Msg, last func(*nats.Msg) bool, within time.Duration) []*nats.Msg {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case m := <-msgs:
			events = append(events, m)
			if last(m) {
				return events
			}
		case <-timeout:
			return events
		}
	}
}

// freePort is a TCP port of loopback no one listened on a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
