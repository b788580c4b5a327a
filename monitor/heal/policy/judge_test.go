package policy

import (
	"testing"
	"time"

	"github.com/deployment-engine/engine/monitor/heal/observe"
	"github.com/deployment-engine/engine/services/contract"
)

// seen is an Observer that sees every instance on the listed nodes down.
type seen map[string]bool

func (s seen) Of(_, ip string, _ time.Time) (observe.Observation, string) {
	if s[ip] {
		return observe.Down, "monit: does not exist"
	}
	return observe.Up, ""
}

func (seen) Settling(string) time.Duration { return time.Second }

// Instances on a node in maintenance are neither healed nor counted by
// the meltdown guard; what auto-heal knew of them is forgotten.
func TestJudgeLeavesNodesInMaintenance(t *testing.T) {
	targets := [][2]string{{"web", "10.0.0.1"}, {"web", "10.0.0.2"}, {"web", "10.0.0.3"}, {"web", "10.0.0.4"}}
	down := seen{"10.0.0.2": true, "10.0.0.3": true}
	r := Rules{Enabled: true, Grace: time.Second, TTL: time.Hour, Percent: 20, MinDown: 1, MaxAttempts: 3, Backoff: time.Second, MaxBackoff: time.Second}
	t0 := time.Now()
	for _, tc := range []struct {
		name        string
		maintenance map[string]bool
		watched     []string
		meltdown    bool
		next        string
	}{
		{"both down nodes in maintenance", map[string]bool{"10.0.0.2": true, "10.0.0.3": true}, nil, false, ""},
		{"one in maintenance", map[string]bool{"10.0.0.3": true}, []string{"web@10.0.0.2"}, false, "web@10.0.0.2"},
		{"none in maintenance", nil, []string{"web@10.0.0.2", "web@10.0.0.3"}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Fresh()
			// What auto-heal knew of the node before it went in maintenance.
			s.Instances["web@10.0.0.3"] = &Instance{Component: "web", IP: "10.0.0.3", State: contract.HealDown, DownSince: t0.Add(-time.Minute)}
			r := r
			r.Maintenance = tc.maintenance
			s.Judge(t0, targets, r, down, false)
			v := s.Judge(t0.Add(2*time.Second), targets, r, down, false)
			if len(s.Instances) != len(tc.watched) {
				t.Fatalf("instances %v, want %v", s.Instances, tc.watched)
			}
			for _, k := range tc.watched {
				if s.Instances[k] == nil {
					t.Fatalf("%s not watched: %v", k, s.Instances)
				}
			}
			if s.Meltdown.Holds() != tc.meltdown {
				t.Fatalf("meltdown %+v, want active %v", s.Meltdown, tc.meltdown)
			}
			if v.Next != tc.next {
				t.Fatalf("next %q, want %q", v.Next, tc.next)
			}
		})
	}
}

// Instances that went down together, seen a moment apart (their
// heartbeats crossed a judgement): the first seen is not healed while
// the others' grace runs, and the guard takes hold once it has. One down
// alone is healed once its grace has passed.
func TestNoAttemptWhileAMeltdownGathers(t *testing.T) {
	targets := [][2]string{{"web", "10.0.0.1"}, {"web", "10.0.0.2"}, {"web", "10.0.0.3"}, {"web", "10.0.0.4"}}
	r := Rules{Enabled: true, Grace: time.Second, TTL: time.Hour, Percent: 20, MinDown: 1, MaxAttempts: 3, Backoff: time.Second, MaxBackoff: time.Second}
	t0 := time.Now()
	s := Fresh()
	s.Judge(t0, targets, r, seen{"10.0.0.1": true}, false)
	all := seen{"10.0.0.1": true, "10.0.0.2": true, "10.0.0.3": true}
	s.Judge(t0.Add(50*time.Millisecond), targets, r, all, false)
	if v := s.Judge(t0.Add(time.Second+10*time.Millisecond), targets, r, all, false); v.Next != "" || s.Meltdown.Holds() {
		t.Fatalf("with two more down within their grace: next %q, meltdown %+v", v.Next, s.Meltdown)
	}
	if v := s.Judge(t0.Add(time.Second+60*time.Millisecond), targets, r, all, false); v.Next != "" || !s.Meltdown.Holds() {
		t.Fatalf("once their grace passed: next %q, meltdown %+v", v.Next, s.Meltdown)
	}

	alone := Fresh()
	alone.Judge(t0, targets, r, seen{"10.0.0.1": true}, false)
	if v := alone.Judge(t0.Add(time.Second+10*time.Millisecond), targets, r, seen{"10.0.0.1": true}, false); v.Next != "web@10.0.0.1" {
		t.Fatalf("one down alone: next %q", v.Next)
	}
}
