package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/bus"
)

// A split engine's two api,planner processes share one bus: a release
// uploaded through either is listed by, configured against and has its
// packages served by the other, every time; a refused upload leaves
// nothing in the bus.
func TestReleasesSplitEngine(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	only := []string{"api", "planner"}
	a, stopA := engineStop(t, Options{NATSURL: ns.ClientURL(), Only: only})
	defer stopA()
	b, stopB := engineStop(t, Options{NATSURL: ns.ClientURL(), Only: only})
	defer stopB()
	engines := []string{"http://" + a, "http://" + b}
	// The plan validates the config against its release: one not
	// uploaded is refused.
	missing := `{"components":{"j":["10.9.0.2"]},"properties":{"domain":"x.local","home":"10.9.0.1","root":"123456","catalog":"bosh","release":"split/99"}}`
	if code, body, _ := do(t, "POST", engines[1]+"/deployment-engine/plan", missing, true); code != 400 || !strings.Contains(string(body), "upload it first") {
		t.Fatalf("plan of a release not uploaded: %d %s", code, body)
	}

	for i := range 10 {
		up, other := engines[i%2], engines[(i+1)%2]
		version := fmt.Sprint(i + 1)
		rel := releasetest.Release{Name: "split", Version: version,
			Jobs: []releasetest.Job{{Name: "j", Spec: "---\nname: j\ntemplates:\n  ctl.erb: bin/ctl\npackages: [p]\n", Monit: "",
				Templates: map[string]string{"ctl.erb": "x"}}},
			Packages: []releasetest.Package{{Name: "p", Files: map[string]string{"packaging": "true", "v": version}}}}
		if code, body, _ := do(t, "POST", up+"/deployment-engine/releases", string(releasetest.Build(rel)), true); code != 201 {
			t.Fatalf("upload %s: %d %s", version, code, body)
		}

		code, body, _ := do(t, "GET", other+"/deployment-engine/releases", "", true)
		var list []release.Summary
		if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list) != i+1 || list[i].Version != version {
			t.Fatalf("try %d: the other process lists %d %s", i, code, body)
		}
		cfg := fmt.Sprintf(`{"components":{"j":["10.9.0.2"]},"properties":{"domain":"x.local","home":"10.9.0.1","root":"123456","catalog":"bosh","release":"split/%s"}}`, version)
		if code, body, _ := do(t, "POST", other+"/deployment-engine/plan", cfg, true); code != 200 && code != 201 {
			t.Fatalf("try %d: plan of a config with the release through the other process: %d %s", i, code, body)
		}
		pkg := "/releases/split/" + version + "/packages/p.tgz"
		_, want, _ := do(t, "GET", up+pkg, "", false)
		if code, got, _ := do(t, "GET", other+pkg, "", false); code != 200 || len(got) == 0 || !bytes.Equal(got, want) {
			t.Fatalf("try %d: package through the other process: %d, %d bytes (%d through the uploader)", i, code, len(got), len(want))
		}
	}

	nc, err := bus.Dial(ns.ClientURL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	res, err := bus.Declare(t.Context(), nc)
	if err != nil {
		t.Fatal(err)
	}
	before, err := res.Releases.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tampered := releasetest.Build(releasetest.Release{Name: "t", Version: "1", Tamper: "jobs/j.tgz",
		Jobs: []releasetest.Job{{Name: "j", Spec: "name: j\ntemplates: {}\n", Monit: ""}}})
	if code, body, _ := do(t, "POST", engines[0]+"/deployment-engine/releases", string(tampered), true); code != 400 {
		t.Fatalf("tampered: %d %s", code, body)
	}
	after, err := res.Releases.List(t.Context())
	if err != nil || len(after) != len(before) {
		t.Errorf("a refused upload changed the bucket: %d objects before, %d after (%v)", len(before), len(after), err)
	}
}
