package contract

import (
	"strings"
	"testing"
	"time"
)

func TestCheckMaintenanceReason(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"disk replaced by hand — back at 14:00", true},
		{strings.Repeat("x", MaxMaintenanceReason), true},
		{strings.Repeat("x", MaxMaintenanceReason+1), false},
		{"line\nbreak", false},
		{"esc \x1b[31mred", false},
		{"del \x7f", false},
		{"c1 \u0085", false},
		{"bad \xff utf8", false},
	} {
		if err := CheckMaintenanceReason(tc.in); (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestCheckNodeIP(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"10.0.0.1", true},
		{"fd00::1", true},
		{"", false},
		{"10.0.0.1:22", false},
		{"010.0.0.1", false},
		{"fe80::1%eth0", false},
		{"node-1", false},
		{"10.0.0.1 ", false},
	} {
		if err := CheckNodeIP(tc.in); (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestNodeMaintenanceDescribe(t *testing.T) {
	since := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	m := NodeMaintenance{IP: "10.0.0.2", On: true, Reason: "disk", Actor: "alice", Since: &since}
	if got, want := m.Describe(), "maintenance: disk (by alice, since 2026-11-24T10:00:00Z)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	m.Reason = ""
	if got := m.Describe(); !strings.Contains(got, "no reason given") {
		t.Fatalf("no reason: %q", got)
	}
}
