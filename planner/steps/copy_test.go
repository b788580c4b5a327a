package steps

import (
	"reflect"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestCopySteps(t *testing.T) {
	in := Builder{ID: "d-1", Engine: "e-1"}
	planned, batches := in.CopySteps("web", [][]string{{"10.0.0.1", "10.0.0.2"}, {"10.0.0.3"}}, "/etc/motd", 0o640, []byte("hello\n"))
	if len(planned) != 3 || len(batches) != 2 || !reflect.DeepEqual(batches[1].Steps, []string{"10.0.0.3/web/copy"}) {
		t.Fatalf("steps %d, batches %+v", len(planned), batches)
	}
	if last := planned[2]; !reflect.DeepEqual(last.After, []string{"10.0.0.1/web/copy", "10.0.0.2/web/copy"}) || planned[0].After != nil {
		t.Errorf("order: first after %v, last after %v", planned[0].After, last.After)
	}
	want := contract.StepFile{Path: "/etc/motd", Mode: 0o640, Content: []byte("hello\n"), SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}
	for _, p := range planned {
		s := p.Spec
		if len(s.Files) != 1 || !reflect.DeepEqual(s.Files[0], want) || s.Script != contract.CopyReport("/etc/motd") || !s.KeepOutput ||
			s.Action != CopyAction || s.Key != "web.copy" || s.Deployment != "d-1" || s.Engine != "e-1" || s.TimeoutS != contract.CopyTimeout {
			t.Errorf("spec: %+v", s)
		}
	}
	if planned[0].Spec.Hash == planned[1].Spec.Hash {
		t.Error("two nodes' steps share a hash")
	}
	again, _ := Builder{ID: "d-2"}.CopySteps("web", [][]string{{"10.0.0.1"}}, "/etc/motd", 0o640, []byte("hello\n"))
	if again[0].Spec.Hash == planned[0].Spec.Hash {
		t.Error("a second copy's step has the first's hash: it would be found done")
	}
}

// A copy from the nodes sends no file: each step names the path the
// installer reads back, its script the read.
func TestCopyFromSteps(t *testing.T) {
	planned, batches := Builder{ID: "d-1", Engine: "e-1"}.CopyFromSteps("copy", [][]string{{"10.0.0.1"}, {"10.0.0.2"}}, "/etc/motd")
	if len(planned) != 2 || len(batches) != 2 || !reflect.DeepEqual(planned[1].After, []string{"10.0.0.1/copy/copy"}) {
		t.Fatalf("steps %d, batches %+v", len(planned), batches)
	}
	for _, p := range planned {
		s := p.Spec
		if s.ReadBack != "/etc/motd" || len(s.Files) != 0 || s.Script != contract.CopyRead("/etc/motd") || !s.KeepOutput || s.Action != CopyAction {
			t.Errorf("spec: %+v", s)
		}
	}
}
