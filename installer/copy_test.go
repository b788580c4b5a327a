package installer

import (
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

// A copy's step, as the planner makes it: the file replaces what the node
// had at its path with its mode, a small one inline in a chain and one of
// the most a copy takes (4 MiB, sealed on the bus) sent on its own, each
// checked on the node; the step's output is the SHA-256 and size the node
// then has. A file whose content is not its checksum is never written.
func TestCopyStep(t *testing.T) { forTransports(t, testCopyStep) }

func testCopyStep(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	bus.SetSealKey([]byte("installer-test-engine-key-0123456789"))
	dir := t.TempDir()
	big := make([]byte, contract.MaxCopyBytes)
	_, _ = rand.Read(big)
	for _, c := range []struct {
		name    string
		content []byte
		mode    uint32
	}{
		{"motd", []byte("hello\n"), 0o640},
		{"big.bin", big, 0o600},
		{"empty", nil, 0o644},
	} {
		target := filepath.Join(dir, "sub", c.name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, []byte("what the node had before\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ev := runCopy(t, e, target, c.mode, c.content, "")
		sum := sha256.Sum256(c.content)
		got, size, ok := contract.ParseCopyOutput(ev.Output)
		if ev.State != contract.StateSucceeded || !ok || got != hex.EncodeToString(sum[:]) || size != int64(len(c.content)) {
			t.Fatalf("%s: %+v", c.name, ev)
		}
		have, err := os.ReadFile(target)
		st, _ := os.Stat(target)
		if err != nil || string(have) != string(c.content) || st.Mode().Perm() != os.FileMode(c.mode) {
			t.Errorf("%s on the node: %d bytes, mode %v, %v", c.name, len(have), st.Mode().Perm(), err)
		}
		if _, err := os.Stat(target + ".de-tmp"); err == nil {
			t.Errorf("%s: its temporary file was left on the node", c.name)
		}
	}

	target := filepath.Join(dir, "forged")
	ev := runCopy(t, e, target, 0o644, []byte("hello\n"), strings.Repeat("0", 64))
	if ev.State != contract.StateFailed || !strings.Contains(ev.Error, "does not match its checksum") {
		t.Fatalf("a file that is not its checksum: %+v", ev)
	}
	if _, err := os.Stat(target); err == nil {
		t.Error("a file that is not its checksum was written")
	}
}

// runCopy queues a copy's step of content to target (its checksum sum when
// given, else the content's), sealed as the scheduler sends it, and
// returns its final event.
func runCopy(t *testing.T, e *testEnv, target string, mode uint32, content []byte, sum string) contract.StepEvent {
	t.Helper()
	if sum == "" {
		s := sha256.Sum256(content)
		sum = hex.EncodeToString(s[:])
	}
	dep := "d-copy-" + uniq()
	step := contract.Step{V: 1, Deployment: dep, ID: nodeIP + "/copy/copy", Node: nodeIP, Engine: "e-test", Component: "copy", Action: "copy",
		Attempt: 1, Key: "copy.copy", Hash: uniq(), TimeoutS: contract.CopyTimeout, KeepOutput: true, Script: contract.CopyReport(target),
		Files: []contract.StepFile{{Path: target, Mode: mode, Content: content, SHA256: sum}}}
	r := record(t, e, dep)
	b, err := json.Marshal(bus.SealStep(step))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.JS.Publish(context.Background(), subject.Step(dep, nodeIP), b); err != nil {
		t.Fatal(err)
	}
	return r.final(t, 60*time.Second)
}
