package sched

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// A large file that many steps share (a copy of 4 MiB to 40 nodes) is
// stored once, sealed, so the deployment's steps fit one value of the
// bucket (the bus carries 8 MiB at most); each step reads back its own
// content whole, and a content that its checksum does not name stays
// with its step.
func TestSharedFilesStoredOnce(t *testing.T) {
	bus.SetSealKey([]byte("scheduler-blob-test-key-0123456789"))
	big := bytes.Repeat([]byte("0123456789abcdef"), contract.MaxCopyBytes/16)
	sum := sha256.Sum256(big)
	hexSum := hex.EncodeToString(sum[:])
	doc := specDoc{Specs: map[string]contract.Step{}, Prios: map[string]int{}}
	for i := range 40 {
		id := fmt.Sprintf("10.0.0.%d/web/copy", i)
		doc.Specs[id] = contract.Step{ID: id, Files: []contract.StepFile{{Path: "/etc/big", Mode: 0o644, Content: big, SHA256: hexSum}}}
	}
	odd := append(bytes.Clone(big[:blobMin]), 'x')
	doc.Specs["odd"] = contract.Step{ID: "odd", Files: []contract.StepFile{{Path: "/etc/odd", Content: odd, SHA256: hexSum}}}
	doc.Specs["small"] = contract.Step{ID: "small", Files: []contract.StepFile{{Path: "/etc/small", Content: []byte("hi\n"), SHA256: "x"}}}
	b, err := encodeSpecs(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 6<<20 || bytes.Contains(b, big[:64]) {
		t.Fatalf("stored steps: %d bytes (the file is %d), in the clear: %v", len(b), len(big), bytes.Contains(b, big[:64]))
	}
	back, err := decodeSpecs(b)
	if err != nil {
		t.Fatal(err)
	}
	for id, sp := range back.Specs {
		want := doc.Specs[id].Files[0].Content
		if f := sp.Files[0]; !bytes.Equal(f.Content, want) || f.Sealed {
			t.Errorf("%s: %d bytes back, want %d", id, len(f.Content), len(want))
		}
	}
	if len(back.Specs) != len(doc.Specs) || back.Blobs != nil {
		t.Fatalf("%d steps back of %d; blobs %d", len(back.Specs), len(doc.Specs), len(back.Blobs))
	}
	if len(doc.Specs["10.0.0.1/web/copy"].Files[0].Content) != len(big) {
		t.Fatal("encoding emptied the caller's steps")
	}
}
