package contract

import (
	"strings"
	"testing"
)

func TestInstancesOf(t *testing.T) {
	cfg := Config{Components: map[string][]string{"web": {"10.0.0.2", "10.0.0.3"}}}
	for _, c := range []struct{ comp, ip, want, err string }{
		{"web", "0.0.0.0", "10.0.0.2 10.0.0.3", ""},
		{"web", "10.0.0.3", "10.0.0.3", ""},
		{"web", "10.0.0.9", "", "component web does not run on 10.0.0.9 (it runs on 10.0.0.2, 10.0.0.3)"},
		{"db", "0.0.0.0", "", `the config has no component "db"`},
	} {
		got, err := cfg.InstancesOf(c.comp, c.ip)
		if strings.Join(got, " ") != c.want || (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
			t.Errorf("InstancesOf(%s, %s) = %q, %v; want %q, %q", c.comp, c.ip, got, err, c.want, c.err)
		}
	}
}
