package main

import (
	"strings"
	"testing"
	"time"
)

// node maintenance against the real engine: a node of the config in and
// out, one that is not refused, the list, and the usage.
func TestCLINodeMaintenance(t *testing.T) {
	startEngine(t)
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false"); r.code != exitOK {
		t.Fatalf("config set: %+v", r)
	}
	if r := cli(t, "node", "maintenance"); r.code != exitOK || !strings.Contains(r.stdout, "no node is in maintenance") {
		t.Fatalf("empty list: %+v", r)
	}
	r := cli(t, "node", "maintenance", "127.0.0.2", "on", "--reason", "disk swap")
	if r.code != exitOK || !strings.Contains(r.stdout, "127.0.0.2: maintenance: disk swap (by admin, since ") {
		t.Fatalf("on: %+v", r)
	}
	if r := cli(t, "node", "maintenance"); r.code != exitOK || !strings.Contains(r.stdout, "127.0.0.2") || !strings.Contains(r.stdout, "disk swap") {
		t.Fatalf("list: %+v", r)
	}
	if r := cli(t, "node", "maintenance", "127.0.0.3"); r.code != exitOK || !strings.Contains(r.stdout, "127.0.0.3: in service") {
		t.Fatalf("a node in service: %+v", r)
	}
	if r := cli(t, "node", "maintenance", "127.0.0.9", "on"); r.code != exitFailed || !strings.Contains(r.stderr, "no node 127.0.0.9 in the config (HTTP 404)") {
		t.Fatalf("a node not in the config: %+v", r)
	}
	if r := cli(t, "node", "maintenance", "127.0.0.2", "on", "--reason", "a\x1bb"); r.code != exitFailed || !strings.Contains(r.stderr, "control character") {
		t.Fatalf("a reason with a control character: %+v", r)
	}
	for _, args := range [][]string{{"node"}, {"node", "drain"}, {"node", "maintenance", "127.0.0.2", "maybe"}, {"node", "maintenance", "127.0.0.2", "off", "--reason", "x"}} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if r := cli(t, "node", "maintenance", "127.0.0.2", "off"); r.code != exitOK || !strings.Contains(r.stdout, "127.0.0.2: in service") {
		t.Fatalf("off: %+v", r)
	}
	// The audit entries are written once each request is answered.
	var r2 result
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r2 = cli(t, "audit", "action=maintenance"); strings.Count(r2.stdout, "node 127.0.0.2") == 3 {
			return
		}
	}
	t.Fatalf("audit: %+v", r2)
}
