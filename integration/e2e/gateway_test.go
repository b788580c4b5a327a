package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
)

// The starter stack deploys onto nodes this machine cannot reach, through
// a jump host (properties.gateway): the config's pre-checks, the deploy,
// status, a restart and a second deploy that changes nothing all go
// through the gateway's sshd, and the nodes' agents reach the engine back
// at home through the gateway's forwarding. The bed is the test's own:
// isolated, two nodes behind a gateway node.
func TestStarterThroughGateway(t *testing.T) {
	gbed := testbed.New(t, testbed.Options{Name: "e2e-gw", Nodes: 2, Isolated: true,
		Limits: testbed.Limits{Memory: nodeRAM[1]}})
	bin := harness.Binary(t)
	data := t.TempDir()
	if err := os.Symlink(syncMirror(t, bin), filepath.Join(data, "mirror")); err != nil {
		t.Fatal(err)
	}
	e := harness.Start(t, harness.Options{Data: data})

	n0, n1 := gbed.Nodes[0].IP, gbed.Nodes[1].IP
	comps := map[string][]string{
		"haproxy": {n0}, "etcd": {n0}, "redis": {n0},
		"web": {n1}, "nats": {n1}, "database": {n1},
	}
	cfg := map[string]any{"components": comps, "properties": map[string]any{
		"catalog": "starter", "domain": "e2e.local", "home": gbed.Home, "key": gbed.KeyPath,
		"disksize": "1", "checkdisk": 1, "adduser": 0,
		"gateway": map[string]any{"host": gbed.Gateway.IP, "key": gbed.KeyPath}}}
	code, body := e.Do("POST", "/deployment-engine/config", cfg)
	if code != 201 {
		t.Fatalf("config (its pre-checks go through the gateway): %d %s", code, body)
	}
	var stored struct{ Hardware []struct{ IP string } }
	_ = json.Unmarshal(body, &stored)
	if len(stored.Hardware) != 2 {
		t.Errorf("config reply carries %d nodes' hardware, want 2: %s", len(stored.Hardware), body)
	}
	// The gateway's key is a secret: redacted when the config is read.
	if code, body := e.Do("GET", "/deployment-engine/config", nil); code != 200 || strings.Contains(string(body), gbed.KeyPath) || !strings.Contains(string(body), gbed.Gateway.IP) {
		t.Errorf("config read back: %d %s", code, body)
	}

	d := wait(t, e, deploy(t, e), 12*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("deploy through the gateway: %s\n%s\nengine log:\n%s", d.State, failures(d), tail(e.Log(), 40))
	}
	want := map[string]string{}
	for comp, list := range comps {
		for _, ip := range list {
			want[comp+"@"+ip] = "RUNNING"
		}
	}
	waitStatus(t, e, want)

	if code, body := e.Do("PUT", "/deployment-engine/restart", map[string]string{"name": "web", "ip": n1}); code != 200 {
		t.Fatalf("restart web through the gateway: %d %s", code, body)
	}
	waitStatus(t, e, map[string]string{"web@" + n1: "RUNNING"})

	d2 := wait(t, e, deploy(t, e), 3*time.Minute)
	if d2.State != "succeeded" || d2.Changed != 0 {
		t.Fatalf("second deploy: %s changed=%d\n%s", d2.State, d2.Changed, failures(d2))
	}
	logsThroughAPI(t, e, comps)
}
