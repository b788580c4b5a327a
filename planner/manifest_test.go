package planner

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/planner/manifestdeploy"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// keyFile writes an SSH private key to a file of its own.
func keyFile(t *testing.T) string {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secManifest places sec's db job, its admin user a generated password
// under a name no secret has.
const secManifest = `
name: simple
releases: [{name: sec, version: "1"}]
instance_groups:
- name: db
  instances: 2
  azs: [z1, z2]
  networks: [{name: default}]
  jobs:
  - name: db
    release: sec
    properties:
      admin: {user: ((admin_user)), password: ((admin_pw))}
variables:
- {name: admin_user, type: password}
- {name: admin_pw, type: password}
`

// A manifest deploys over the bus: refused before a cloud config, then
// stored and started on its machines; its generated variables are kept
// sealed, read again by a second deploy, and in no answer: not the
// config, its history, the deployment, a plan, nor the record in the
// store.
func TestManifestDeploy(t *testing.T) {
	needRuby(t)
	store, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Import(context.Background(), bytes.NewReader(releasetest.Build(secretRelease()))); err != nil {
		t.Fatal(err)
	}
	bus.SetSealKey([]byte("manifest-test-engine-key-0123456"))
	fresh := newID
	// Listening on loopback alone: the machines cannot reach the engine.
	g := startGoldenWith(t, func(o *Options) { o.Releases, o.ListenHost = store, "127.0.0.1" })
	newID = fresh // two deployments, two ids
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ask := func(subj string, body any) (int, string) {
		t.Helper()
		rep, err := kit.Request(ctx, g.b.NC, subj, body)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Code, string(rep.Body)
	}
	// cancelRun cancels deployment id and waits until none runs.
	cancelRun := func(id string) {
		t.Helper()
		if code, body := ask(subject.DeployCancel(), contract.DeployGet{ID: id}); code >= 300 {
			t.Fatalf("cancel: %d %s", code, body)
		}
		for g.p.noneRunning() != nil {
			if ctx.Err() != nil {
				t.Fatal("the cancelled deployment still runs")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	deploy := contract.ManifestDeployCmd{V: 1, Deploy: contract.ManifestDeploy{Manifest: secManifest}}
	if code, body := ask(subject.ManifestDeploy(), deploy); code != 403 || !strings.Contains(body, "cloud-config update") {
		t.Fatalf("without a cloud config: %d %s", code, body)
	}
	cc := "home: 10.9.0.100\nssh: {user: root, key: " + keyFile(t) + "}\nazs:\n- {name: z1, machines: [10.9.0.1, 10.9.0.2]}\n- {name: z2, machines: [10.9.0.3]}\n"
	if code, body := ask(subject.CloudConfigPut(), contract.CloudConfigPut{V: 1, Body: []byte(cc)}); code != 200 {
		t.Fatalf("cloud config: %d %s", code, body)
	}
	if code, body := ask(subject.CloudConfigPut(), contract.CloudConfigPut{V: 1, Body: []byte("home: 10.9.0.100\nazs: [{name: z1, extra: 1}]\n")}); code != 400 || !strings.Contains(body, "azs[0].extra") {
		t.Fatalf("a bad cloud config: %d %s", code, body)
	}
	if code, body := ask(subject.CloudConfigGet(), nil); code != 200 || !strings.Contains(body, `"10.9.0.3"`) {
		t.Fatalf("cloud config read back: %d %s", code, body)
	}
	code, body := ask(subject.ManifestDeploy(), deploy)
	if code != 202 || !strings.Contains(body, `"placement":{"db":["10.9.0.1","10.9.0.3"]}`) {
		t.Fatalf("deploy: %d %s", code, body)
	}
	var started contract.ManifestDeployed
	_ = json.Unmarshal([]byte(body), &started)
	if !strings.Contains(strings.Join(started.Warnings, "\n"), "127.0.0.1") {
		t.Errorf("no warning of the listen address the machines cannot reach: %s", body)
	}
	_, kept, err := manifestdeploy.Load(ctx, g.b.Res.Engine)
	if err != nil {
		t.Fatal(err)
	}
	user, pw := kept["admin_user"].(string), kept["admin_pw"].(string)
	if len(user) != 20 || len(pw) != 20 {
		t.Fatalf("kept variables: %v", kept)
	}
	raw, err := g.b.Res.Engine.Get(ctx, manifestdeploy.Key)
	if err != nil {
		t.Fatal(err)
	}
	answers := []string{body, string(raw.Value())}
	for _, q := range []struct {
		subj string
		body any
	}{
		{subject.ConfigGet(), nil}, {subject.ConfigHistory(), nil}, {subject.DeployGet(), contract.DeployGet{ID: started.ID}},
		{subject.DeployReport(), contract.DeployGet{ID: started.ID}}, {subject.DeployList(), nil},
	} {
		_, b := ask(q.subj, q.body)
		answers = append(answers, b)
	}
	// A second deploy, once the first is cancelled, reads the same values.
	cancelRun(started.ID)
	code, body = ask(subject.ManifestDeploy(), deploy)
	if code != 202 {
		t.Fatalf("second deploy: %d %s", code, body)
	}
	answers = append(answers, body)
	_, again, err := manifestdeploy.Load(ctx, g.b.Res.Engine)
	if err != nil || again["admin_pw"] != pw || again["admin_user"] != user {
		t.Fatalf("the second deploy generated anew: %v", err)
	}
	cfg, err := g.p.storedConfig(ctx)
	if err != nil || cfg.Properties.Jobs["db"].(map[string]any)["admin"].(map[string]any)["user"] != user {
		t.Fatalf("the stored config does not hold the generated user: %v", err)
	}
	// Marked to be generated anew, admin_pw is, at the next deploy alone.
	if code, body := ask(subject.ManifestRegenerate(), contract.ManifestRegenerate{V: 1, Name: "nope"}); code != 404 || !strings.Contains(body, "admin_pw, admin_user") {
		t.Fatalf("regenerate an unknown variable: %d %s", code, body)
	}
	if code, body := ask(subject.ManifestRegenerate(), contract.ManifestRegenerate{V: 1, Name: "admin_pw"}); code != 200 || !strings.Contains(body, `"with":[]`) {
		t.Fatalf("regenerate admin_pw: %d %s", code, body)
	}
	code, body = ask(subject.ManifestVariables(), nil)
	if code != 200 || !strings.Contains(body, `{"name":"admin_pw","type":"password",`) || !strings.Contains(body, `"regenerate":true}`) || strings.Count(body, `"regenerate":false`) != 1 {
		t.Fatalf("variables: %d %s", code, body)
	}
	answers = append(answers, body)
	_ = json.Unmarshal([]byte(answers[len(answers)-2]), &started)
	cancelRun(started.ID)
	if code, body = ask(subject.ManifestDeploy(), deploy); code != 202 {
		t.Fatalf("third deploy: %d %s", code, body)
	}
	answers = append(answers, body)
	_, third, err := manifestdeploy.Load(ctx, g.b.Res.Engine)
	if err != nil || third["admin_pw"] == pw || len(third["admin_pw"].(string)) != 20 || third["admin_user"] != user {
		t.Fatalf("after admin_pw was marked: %v; admin_pw changed %v, admin_user kept %v", err, third["admin_pw"] != pw, third["admin_user"] == user)
	}
	if code, body = ask(subject.ManifestVariables(), nil); code != 200 || strings.Contains(body, `"regenerate":true`) {
		t.Fatalf("variables after the deploy that generated admin_pw anew: %d %s", code, body)
	}
	answers = append(answers, body)
	plan, err := g.p.previewOf(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(plan)
	answers = append(answers, string(out))
	for i, a := range answers {
		if strings.Contains(a, user) || strings.Contains(a, pw) || strings.Contains(a, third["admin_pw"].(string)) {
			t.Errorf("answer %d shows a generated value: %s", i, a)
		}
	}
	if !strings.Contains(string(out), `+user=\u003credacted\u003e`) {
		t.Errorf("the plan lacks db.conf with its user redacted:\n%s", out)
	}
}
