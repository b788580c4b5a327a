package manifestdeploy

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/contract"
)

// minSecret is the shortest value looked for: a shorter one would mark
// places by chance.
const minSecret = 4

// secretValues are the strings of every declared variable's value and
// of every given one: what must not be seen where it went.
func secretValues(decl []manifest.Variable, vars, given manifest.Vars) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for _, x := range t {
				walk(x)
			}
		case []any:
			for _, x := range t {
				walk(x)
			}
		case nil:
		default:
			if s := strings.TrimSpace(fmt.Sprint(t)); len(s) >= minSecret {
				out = append(out, s)
			}
		}
	}
	for _, d := range decl {
		walk(vars[d.Name])
	}
	for _, v := range given {
		walk(v)
	}
	return out
}

// secretPlaces are the places in cfg's jobs and global trees whose
// string holds one of values (contract.Properties.SecretProperties).
func secretPlaces(cfg contract.Config, values []string) []string {
	if len(values) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				walk(x, path+"."+k)
			}
		case []any:
			for _, x := range t {
				walk(x, path)
			}
		case string:
			for _, s := range values {
				if strings.Contains(t, s) {
					seen[path] = true
					return
				}
			}
		}
	}
	for job, tree := range cfg.Properties.Jobs {
		walk(tree, "jobs."+job)
	}
	for ip, jobs := range cfg.Properties.NodeJobs {
		walk(jobs, "node_jobs."+ip)
	}
	walk(map[string]any(cfg.Properties.Global), "global")
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// wholeNumbers gives back a value decoded from JSON with its whole
// numbers as YAML reads them (int, not float64): a variable that gives
// instances: ((n)) must read as a count.
func wholeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = wholeNumbers(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = wholeNumbers(x)
		}
		return out
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int(t)
		}
	}
	return v
}
