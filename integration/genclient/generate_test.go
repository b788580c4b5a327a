package genclient

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/deployment-engine/engine/api"
)

// generator is the client generator, at the version the committed client
// was made with. go run builds it from its own module, as its release
// pinned its dependencies, never from this workspace's.
const generator = "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2"

var update = flag.Bool("update", false, "rewrite client.gen.go from the engine's OpenAPI document")

// The committed client is what the generator makes of the document the
// engine serves now: a change to a route or a contract type that the
// generator cannot take, or that changes the client, fails here until
// the client is generated again (go test -run TestClientIsCurrent -update)
// and the end-to-end suite, which deploys through it, still passes.
func TestClientIsCurrent(t *testing.T) {
	doc, err := api.OpenAPI(api.BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	config, err := filepath.Abs("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Building the generator the first time takes a while on a busy
	// machine; later runs take it from the build cache.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", generator, "-config", config, "-o", "client.gen.go", "openapi.json")
	// Outside the workspace: the generator's own go.mod decides its
	// dependencies' versions.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (it needs the module proxy, or the module in the module cache): %v\n%s", generator, err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "client.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("client.gen.go", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("client.gen.go is not what %s makes of the engine's OpenAPI document: "+
			"run go test -run TestClientIsCurrent -update in integration/genclient and review the diff", generator)
	}
}
