package bosh

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
)

// layout runs the node's layout step for a disk of mb MB, the tools that
// make the vcap user stubbed: it records the size in diskFile.
func (n *node) layout(mb int) {
	n.t.Helper()
	for _, tool := range []string{"getent", "groupadd", "id", "useradd"} {
		n.write(filepath.Join(n.root, "bin", tool), 0o755, "#!/bin/bash\nexit 0\n")
	}
	if out, err := n.run(layoutScript(mb)); err != nil {
		n.t.Fatalf("layout: %v\n%s", err, out)
	}
}

// drainSaw lists what each drain logged, as "drain ARG STATE NEXT", each
// state checked to be JSON with a persistent_disk number.
func (n *node) drainSaw() []string {
	n.t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(n.lines()), "\n") {
		f := strings.Split(l, "|")
		if len(f) != 3 || !strings.HasPrefix(f[0], "drain ") {
			continue
		}
		var was, next struct {
			PersistentDisk *int `json:"persistent_disk"`
		}
		if err := json.Unmarshal([]byte(f[1]), &was); err != nil || was.PersistentDisk == nil {
			n.t.Errorf("BOSH_JOB_STATE %q is not {\"persistent_disk\": N}: %v", f[1], err)
		}
		if err := json.Unmarshal([]byte(f[2]), &next); err != nil || next.PersistentDisk == nil {
			n.t.Errorf("BOSH_JOB_NEXT_STATE %q is not {\"persistent_disk\": N}: %v", f[2], err)
		}
		out = append(out, f[0]+" "+f[1]+" "+f[2])
	}
	return out
}

// A drain is told the persistent disk's size now (BOSH_JOB_STATE) and
// after the stop (BOSH_JOB_NEXT_STATE), as the node's layout recorded it
// and as the running version of the job was applied with: an update
// (after the layout recorded a changed size) says the size before and
// after it, a removal the size before and 0 (the instance goes), a stop
// through monit the node's size twice. A node or a version without a
// record (laid out or applied before the engine recorded sizes), or with
// one that is no number, reads as the node's size, else 0.
func TestDrainJobState(t *testing.T) {
	const none = -1
	for _, tc := range []struct {
		name       string
		layout     int    // the size the layout records; none: no layout ran
		nodeFile   string // else diskFile's content, when not ""
		v1Record   string // v1's versionDisk, "" for none
		script     string
		want       string
		wantRecord string // v2's versionDisk after an update
	}{
		{name: "update, nothing recorded", layout: none, script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":0} {"persistent_disk":0}`, wantRecord: "0"},
		{name: "update, same size", layout: 1024, v1Record: "1024\n", script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":1024} {"persistent_disk":1024}`, wantRecord: "1024"},
		{name: "update as the disk grows", layout: 2048, v1Record: "1024\n", script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":1024} {"persistent_disk":2048}`, wantRecord: "2048"},
		{name: "update as the disk goes", layout: 0, v1Record: "1024\n", script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":1024} {"persistent_disk":0}`, wantRecord: "0"},
		{name: "update as a disk comes", layout: 512, v1Record: "0\n", script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":0} {"persistent_disk":512}`, wantRecord: "512"},
		{name: "update of a version applied before sizes were recorded", layout: 512, script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":512} {"persistent_disk":512}`, wantRecord: "512"},
		{name: "update, records that are no numbers", layout: none, nodeFile: "1}\"; touch @LOG@.owned\n", v1Record: "$(touch @LOG@.owned)", script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":0} {"persistent_disk":0}`, wantRecord: "0"},
		{name: "update, records with leading zeros or no newline", layout: none, nodeFile: "0064", v1Record: " 0032 ", script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":32} {"persistent_disk":64}`, wantRecord: "64"},
		{name: "update, a record too long to be a size", layout: none, nodeFile: "99999999999999999999999\n", script: applyScript("web", "v2", nil),
			want: `drain job_changed {"persistent_disk":0} {"persistent_disk":0}`, wantRecord: "0"},
		{name: "removal", layout: 1024, v1Record: "1024\n", script: RemoveScript("web"),
			want: `drain job_shutdown {"persistent_disk":1024} {"persistent_disk":0}`},
		{name: "removal of a version applied before sizes were recorded", layout: 1024, script: RemoveScript("web"),
			want: `drain job_shutdown {"persistent_disk":1024} {"persistent_disk":0}`},
		{name: "removal, nothing recorded", layout: none, script: RemoveScript("web"),
			want: `drain job_shutdown {"persistent_disk":0} {"persistent_disk":0}`},
		{name: "stop through monit", layout: 1024, v1Record: "512\n", script: stopWrapper("web", "true"),
			want: `drain job_shutdown {"persistent_disk":1024} {"persistent_disk":1024}`},
		{name: "stop through monit, nothing recorded", layout: none, script: stopWrapper("web", "true"),
			want: `drain job_shutdown {"persistent_disk":0} {"persistent_disk":0}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 0)
			v1 := filepath.Join(n.root, "var/vcap/data/jobs/web/v1")
			n.write(filepath.Join(v1, "bin/drain"), 0o755, "#!/bin/bash\necho \"drain $1|$BOSH_JOB_STATE|$BOSH_JOB_NEXT_STATE\" >>@LOG@\necho 0\n")
			if tc.layout != none {
				n.layout(tc.layout)
			}
			if tc.nodeFile != "" {
				n.write(filepath.Join(n.root, diskFile), 0o644, tc.nodeFile)
			}
			if tc.v1Record != "" {
				n.write(filepath.Join(v1, versionDisk), 0o644, tc.v1Record)
			}
			out, err := n.run(tc.script)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := n.drainSaw(); len(got) != 1 || got[0] != tc.want {
				t.Errorf("the drain saw %q, want %q\n(output %s)", got, tc.want, out)
			}
			if tc.wantRecord != "" {
				b, err := os.ReadFile(filepath.Join(n.root, "var/vcap/data/jobs/web/v2", versionDisk))
				if got := strings.TrimSpace(string(b)); err != nil || got != tc.wantRecord {
					t.Errorf("v2 records %q (%v), want %q", got, err, tc.wantRecord)
				}
			}
			if _, err := os.Stat(n.log + ".owned"); err == nil {
				t.Error("a record's content ran as shell")
			}
		})
	}
}

// What an update records is what the next one is told the disk was: the
// size changes in between, by a layout alone (no job changed), and the
// next update says from what to what.
func TestDrainJobStateAcrossUpdates(t *testing.T) {
	n := newNode(t, 0)
	drain := "#!/bin/bash\necho \"drain $1|$BOSH_JOB_STATE|$BOSH_JOB_NEXT_STATE\" >>@LOG@\necho 0\n"
	n.write(filepath.Join(n.root, "var/vcap/data/jobs/web/v1/bin/drain"), 0o755, drain)
	n.layout(1024)
	for _, v := range []string{"v2", "v3"} {
		if out, err := n.run(applyScript("web", v, nil)); err != nil {
			t.Fatalf("apply %s: %v\n%s", v, err, out)
		}
		// v's processes run, and it drains as v1 did.
		n.write(filepath.Join(n.root, "var/vcap/data/jobs/web", v, "bin/drain"), 0o755, drain)
		for _, p := range []string{"web", "web-worker"} {
			n.write(filepath.Join(n.root, "monit-state", p), 0o644, "up")
		}
		n.layout(4096)
	}
	want := []string{`drain job_changed {"persistent_disk":1024} {"persistent_disk":1024}`,
		`drain job_changed {"persistent_disk":1024} {"persistent_disk":4096}`}
	if got := n.drainSaw(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the drains saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A node's layout step records its disk's size, so its hash follows the
// size (a changed size runs it again, before any job step): two plans'
// layouts have the same hash when they record the same size (no disk and
// a disk of 0 MB; the same size on a device or not), else another. Run,
// the layout leaves the size in diskFile.
func TestLayoutRecordsDiskSize(t *testing.T) {
	needRuby(t)
	rel := load(t, linkedRelease())
	type result struct{ name, hash, record string }
	var results []result
	for _, tc := range []struct {
		name   string
		disk   *contract.PersistentDisk
		record string
	}{
		{name: "no disk", record: "0"},
		{name: "0 MB", disk: &contract.PersistentDisk{}, record: "0"},
		{name: "1024 MB", disk: &contract.PersistentDisk{SizeMB: 1024}, record: "1024"},
		{name: "1024 MB on a device", disk: &contract.PersistentDisk{SizeMB: 1024, Device: "/dev/vdb"}, record: "1024"},
		{name: "2048 MB", disk: &contract.PersistentDisk{SizeMB: 2048}, record: "2048"},
		{name: "1 MB on a device", disk: &contract.PersistentDisk{SizeMB: 1, Device: "/dev/vdb"}, record: "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfgOf(map[string][]string{"db": {"10.0.0.1"}}, nil, nil)
			if tc.disk != nil {
				cfg.Properties.PersistentDisks = map[string]contract.PersistentDisk{"10.0.0.1": *tc.disk}
			}
			d, ps := NewDeployment(rel, cfg)
			if len(ps) > 0 {
				t.Fatal(ps)
			}
			plan, err := MakePlan(context.Background(), PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
				PackageURL: func(p release.Package) string { return "http://h/" + p.Name }})
			if err != nil {
				t.Fatal(err)
			}
			var layout *Step
			for i, s := range plan.Steps {
				if s.Spec.ID == "10.0.0.1/_node/vcap" {
					layout = &plan.Steps[i]
				}
			}
			if layout == nil {
				t.Fatal("no layout step")
			}
			if layout.Spec.Hash != hashOf(layout.Spec.Script) {
				t.Errorf("the layout's hash is not its script's")
			}
			results = append(results, result{tc.name, layout.Spec.Hash, tc.record})
			n := newNode(t, 0)
			n.layout(0) // the stubbed tools
			if out, err := n.run(layout.Spec.Script); err != nil {
				t.Fatalf("the layout: %v\n%s", err, out)
			}
			if b, err := os.ReadFile(filepath.Join(n.root, diskFile)); err != nil || string(b) != tc.record+"\n" {
				t.Errorf("the layout recorded %q (%v), want %s", b, err, tc.record)
			}
		})
	}
	for i, a := range results {
		for _, b := range results[i+1:] {
			if (a.hash == b.hash) != (a.record == b.record) {
				t.Errorf("the layouts of %s and %s: same hash %v, but they record %s and %s MB", a.name, b.name, a.hash == b.hash, a.record, b.record)
			}
		}
	}
}
