package planner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

func needRuby(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(bosh.Ruby); err != nil {
		t.Fatalf("ruby is needed to render templates (make deps installs it): %v", err)
	}
}

// secretRelease has a job whose config file holds its admin password, and
// a job whose template fails quoting it.
func secretRelease() releasetest.Release {
	return releasetest.Release{Name: "sec", Version: "1", Jobs: []releasetest.Job{
		{Name: "db", Spec: "name: db\ntemplates:\n  db.conf.erb: config/db.conf\nproperties:\n  admin.user: {}\n  admin.password: {}\n",
			Templates: map[string]string{"db.conf.erb": "user=<%= p('admin.user') %>\npassword=<%= p('admin.password') %>\n"}},
		{Name: "bad", Spec: "name: bad\ntemplates:\n  bad.erb: config/bad\nproperties:\n  token: {}\n",
			Templates: map[string]string{"bad.erb": "<%= p('token').no_such_method %>\n"}},
	}}
}

// A plan's diffs carry no secret: not the stored config's BOSH job
// password, not when the body posts the redaction marker for it (which
// keeps the stored one), and not when a template's failure quotes one.
const jobSecret, rootSecret, agentSecret = "JobSecret-Q7w", "RootPw-8kd", "AgentPw-2mz"

// secretPlanner is a planner on a test bus with secretRelease uploaded and
// a config stored that places its db job with secrets everywhere.
func secretPlanner(t *testing.T) (*Planner, *bustest.Bus, contract.Config) {
	t.Helper()
	needRuby(t)
	b := bustest.Start(t, bus.ServerOptions{})
	p := testPlanner(t, b)
	t.Cleanup(p.sched.Stop)
	store, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Import(context.Background(), bytes.NewReader(releasetest.Build(secretRelease()))); err != nil {
		t.Fatal(err)
	}
	p.o.Releases, p.o.Port = store, 50000
	p.o.Agent = &AgentSpec{SHA256: "abc", Path: "/agent/abc/de-agent", Password: func(string) string { return agentSecret }}
	stored := contract.Config{Components: map[string][]string{"db": {"10.0.0.1"}},
		Properties: contract.Properties{Domain: "a.local", Home: "10.0.0.100", User: "vcap", Root: rootSecret, Catalog: "bosh", Release: "sec/1",
			Jobs: map[string]any{"db": map[string]any{"admin": map[string]any{"user": "admin", "password": jobSecret}}}}}
	if err := bus.StoreConfig(context.Background(), b.Res.Config, stored); err != nil {
		t.Fatal(err)
	}
	return p, b, stored
}

func TestPlanRedactsRenderedSecrets(t *testing.T) {
	p, b, stored := secretPlanner(t)
	ctx := context.Background()
	posted, _ := json.Marshal(stored.Redact())
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"stored config", nil},
		{"posted with the redaction marker", posted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := p.previewOf(ctx, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := json.Marshal(plan)
			for _, s := range []string{jobSecret, rootSecret, agentSecret} {
				if bytes.Contains(out, []byte(s)) {
					t.Errorf("the plan shows %s", s)
				}
			}
			// The file is there, its secret redacted.
			if !strings.Contains(string(out), `+password=\u003credacted\u003e\n`) || !strings.Contains(string(out), `+user=admin\n`) {
				t.Errorf("the plan lacks db.conf's diff with the password redacted:\n%s", out)
			}
		})
	}

	// A template's failure that quotes a secret, at plan and at check.
	failing := stored.Clone()
	failing.Components["bad"] = []string{"10.0.0.1"}
	failing.Properties.Jobs["bad"] = map[string]any{"token": jobSecret}
	if err := bus.StoreConfig(ctx, b.Res.Config, failing); err != nil {
		t.Fatal(err)
	}
	_, err := p.previewOf(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "no_such_method") || strings.Contains(err.Error(), jobSecret) {
		t.Errorf("plan of a failing template: %v", err)
	}
	body, _ := json.Marshal(failing)
	_, err = p.previewOf(ctx, body)
	if err == nil || !strings.Contains(err.Error(), "config rejected") {
		t.Fatalf("posted failing template: %v", err)
	}
	probs, _ := json.Marshal(err)
	if !strings.Contains(string(probs), "no_such_method") || strings.Contains(string(probs), jobSecret) {
		t.Errorf("posted failing template's problems: %s", probs)
	}
}

// A node's file that drifted from what an older deployment wrote shows in
// the plan without that deployment's secrets: the config it applied is
// redacted too.
func TestPlanRedactsOlderSecrets(t *testing.T) {
	p, b, stored := secretPlanner(t)
	ctx := context.Background()
	const oldSecret = "OldSecret-5vb"
	planned, err := p.stepsFor(ctx, p.builderFor(stored, nil, "plan", nil, nil), mustRelease(t, p))
	if err != nil {
		t.Fatal(err)
	}
	var step contract.Step
	for _, s := range planned {
		if s.Spec.Component == "db" && len(s.Spec.Files) > 0 {
			step = s.Spec
		}
	}
	if step.ID == "" {
		t.Fatal("no step of db writes files")
	}
	// Deployment d-1 wrote the step's file with the password of its day.
	path := step.Files[0].Path
	written := step
	written.Hash, written.Files = "h-old", []contract.StepFile{steps.File(path, 0o644, []byte("password="+oldSecret+"\n"))}
	older := stored.Clone()
	older.Properties.Jobs = map[string]any{"db": map[string]any{"admin": map[string]any{"user": "admin", "password": oldSecret}}}
	doc, _ := json.Marshal(map[string]any{"specs": map[string]contract.Step{step.ID: written}})
	cfgDoc, err := bus.EncodeConfig(older)
	if err != nil {
		t.Fatal(err)
	}
	for _, put := range []struct {
		kv  jetstream.KeyValue
		key string
		val []byte
	}{{b.Res.Deployments, "d-1", []byte("{}")}, {b.Res.Scheduler, "steps.d-1", doc}, {b.Res.Scheduler, configKey("d-1"), cfgDoc}} {
		if _, err := put.kv.Put(ctx, put.key, put.val); err != nil {
			t.Fatal(err)
		}
	}
	// The node holds that file, edited since, and the step's marker.
	_, err = b.NC.Subscribe(subject.InstallerExec(), func(m *nats.Msg) {
		var in contract.Exec
		_ = json.Unmarshal(m.Data, &in)
		out := "monit yes\nmarker " + nodefs.MarkerName(step.Key) + " h-old\n"
		if strings.Contains(in.Script, "echo end") {
			out = "file " + path + "\t" + base64.StdEncoding.EncodeToString([]byte("password="+oldSecret+"\nedited=1\n")) + "\nend\n"
		}
		body, _ := json.Marshal(contract.ExecReply{V: contract.Version, Output: out})
		r := nats.NewMsg(m.Reply)
		r.Header.Set(kit.HeaderCode, "200")
		r.Data = body
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.previewOf(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(plan)
	if !strings.Contains(string(out), `+edited=1\n`) {
		t.Errorf("the plan lacks the drift of %s:\n%s", path, out)
	}
	if strings.Contains(string(out), oldSecret) {
		t.Errorf("the plan shows the older deployment's secret:\n%s", out)
	}
}

func mustRelease(t *testing.T, p *Planner) *release.Release {
	t.Helper()
	rel, err := p.o.Releases.Get("sec", "1")
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
