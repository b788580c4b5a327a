package bosh

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// varRe is a BOSH variable reference, ((name)) or ((!name)), as a
// manifest's properties hold them for the director to interpolate.
var varRe = regexp.MustCompile(`\(\((!?[A-Za-z0-9_.:/-]+)\)\)`)

// Variables lists the variable references in a config's property tree,
// as "PATH: ((NAME))" in path order. The engine interpolates none: a job
// would get the text "((name))" itself, so each is worth a warning.
// redacted is the same tree as the engine hands it out: where a value is
// redacted there, the reference is named by its path alone, since a
// secret could look like one.
func Variables(tree, redacted map[string]any, prefix string) []string {
	var out []string
	var walk func(v, red any, path string)
	walk = func(v, red any, path string) {
		switch t := v.(type) {
		case map[string]any:
			rm, _ := red.(map[string]any)
			for k, x := range t {
				walk(x, rm[k], path+"."+k)
			}
		case []any:
			rl, _ := red.([]any)
			for i, x := range t {
				var r any
				if i < len(rl) {
					r = rl[i]
				}
				walk(x, r, fmt.Sprintf("%s[%d]", path, i))
			}
		case string:
			for _, m := range varRe.FindAllStringSubmatch(t, -1) {
				if red != t {
					out = append(out, path+": a ((variable)) in a secret")
					break
				}
				out = append(out, path+": (("+m[1]+"))")
			}
		}
	}
	for k, v := range tree {
		walk(v, redacted[k], prefix+k)
	}
	sort.Strings(out)
	return out
}

// VariablesWarning is the warning for refs (from Variables), "" when
// there are none.
func VariablesWarning(refs []string) string {
	if len(refs) == 0 {
		return ""
	}
	more := ""
	if len(refs) > 5 {
		more = fmt.Sprintf(" and %d more", len(refs)-5)
		refs = refs[:5]
	}
	return fmt.Sprintf("BOSH variables are not interpolated: %s%s reach the jobs as written; put the values themselves in the config",
		strings.Join(refs, ", "), more)
}
