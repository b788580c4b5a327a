package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// diskManifest gives the props group a persistent disk; ((value)) is the
// job's property, changed between deploys.
const diskManifest = `
name: e2e-disk
releases: [{name: dummy, version: 0.2-dev}]
instance_groups:
- name: props
  instances: 2
  azs: [z1]
  persistent_disk: 64
  networks: [{name: default}]
  jobs:
  - name: dummy_with_properties
    release: dummy
    properties: {dummy_with_properties: {echo_value: ((value))}}
`

// A manifest's persistent disk on real machines: where the cloud config
// names a device (a loop device of this machine, seen by the node), it is
// formatted and mounted at /var/vcap/store; elsewhere the store is a
// directory. Data written in either survives a job update and a second
// deploy of the same manifest, the device stays mounted, and a deploy
// after the node lost the mount (as at a boot) mounts it again.
func TestBoshPersistentDisk(t *testing.T) {
	img := filepath.Join(t.TempDir(), "store.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	}()
	natsPort := bustest.FreePort(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer resetBosh(t, "dummy_with_properties")
	defer inNode(t, 0, "umount /var/vcap/store 2>/dev/null; sed -i '\\| /var/vcap/store |d' /etc/fstab; true")
	dummy, err := os.ReadFile(filepath.Join(sharedReleases, "dummy-release.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	upload(t, e, dummy, 201)
	cc := fmt.Sprintf("home: %s\nssh: {user: root, key: %s}\nazs:\n- {name: z1, machines: [%s, %s]}\ndisks: {%s: %s}\n",
		bed.Home, bed.KeyPath, ips(0)[0], ips(1)[0], ips(0)[0], dev)
	if code, out := e.Do("PUT", "/deployment-engine/cloud-config", cc); code != 200 {
		t.Fatalf("cloud config: %d %s", code, out)
	}
	deployedFrom := func(manifest, value string) {
		t.Helper()
		code, out := e.Do("POST", "/deployment-engine/manifest", map[string]any{"manifest": manifest, "vars": map[string]any{"value": value}})
		var started contract.ManifestDeployed
		if code != 202 || json.Unmarshal(out, &started) != nil {
			t.Fatalf("manifest deploy: %d %s", code, out)
		}
		for _, w := range started.Warnings {
			if strings.Contains(w, "persistent_disk") {
				t.Errorf("warning: %s", w)
			}
		}
		if d := wait(t, e, started.ID, 10*time.Minute); d.State != contract.DeploySucceeded {
			t.Fatalf("deployment with value %s: %s\n%s", value, d.State, failures(d))
		}
	}
	deployed := func(value string) { t.Helper(); deployedFrom(diskManifest, value) }
	mounted := func() string { return strings.TrimSpace(inNode(t, 0, "findmnt -n -o SOURCE --target /var/vcap/store")) }

	deployed("one")
	if got := mounted(); got != dev {
		t.Fatalf("node 0's store is on %q, want %s", got, dev)
	}
	if got := strings.TrimSpace(inNode(t, 1, "mountpoint -q /var/vcap/store && echo mounted || echo directory")); got != "directory" {
		t.Errorf("node 1's store: %s", got)
	}
	for i := range 2 {
		inNode(t, i, "echo kept > /var/vcap/store/data")
	}

	deployed("two") // the job's property changed: its instances updated
	deployed("two") // and the same manifest again
	for i := range 2 {
		if got := strings.TrimSpace(inNode(t, i, "cat /var/vcap/store/data")); got != "kept" {
			t.Errorf("node %d's store after an update and a re-deploy: %q", i, got)
		}
	}
	if got := mounted(); got != dev {
		t.Errorf("after the re-deploys node 0's store is on %q", got)
	}

	// As after a boot that did not mount it: the next deploy does.
	inNode(t, 0, "umount /var/vcap/store")
	deployed("two")
	if got := mounted(); got != dev {
		t.Fatalf("after the mount was lost, the store is on %q", got)
	}
	if got := strings.TrimSpace(inNode(t, 0, "cat /var/vcap/store/data")); got != "kept" {
		t.Errorf("the device's data after it was mounted again: %q", got)
	}

	// A disk is deleted only once a deployment orphaned it.
	if code, out := e.Do("DELETE", "/deployment-engine/disks/"+ips(0)[0], nil); code != 404 || !strings.Contains(string(out), "no orphaned disk on "+ips(0)[0]) {
		t.Errorf("delete an attached disk: %d %s", code, out)
	}
	// The group loses its disks: both are orphaned, their data kept.
	deployedFrom(strings.Replace(diskManifest, "  persistent_disk: 64\n", "", 1), "two")
	disks := func() map[string]contract.Disk {
		t.Helper()
		code, out := e.Do("GET", "/deployment-engine/disks", nil)
		var l []contract.Disk
		if code != 200 || json.Unmarshal(out, &l) != nil {
			t.Fatalf("disks: %d %s", code, out)
		}
		got := map[string]contract.Disk{}
		for _, d := range l {
			got[d.IP] = d
		}
		return got
	}
	got := disks()
	if len(got) != 2 || got[ips(0)[0]].State != contract.DiskOrphaned || got[ips(0)[0]].Device != dev || got[ips(1)[0]].State != contract.DiskOrphaned || got[ips(1)[0]].SizeMB != 64 {
		t.Fatalf("disks after the group lost them: %+v", got)
	}
	if m := mounted(); m != dev || strings.TrimSpace(inNode(t, 0, "cat /var/vcap/store/data")) != "kept" {
		t.Fatalf("an orphaned disk's data must stay until it is deleted: node 0's store is on %q", m)
	}
	// Deleted on request: the node shows it.
	for i := range 2 {
		code, out := e.Do("DELETE", "/deployment-engine/disks/"+ips(i)[0], nil)
		var started contract.DiskDeleteStarted
		if code != 202 || json.Unmarshal(out, &started) != nil {
			t.Fatalf("delete node %d's disk: %d %s", i, code, out)
		}
		if d := wait(t, e, started.ID, 5*time.Minute); d.State != contract.DeploySucceeded {
			t.Fatalf("deletion of node %d's disk: %s\n%s", i, d.State, failures(d))
		}
		if got := strings.TrimSpace(inNode(t, i, "mountpoint -q /var/vcap/store && echo mounted; grep -c ' /var/vcap/store ' /etc/fstab; ls -A /var/vcap/store; true")); got != "0" {
			t.Errorf("node %d's store after its deletion (mounted?, fstab lines, content): %q", i, got)
		}
	}
	if out, err := exec.Command("blkid", "-p", dev).CombinedOutput(); err == nil {
		t.Errorf("the deleted disk's device still holds a filesystem: %s", out)
	}
	if got := disks(); len(got) != 0 {
		t.Errorf("disks after both were deleted: %+v", got)
	}
}
