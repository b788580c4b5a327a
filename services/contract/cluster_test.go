package contract

import (
	"strings"
	"testing"
)

func TestCheckClusterName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{DefaultCluster, true},
		{"prod", true},
		{"cf-1", true},
		{"0", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Prod", false},
		{"-prod", false},
		{"prod-", false},
		{"a.b", false},
		{"a*", false},
		{"a b", false},
		{"dev,prod", false},
	} {
		if err := CheckClusterName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckClusterName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
