package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// Upload bombs over HTTP, under the default limits: a 2 MB tarball that
// unpacks to 2 GiB and a 0.5 MB one whose release.MF is 512 MiB get 413
// naming the limit and its flag, <data>/releases holds nothing of them
// afterwards, and the engine's resident memory stays under 150 MB
// throughout (the audit saw 2 GB stored and 1.66 GB resident).
func TestReleaseUploadBombs(t *testing.T) {
	dir := t.TempDir()
	base, stop := engineUnderTest(t, dir)
	defer stop()
	E := base + "/deployment-engine"

	var twoGiB []releasetest.Entry
	for i := range 32 {
		twoGiB = append(twoGiB, releasetest.Entry{Name: fmt.Sprintf("./packages/p%d.tgz", i), MiB: 64})
	}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"2 MB unpacking to 2 GiB", releasetest.Bomb(twoGiB...), "--release-max-expansion"},
		{"release.MF of 512 MiB", releasetest.Bomb(releasetest.Entry{Name: "./release.MF", MiB: 512}), "release.MF: larger than 256 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peakReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			code, body, _ := do(t, "POST", E+"/releases", string(tc.body), true)
			if code != 413 || !strings.Contains(string(body), tc.want) || !strings.Contains(string(body), "(raise it with --release-max-") {
				t.Errorf("%d KiB upload: %d %s", len(tc.body)>>10, code, body)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "releases")); len(entries) != 0 {
				t.Errorf("<data>/releases holds %v", entries)
			}
			if peakReset != nil {
				t.Logf("peak RSS not measured: %v", peakReset)
				return
			}
			if hwm := peakRSS(t); hwm > 150<<20 {
				t.Errorf("peak RSS %d MB during the upload", hwm>>20)
			} else {
				t.Logf("peak RSS %d MB during a %d KiB upload", hwm>>20, len(tc.body)>>10)
			}
		})
	}
	// The engine still takes a real release after them.
	b, err := os.ReadFile("../../planner/release/testdata/dummy-release.tgz")
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := do(t, "POST", E+"/releases", string(b), true); code != 201 {
		t.Errorf("real release after the bombs: %d %s", code, body)
	}
}

// peakRSS is this process's peak resident memory (VmHWM) since it was last
// reset through /proc/self/clear_refs.
func peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
