package logsvc

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// An agent publishes only on its own node's subjects (de.node.<ip>.>), and
// what it sends is the node's to choose. Whatever its body claims, its lines
// land in its own node's instance files, escaped, and never in local.log or
// another node's file.
func TestAgentLinesStayOnTheirNode(t *testing.T) {
	e := newEnv(t, map[string][]string{"web": {"10.0.0.2"}, "nats": {"10.0.0.3"}})
	e.start()
	const agent = "10.0.0.2"
	send := func(comp string, l contract.LogLine) {
		t.Helper()
		b, _ := json.Marshal(l)
		if err := e.nc.Publish(subject.NodeLog(agent, comp), b); err != nil {
			t.Fatal(err)
		}
	}
	forged := contract.LogLine{V: contract.Version, Node: "10.0.0.3", Component: "nats", Deployment: "d-1", Step: "10.0.0.3/nats/install",
		Stream: "x] [d-1 s stdout", Time: t0, Line: "ok\x1b[2J\rengine restart: done\n" + t0.Format("2006-01-02T15:04:05Z") + " forged"}
	// Another node's instance, the node steps' pseudo-component and a
	// component the config does not have: none is this node's instance.
	send("nats", forged)
	send("_node", forged)
	send("local", forged)
	send("web", forged)
	last := forged
	last.Stream, last.Line = "/var/log/web.log", "last\u202eevil\u009b31m\ttab"
	send("web", last)
	e.waitLines(2) // the lines before them were handled first

	want := "2026-11-25T12:00:00Z [runtime \"x] [d-1 s stdout\"] ok\\x1b[2J\\rengine restart: done\\n2026-11-25T12:00:00Z forged\n" +
		"2026-11-25T12:00:00Z [runtime /var/log/web.log] last\\u202eevil\\u009b31m\ttab\n"
	if got := e.file("web_0.log"); got != want {
		t.Errorf("web_0.log:\n got %q\nwant %q", got, want)
	}
	if got := e.file(LocalLog); got != "" {
		t.Errorf("local.log holds an agent's lines: %q", got)
	}
	for _, name := range []string{"nats_0.log", "_node_0.log", "local_0.log"} {
		if _, err := os.Stat(filepath.Join(e.dir, name)); err == nil {
			t.Errorf("%s exists: %q", name, e.file(name))
		}
	}
	if n := testutil.ToFloat64(e.svc.metrics.skipped); n != 3 {
		t.Errorf("skipped %v lines, want 3", n)
	}
	if strings.Contains(e.file("web_0.log"), "\x1b") {
		t.Error("an escape character reached the store")
	}
}

// A config whose secrets change while its instances do not is read again
// (its watcher marks the cache stale): a runtime line holding the new
// password is redacted, and so is one still holding the old.
func TestRuntimeLinesFollowTheConfigsSecrets(t *testing.T) {
	e := newEnv(t, nil)
	put := func(pw string) {
		t.Helper()
		b, _ := json.Marshal(contract.Config{Components: map[string][]string{"web": {"10.0.0.2"}}, Properties: contract.Properties{Password: pw}})
		if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
			t.Fatal(err)
		}
	}
	send := func(line string) {
		t.Helper()
		b, _ := json.Marshal(contract.LogLine{V: contract.Version, Node: "10.0.0.2", Component: "web", Stream: "/var/log/web.log", Time: t0, Line: line})
		if err := e.nc.Publish(subject.NodeLog("10.0.0.2", "web"), b); err != nil {
			t.Fatal(err)
		}
	}
	put("first-secret-1")
	e.start()
	send("pw first-secret-1")
	e.waitLines(1)
	put("second-secret-2")
	for deadline := time.Now().Add(5 * time.Second); !e.svc.cache.stale.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the config's change did not reach the log service")
		}
	}
	send("pw second-secret-2, before first-secret-1")
	e.waitLines(2)
	got := e.file("web_0.log")
	if strings.Contains(got, "secret-") || strings.Count(got, contract.Redacted) != 3 {
		t.Errorf("web_0.log shows a password:\n%s", got)
	}
}
