package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The Releases view uploads a release tarball through the browser to the
// real engine, shows a refused one with the engine's reason, and lists
// what is stored.
func TestConsoleReleases(t *testing.T) {
	base := startEngine(t)
	b := newBrowser(t)
	dummy, err := filepath.Abs("../../planner/release/testdata/dummy-release.tgz")
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(t.TempDir(), "not-a-release.tgz")
	if err := os.WriteFile(junk, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.signIn(base, "Releases")
	b.run("open releases", chromedp.Navigate(base+"/#/releases"))
	b.waitText("#releases-body", "No release uploaded yet")

	b.run("choose a file that is no release", chromedp.SetUploadFiles(chromedp.ID("release-file"), []string{junk}))
	b.click("#release-upload")
	b.waitText("#release-upload-result", "Refused: not a valid BOSH release")

	b.run("choose the dummy release", chromedp.SetUploadFiles(chromedp.ID("release-file"), []string{dummy}))
	b.click("#release-upload")
	b.waitText("#release-upload-result", "dummy/0.2-dev uploaded: 5 jobs, 2 packages")
	row := b.waitText(`#releases-table tr[data-release="dummy/0.2-dev"]`, "dummy_with_properties")
	if want := "bad_package, dummy_package"; !strings.Contains(row, want) {
		t.Errorf("release row %q lacks %q", row, want)
	}
}
