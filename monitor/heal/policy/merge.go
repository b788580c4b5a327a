package policy

import (
	"bytes"
	"encoding/json"
	"maps"
)

// Merge is what a writer whose compare-and-set write was refused keeps:
// the stored state (theirs) with what it changed itself (ours) since the
// state both started from (base). It merges field by field and, in the
// held and instance maps, key by key; where both changed the same, ours
// wins, as the last to decide.
func Merge(base, ours, theirs State) State {
	m := theirs
	if ours.Enabled != base.Enabled {
		m.Enabled = ours.Enabled
	}
	if !same(ours.Meltdown, base.Meltdown) {
		m.Meltdown = ours.Meltdown
	}
	m.Held = mergeMap(base.Held, ours.Held, theirs.Held)
	m.Instances = mergeMap(base.Instances, ours.Instances, theirs.Instances)
	return m
}

// mergeMap is theirs with each key ours set, changed or deleted since base.
func mergeMap[V any](base, ours, theirs map[string]V) map[string]V {
	out := maps.Clone(theirs)
	if out == nil {
		out = map[string]V{}
	}
	apply := func(k string) {
		o, inOurs := ours[k]
		b, inBase := base[k]
		switch {
		case inOurs && (!inBase || !same(o, b)):
			out[k] = o
		case !inOurs && inBase:
			delete(out, k)
		}
	}
	for k := range ours {
		apply(k)
	}
	for k := range base {
		apply(k)
	}
	return out
}

// same compares two values as they are stored.
func same(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
