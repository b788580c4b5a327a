package manifestdeploy

import (
	"strings"
	"testing"
)

// A named cluster takes only the manifest of its name; the default one
// takes any, as before clusters had names.
func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		cluster, name string
		ok            bool
	}{
		{"", "cf", true},
		{"default", "cf", true},
		{"cf", "cf", true},
		{"cf", "redis", false},
		{"prod", "", false},
	} {
		err := Book{Cluster: tc.cluster}.checkName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("cluster %q, manifest %q: %v", tc.cluster, tc.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "path: /name, value: "+tc.cluster) {
			t.Errorf("the refusal does not say how to rename it: %v", err)
		}
	}
}
