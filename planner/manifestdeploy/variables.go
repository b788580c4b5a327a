package manifestdeploy

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/contract"
)

// Declared is how a kept variable was declared when the engine generated
// it: its type, the digest of its options, the CA that signed it.
type Declared struct {
	Type      string    `json:"type"`
	Digest    string    `json:"digest"`
	CA        string    `json:"ca,omitempty"`
	Generated time.Time `json:"generated,omitzero"`
}

// regenerated are the declared variables to generate anew: those named,
// and every certificate a CA among them signs, down its chain (a leaf
// signed by a CA that changed would no longer verify).
func regenerated(decl []manifest.Variable, names []string) map[string]bool {
	drop := map[string]bool{}
	for _, v := range decl {
		if slices.Contains(names, v.Name) {
			drop[v.Name] = true
		}
	}
	for grew := true; grew; {
		grew = false
		for _, v := range decl {
			if !drop[v.Name] && v.Type == "certificate" && drop[v.Options.CA] {
				drop[v.Name], grew = true, true
			}
		}
	}
	return drop
}

// declare records how each kept variable was declared: as now for one
// generated now, as before for one kept. A kept value whose declaration
// changed since stays (BOSH keeps it too) and a warning says how to have
// it generated anew; so does a name marked for that which the manifest no
// longer declares.
func (res *Result) declare(decl []manifest.Variable, prior Prior, given manifest.Vars, drop map[string]bool) {
	now := time.Now().UTC().Truncate(time.Second)
	byName := map[string]manifest.Variable{}
	for _, v := range decl {
		byName[v.Name] = v
	}
	res.Declared = map[string]Declared{}
	for _, n := range res.Generated {
		v := byName[n]
		res.Declared[n] = Declared{Type: v.Type, Digest: v.Digest(), CA: v.Options.CA, Generated: now}
		if drop[n] {
			res.Regenerated = append(res.Regenerated, n)
		}
	}
	for n := range res.Kept {
		if _, done := res.Declared[n]; done {
			continue
		}
		d, known := prior.Declared[n]
		v, declared := byName[n]
		if !known && declared {
			// A record from before declarations were kept: taken as is.
			d = Declared{Type: v.Type, Digest: v.Digest(), CA: v.Options.CA}
		}
		res.Declared[n] = d
		if _, over := given[n]; declared && known && !over && d.Digest != v.Digest() {
			res.Warnings = append(res.Warnings, fmt.Sprintf("variable %s: its type or options changed since it was generated; it keeps its value: `deployment-engine manifest variables regenerate %s` has it generated anew at the next deploy", n, n))
		}
	}
	for _, n := range prior.Regenerate {
		if _, ok := byName[n]; !ok {
			res.Warnings = append(res.Warnings, fmt.Sprintf("variable %s is marked to be generated anew, but the manifest does not declare it: it stays marked", n))
		}
	}
	sort.Strings(res.Regenerated)
}

// pending are the names still marked to be generated anew once res is
// stored: those the manifest did not declare.
func (res *Result) pending(marked []string) []string {
	var out []string
	for _, n := range marked {
		if !slices.Contains(res.Regenerated, n) && !slices.Contains(res.Generated, n) {
			out = append(out, n)
		}
	}
	return out
}

// variableList is the record's variables as GET /manifest/variables
// shows them: never a value.
func variableList(st State) contract.ManifestVariables {
	out := contract.ManifestVariables{Manifest: st.Name, Variables: []contract.ManifestVariable{}}
	for n := range st.Variables {
		d := st.Declared[n]
		mv := contract.ManifestVariable{Name: n, Type: d.Type, CA: d.CA, Regenerate: slices.Contains(st.Regenerate, n)}
		if !d.Generated.IsZero() {
			g := d.Generated
			mv.Generated = &g
		}
		out.Variables = append(out.Variables, mv)
	}
	sort.Slice(out.Variables, func(i, j int) bool { return out.Variables[i].Name < out.Variables[j].Name })
	return out
}

// signedBy are the kept certificates st says n's chain signs.
func signedBy(st State, n string) []string {
	var out []string
	mark := map[string]bool{n: true}
	for grew := true; grew; {
		grew = false
		for m, d := range st.Declared {
			if !mark[m] && d.CA != "" && mark[d.CA] {
				mark[m], grew = true, true
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out
}
