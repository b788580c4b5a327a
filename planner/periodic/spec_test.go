package periodic

import (
	"errors"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

func TestParse(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name, expr, zone string
		after, next      string // RFC 3339, UTC
		field            string // the field refused, "" for none
	}{
		{"9:00 in Paris, summer", "0 9 * * *", "Europe/Paris", "2026-07-01T00:00:00Z", "2026-07-01T07:00:00Z", ""},
		{"9:00 in Paris, winter", "0 9 * * *", "Europe/Paris", "2026-12-01T00:00:00Z", "2026-12-01T08:00:00Z", ""},
		{"UTC by default", "30 2 * * 1", "", "2026-12-05T00:00:00Z", "2026-12-07T02:30:00Z", ""},
		{"a descriptor", "@daily", "UTC", "2026-12-05T10:00:00Z", "2026-12-06T00:00:00Z", ""},
		{"every 90 s", "@every 1m30s", "UTC", "2026-12-05T10:00:00Z", "2026-12-05T10:01:30Z", ""},
		{"six fields", "0 0 9 * * *", "UTC", "", "", "cron"},
		{"not cron", "at nine", "UTC", "", "", "cron"},
		{"never due", "0 0 30 2 *", "UTC", "", "", "cron"},
		{"a zone in the expression", "CRON_TZ=Asia/Tokyo 0 9 * * *", "UTC", "", "", "cron"},
		{"an unknown zone", "0 9 * * *", "Mars/Olympus", "", "", "time_zone"},
		{"the machine's zone", "0 9 * * *", "Local", "", "", "time_zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.expr, tc.zone)
			var fe *contract.FieldError
			switch {
			case tc.field != "":
				if !errors.As(err, &fe) || fe.Field != tc.field {
					t.Fatalf("got %v, want a problem with %s", err, tc.field)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got := s.Next(at(tc.after)); !got.Equal(at(tc.next)) {
				t.Fatalf("next after %s: %s, want %s", tc.after, got, tc.next)
			}
		})
	}
}

func TestDues(t *testing.T) {
	s, err := Parse("*/10 * * * *", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now  time.Duration
		last time.Duration
		n    int
	}{
		{9 * time.Minute, 0, 0},
		{10 * time.Minute, 10 * time.Minute, 1},
		{35 * time.Minute, 30 * time.Minute, 3},
	} {
		last, n := s.dues(from, from.Add(tc.now))
		if n != tc.n || (n > 0 && !last.Equal(from.Add(tc.last))) {
			t.Errorf("at +%s: %d dues, last %s; want %d, +%s", tc.now, n, last, tc.n, tc.last)
		}
	}
	// A schedule of every second missed for a long time is gone through
	// a bounded number at a time.
	every, _ := Parse("@every 1s", "UTC")
	if _, n := every.dues(from, from.Add(30*24*time.Hour)); n != maxDues {
		t.Errorf("a month of seconds: %d dues in one look", n)
	}
}
