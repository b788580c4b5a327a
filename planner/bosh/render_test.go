package bosh

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/contract"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func needRuby(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(Ruby); err != nil {
		t.Fatalf("ruby is needed to render templates (make deps installs it): %v", err)
	}
}

const appConf = `name=<%= p('name') %>
greeting=<%= p('greeting') %>
fallback=<%= p(['missing.one', 'greeting']) %>
default=<%= p('optional.thing', 'fallback-default') %>
<% if_p('optional.thing') do |t| %>thing=<%= t %><% end.else do %>no thing<% end %>
<% if_p('greeting', 'name') do |g, n| %>both=<%= g %>,<%= n %><% end %>
props=<%= properties.greeting %> nested=<%= properties.nested.list.join(',') %>
spec: name=<%= spec.name %> index=<%= spec.index %> id=<%= spec.id %> az=<%= spec.az %> bootstrap=<%= spec.bootstrap %>
spec: address=<%= spec.address %> ip=<%= spec.ip %> deployment=<%= spec.deployment %> release=<%= spec.release.name %>/<%= spec.release.version %>
<% link('db').instances.each do |i| -%>
db: <%= i.name %> <%= i.index %> <%= i.id %> <%= i.az %> <%= i.address %> <%= i.bootstrap %>
<% end -%>
db.port=<%= link('db').p('port') %> user=<%= link('db').p('admin.user') %> missing=<%= link('db').p('nope', 'dflt') %>
db.address=<%= link('db').address %> z2=<%= link('db').address(azs: ['z2']) %>
<% if_link('db') do |db| %>has db <%= db.instances.size %><% end %>
<% if_link('cache') do |c| %>has cache<% end.else do %>no cache<% end %>
`

// LinkedRelease is a release with a link between two jobs and a chain of
// package dependencies: app → libapp → base.
func linkedRelease() releasetest.Release {
	return releasetest.Release{Name: "linked", Version: "3",
		Jobs: []releasetest.Job{
			{Name: "db", Spec: `---
name: db
templates:
  ctl.erb: bin/ctl
packages: [base]
provides:
- name: db
  type: database
  properties: [port, admin.user]
properties:
  port: {default: 5432}
  admin.user: {default: admin}
  admin.password: {description: no default}
`, Monit: "check process db\n  with pidfile /var/vcap/sys/run/db/db.pid\n  start program \"/var/vcap/jobs/db/bin/ctl start\"\n  stop program \"/var/vcap/jobs/db/bin/ctl stop\"\n",
				Templates: map[string]string{"ctl.erb": "#!/bin/bash\n# port <%= p('port') %>\n"}},
			{Name: "app", Spec: `---
name: app
templates:
  app.conf.erb: config/app.conf
packages: [app]
consumes:
- name: db
  type: database
properties:
  name: {description: required}
  greeting: {default: hello}
  optional.thing: {description: optional}
  nested.list: {default: [a, b]}
`, Monit: "", Templates: map[string]string{"app.conf.erb": appConf}},
		},
		Packages: []releasetest.Package{
			{Name: "base", Files: map[string]string{"packaging": "echo base > ${BOSH_INSTALL_TARGET}/base\n"}},
			{Name: "libapp", Deps: []string{"base"}, Files: map[string]string{"packaging": "cat ${BOSH_PACKAGES_DIR}/base/base > ${BOSH_INSTALL_TARGET}/lib\n"}},
			{Name: "app", Deps: []string{"libapp"}, Files: map[string]string{"packaging": "cp ${BOSH_PACKAGES_DIR}/libapp/lib ${BOSH_INSTALL_TARGET}/app\n"}},
		}}
}

func load(t *testing.T, r releasetest.Release) *release.Release {
	t.Helper()
	s, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rel, _, err := s.Import(context.Background(), bytes.NewReader(releasetest.Build(r)))
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func loadFile(t *testing.T, file string) *release.Release {
	t.Helper()
	s, _ := release.NewStore(t.TempDir())
	f, err := os.Open(filepath.Join("../release/testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	rel, _, err := s.Import(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func cfgOf(comps map[string][]string, jobs map[string]any, azs map[string][]string) contract.Config {
	return contract.Config{Components: comps, Properties: contract.Properties{Jobs: jobs, AZs: azs}}
}

func TestRenderContext(t *testing.T) {
	needRuby(t)
	rel := load(t, linkedRelease())
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1", "10.0.0.2"}, "app": {"10.0.0.3"}},
		map[string]any{"app": map[string]any{"name": "shop"}, "db": map[string]any{"port": 6543.0}},
		map[string][]string{"z2": {"10.0.0.2"}})
	d, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatalf("problems: %v", ps)
	}
	insts, ps, err := RenderAll(context.Background(), d)
	if err != nil || len(ps) > 0 {
		t.Fatalf("render: %v %v", err, ps)
	}
	for _, in := range insts {
		if in.Job != "app" {
			continue
		}
		if len(in.Files) != 1 || !strings.HasSuffix(in.Files[0].Path, "/config/app.conf") || in.Files[0].Mode != 0o644 {
			t.Fatalf("files %+v", in.Files)
		}
		golden(t, "app.conf", string(in.Files[0].Content))
	}
}

func TestRenderSharedReleases(t *testing.T) {
	needRuby(t)
	dummy := loadFile(t, "dummy-release.tgz")
	d, ps := NewDeployment(dummy, cfgOf(map[string][]string{"dummy_with_properties": {"10.0.0.1"}, "dummy": {"10.0.0.2"}},
		map[string]any{"dummy_with_properties": map[string]any{"dummy_with_properties": map[string]any{"echo_value": "from the config"}}}, nil))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	insts, ps, err := RenderAll(context.Background(), d)
	if err != nil || len(ps) > 0 {
		t.Fatal(err, ps)
	}
	for _, in := range insts {
		var ctl, wrapper *contract.StepFile
		for i, f := range in.Files {
			switch {
			case strings.Contains(f.Path, "/bin/"):
				ctl = &in.Files[i]
			case strings.HasSuffix(f.Path, "/.de/stop-1"):
				wrapper = &in.Files[i]
			}
		}
		if ctl == nil || wrapper == nil || len(in.Files) != 2 {
			t.Fatalf("%s: files %v", in.Job, in.Files)
		}
		golden(t, in.Job+".ctl", string(ctl.Content))
		golden(t, in.Job+".monit", in.Monit)
		golden(t, in.Job+".stop", string(wrapper.Content))
		if ctl.Mode != 0o755 || wrapper.Mode != 0o755 {
			t.Errorf("%s: bin file mode %o, stop wrapper %o", in.Job, ctl.Mode, wrapper.Mode)
		}
	}
	pre := loadFile(t, "release_with_prestart_script-1.tgz")
	d, _ = NewDeployment(pre, cfgOf(map[string][]string{"job_1_with_pre_start_script": {"10.0.0.1"}},
		map[string]any{"job_1_with_pre_start_script": map[string]any{"pre_start_message_1": "hello from the config"}}, nil))
	insts, ps, err = RenderAll(context.Background(), d)
	if err != nil || len(ps) > 0 {
		t.Fatal(err, ps)
	}
	for _, f := range insts[0].Files {
		if strings.HasSuffix(f.Path, "/bin/pre-start") {
			golden(t, "pre-start", string(f.Content))
		}
	}
}

func TestRenderProblems(t *testing.T) {
	needRuby(t)
	rel := load(t, linkedRelease())
	for _, tc := range []struct {
		name string
		cfg  contract.Config
		want []string
	}{
		{"required property missing", cfgOf(map[string][]string{"db": {"10.0.0.1"}, "app": {"10.0.0.2"}}, nil, nil),
			[]string{"app.conf.erb", "line 1", "Can't find property 'name'"}},
	} {
		d, ps := NewDeployment(rel, tc.cfg)
		if len(ps) > 0 {
			t.Fatalf("%s: %v", tc.name, ps)
		}
		_, ps, err := RenderAll(context.Background(), d)
		if err != nil || len(ps) != 1 {
			t.Fatalf("%s: %v %v", tc.name, err, ps)
		}
		for _, w := range tc.want {
			if !strings.Contains(ps[0].Reason, w) {
				t.Errorf("%s: %q lacks %q", tc.name, ps[0].Reason, w)
			}
		}
	}
}

func TestValidateStatic(t *testing.T) {
	rel := load(t, linkedRelease())
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1"}, "nope": {"10.0.0.2"}},
		map[string]any{"db": map[string]any{"port": 1.0, "admin": map[string]any{"user": "x", "colour": "red"}}, "ghost": map[string]any{}},
		map[string][]string{"z2": {"10.9.9.9"}})
	_, ps := NewDeployment(rel, cfg)
	var got []string
	for _, p := range ps {
		got = append(got, p.Path+": "+p.Reason)
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{
		`components.nope: release linked/3 has no job "nope"`,
		`properties.jobs.db.admin.colour: job db declares no property "admin.colour"`,
		`properties.jobs.ghost: release linked/3 has no job "ghost"`,
		`properties.azs.z2: 10.9.9.9 is not a node`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("missing problem %q in:\n%s", w, all)
		}
	}
	if len(ps) != 4 {
		t.Errorf("%d problems, want 4:\n%s", len(ps), all)
	}
	// A consumer without its provider.
	_, ps = NewDeployment(rel, cfgOf(map[string][]string{"app": {"10.0.0.1"}}, map[string]any{"app": map[string]any{"name": "x"}}, nil))
	if len(ps) != 1 || !strings.Contains(ps[0].Reason, `consumes link "db"`) {
		t.Errorf("missing provider: %v", ps)
	}
}
