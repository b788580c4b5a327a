package engine

import (
	"strings"
	"testing"
)

func TestCheckOnly(t *testing.T) {
	for _, tc := range []struct {
		only []string
		err  string
	}{
		{nil, ""},
		{[]string{"api", "planner"}, ""},
		{[]string{"installer"}, ""},
		{[]string{"api", "monitor", "notify", "logs", "planner", "installer"}, ""},
		{[]string{"api", "planer"}, `unknown service "planer"; the services are api, planner, installer, monitor, notify, logs`},
		{[]string{""}, `unknown service ""`},
		{[]string{"log", "heal"}, `unknown service "log", "heal"`},
	} {
		err := CheckOnly(tc.only)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CheckOnly(%q) = %v, want %q", tc.only, err, tc.err)
		}
	}
}
