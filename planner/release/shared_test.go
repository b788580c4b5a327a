package release_test

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // BOSH's release index records sha1.
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

func objects(t *testing.T, obs jetstream.ObjectStore) int {
	t.Helper()
	infos, err := obs.List(context.Background())
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(infos)
}

// Two shared stores over one bus: what one stores the other opens and
// serves; a refused upload and a conflicting one leave the bucket as it
// was; a release of a data dir from before the bus is moved into it.
func TestSharedStore(t *testing.T) {
	ctx := context.Background()
	res := bustest.Start(t, bus.ServerOptions{}).Res
	obs := res.Releases

	legacyDir := t.TempDir()
	legacy, _ := release.NewStore(legacyDir)
	old := good()
	old.Version = "0.9"
	if _, _, err := legacy.Import(ctx, bytes.NewReader(releasetest.Build(old))); err != nil {
		t.Fatal(err)
	}
	a, err := release.NewSharedStore(ctx, legacyDir, release.Limits{}, obs, res.Engine, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := release.NewSharedStore(ctx, t.TempDir(), release.Limits{}, obs, res.Engine, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := b.Get("r", "0.9"); err != nil || rel.Specs["j"] == nil {
		t.Fatalf("the data dir's release from before, through the other store: %v", err)
	}

	r := good()
	r.Version = "1"
	if _, created, err := a.Import(ctx, bytes.NewReader(releasetest.Build(r))); err != nil || !created {
		t.Fatalf("import: %v %v", created, err)
	}
	rel, err := b.Get("r", "")
	if err != nil || rel.Version != "1" || rel.Specs["j"] == nil {
		t.Fatalf("latest through the other store: %+v %v", rel, err)
	}
	if list, err := b.List(ctx); err != nil || len(list) != 2 {
		t.Fatalf("list through the other store: %v %v", list, err)
	}
	file, err := b.PackageFile(ctx, "r", "1", "p")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(file)
	p, _ := rel.Package("p")
	if sum := sha1.Sum(body); hex.EncodeToString(sum[:]) != p.SHA1 { //nolint:gosec
		t.Errorf("package through the other store: sha1 %x, release.MF %s", sum, p.SHA1)
	}
	var nf *release.NotFound
	if _, err := b.PackageFile(ctx, "r", "1", "nope"); !errors.As(err, &nf) {
		t.Errorf("a package the release lacks: %v", err)
	}
	if _, created, err := b.Import(ctx, bytes.NewReader(releasetest.Build(r))); err != nil || created {
		t.Errorf("the same release again through the other store: created %v, %v", created, err)
	}

	n := objects(t, obs)
	bad := good()
	bad.Version, bad.Tamper = "2", "jobs/j.tgz"
	var br *release.BadRelease
	if _, _, err := a.Import(ctx, bytes.NewReader(releasetest.Build(bad))); !errors.As(err, &br) {
		t.Fatalf("tampered: %v", err)
	}
	other := good()
	other.Version = "1"
	other.Packages[0].Files["more"] = "x"
	var c *release.Conflict
	if _, _, err := b.Import(ctx, bytes.NewReader(releasetest.Build(other))); !errors.As(err, &c) {
		t.Fatalf("other contents under a stored version: %v", err)
	}
	if got := objects(t, obs); got != n {
		t.Errorf("refused uploads changed the bucket: %d objects, want %d", got, n)
	}
	if _, err := os.Stat(legacyDir + "/r/2"); !os.IsNotExist(err) {
		t.Errorf("the tampered release is in the data dir: %v", err)
	}
}

// Two API processes storing one version with other contents at the same
// moment: exactly one stores it and says so, the other is refused, and
// both then serve the one stored. Ten rounds, each started together.
func TestSharedStoreSameVersionAtOnce(t *testing.T) {
	ctx := context.Background()
	res := bustest.Start(t, bus.ServerOptions{}).Res
	var stores [2]*release.Store
	for i := range stores {
		var err error
		if stores[i], err = release.NewSharedStore(ctx, t.TempDir(), release.Limits{}, res.Releases, res.Engine, nil); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 10 {
		version := fmt.Sprintf("race-%d", round)
		var bodies [2][]byte
		for i := range bodies {
			r := good()
			r.Version = version
			r.Packages[0].Files["which"] = fmt.Sprint(i)
			bodies[i] = releasetest.Build(r)
		}
		var created [2]bool
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, created[i], errs[i] = stores[i].Import(ctx, bytes.NewReader(bodies[i]))
			}()
		}
		close(start)
		wg.Wait()
		won := -1
		for i := range stores {
			var c *release.Conflict
			switch {
			case errs[i] == nil && created[i]:
				if won >= 0 {
					t.Fatalf("round %d: both uploads say they stored %s", round, version)
				}
				won = i
			case !errors.As(errs[i], &c):
				t.Fatalf("round %d: upload %d: created %v, %v (want stored, or a conflict)", round, i, created[i], errs[i])
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither upload stored %s: %v", round, version, errs)
		}
		for i, st := range stores {
			rel, err := st.Get("r", version)
			if err != nil {
				t.Fatalf("round %d: store %d: %v", round, i, err)
			}
			file, err := st.PackageFile(ctx, "r", version, "p")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := os.ReadFile(file)
			p, _ := rel.Package("p")
			if sum := sha1.Sum(body); hex.EncodeToString(sum[:]) != p.SHA1 { //nolint:gosec
				t.Fatalf("round %d: store %d serves a package that is not its release.MF's", round, i)
			}
			want, _ := stores[won].Get("r", version)
			if wp, _ := want.Package("p"); wp.SHA1 != p.SHA1 {
				t.Fatalf("round %d: store %d serves the loser's contents", round, i)
			}
		}
	}
}
