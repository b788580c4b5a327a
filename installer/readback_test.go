package installer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// A copy from the node, as the planner makes its step: the file, up to 4
// MiB and binary, lands in the copies store as the node has it, and the
// step's output is its SHA-256 and size; a missing file and one over the
// bound fail the step naming why, and store nothing.
func TestReadBackStep(t *testing.T) { forTransports(t, testReadBackStep) }

func testReadBackStep(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dir := t.TempDir()
	big := make([]byte, contract.MaxCopyBytes)
	_, _ = rand.Read(big)
	for _, c := range []struct {
		name    string
		content []byte // nil: no file
		fails   string
	}{
		{"motd", []byte("hello\n"), ""},
		{"empty", []byte{}, ""},
		{"big.bin", big, ""},
		{"too-big.bin", append(big, 'x'), "more than 4194304 (4 MiB)"},
		{"missing", nil, "no file at"},
	} {
		path := filepath.Join(dir, c.name)
		if c.content != nil {
			if err := os.WriteFile(path, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		dep, ev := runReadBack(t, e, path)
		kept, err := e.res.Copies.GetBytes(context.Background(), bus.CopyObject(dep, nodeIP))
		if c.fails != "" {
			if ev.State != contract.StateFailed || !strings.Contains(ev.Error, c.fails) || err == nil {
				t.Errorf("%s: %+v; stored: %v", c.name, ev, err)
			}
			continue
		}
		sum := sha256.Sum256(c.content)
		got, size, ok := contract.ParseCopyOutput(ev.Output)
		if ev.State != contract.StateSucceeded || !ok || got != hex.EncodeToString(sum[:]) || size != int64(len(c.content)) {
			t.Fatalf("%s: %+v", c.name, ev)
		}
		if err != nil || !bytes.Equal(kept, c.content) {
			t.Errorf("%s: stored %d bytes, %v", c.name, len(kept), err)
		}
	}
}

// runReadBack queues a copy's step that reads path back, and returns its
// deployment and final event.
func runReadBack(t *testing.T, e *testEnv, path string) (string, contract.StepEvent) {
	t.Helper()
	dep := "d-copy-" + uniq()
	step := contract.Step{V: 1, Deployment: dep, ID: nodeIP + "/copy/copy", Node: nodeIP, Engine: "e-test", Component: "copy", Action: "copy",
		Attempt: 1, Key: "copy.copy", Hash: uniq(), TimeoutS: contract.CopyTimeout, KeepOutput: true, Script: contract.CopyRead(path), ReadBack: path}
	r := record(t, e, dep)
	b, err := json.Marshal(step)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.JS.Publish(context.Background(), subject.Step(dep, nodeIP), b); err != nil {
		t.Fatal(err)
	}
	return dep, r.final(t, 60*time.Second)
}
