package policy

import (
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// A writer refused by another's write keeps the other's changes and its
// own: field by field, key by key, its own where both changed the same.
func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	down := func(ip string, n int) *Instance {
		return &Instance{Component: "web", IP: ip, State: contract.HealDown, Attempts: n, DownSince: t0}
	}
	base := State{Enabled: true, Held: map[string]time.Time{"web@a": t0},
		Instances: map[string]*Instance{"web@b": down("b", 1), "web@c": down("c", 1)}}
	ours := State{Enabled: true, Held: map[string]time.Time{"web@a": t0, "web@d": t0}, // held d
		Instances: map[string]*Instance{"web@b": down("b", 2)}} // tried b again, c came back
	theirs := State{Enabled: false, Held: map[string]time.Time{}, // switched off, released a
		Instances: map[string]*Instance{"web@b": down("b", 1), "web@c": down("c", 3), "web@e": down("e", 0)}}

	m := Merge(base, ours, theirs)
	if m.Enabled {
		t.Error("their switch-off is lost")
	}
	if _, ok := m.Held["web@a"]; ok {
		t.Error("their release of a is lost")
	}
	if _, ok := m.Held["web@d"]; !ok {
		t.Error("our hold of d is lost")
	}
	if in := m.Instances["web@b"]; in == nil || in.Attempts != 2 {
		t.Errorf("our attempt on b is lost: %+v", in)
	}
	if _, ok := m.Instances["web@c"]; ok {
		t.Error("c, which both changed, is not ours (gone)")
	}
	if m.Instances["web@e"] == nil {
		t.Error("their e is lost")
	}
}
