package contract

import (
	"strings"
	"testing"
	"time"
)

// The warning thresholds at their edges, on a fixed clock: a certificate
// warns once it has fewer than 30 (then 7) days left, not at exactly 30,
// and an expired one stays at 7.
func TestWarnThreshold(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name string
		left time.Duration
		want int
		days int
	}{
		{"a year", 365 * day, 0, 365},
		{"30 days and a second", 30*day + time.Second, 0, 30},
		{"exactly 30 days", 30 * day, 0, 30},
		{"30 days less a second", 30*day - time.Second, 30, 29},
		{"7 days and a second", 7*day + time.Second, 30, 7},
		{"exactly 7 days", 7 * day, 30, 7},
		{"7 days less a second", 7*day - time.Second, 7, 6},
		{"a second", time.Second, 7, 0},
		{"expired now", 0, 7, 0},
		{"expired a day ago", -day, 7, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Certificate{Name: "api", Subject: "CN=x", NotAfter: now.Add(tc.left)}
			if got := c.WarnThreshold(now); got != tc.want {
				t.Errorf("WarnThreshold = %d, want %d", got, tc.want)
			}
			if got := c.DaysLeft(now); got != tc.days {
				t.Errorf("DaysLeft = %d, want %d", got, tc.days)
			}
			if tc.want == 0 {
				return
			}
			msg := c.Expiring(tc.want, now)
			if tc.left <= 0 && !strings.Contains(msg, "EXPIRED") || tc.left > 0 && !strings.Contains(msg, "fewer than") {
				t.Errorf("Expiring = %q", msg)
			}
		})
	}
}
