package policy

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/deployment-engine/engine/monitor/heal/observe"
	"github.com/deployment-engine/engine/services/contract"
)

// Observer is what the heartbeats say of instances and nodes.
type Observer interface {
	Of(comp, ip string, now time.Time) (observe.Observation, string)
	Settling(ip string) time.Duration
}

// Verdict is what one judgement found.
type Verdict struct {
	// Next is the key of the instance to try now, if any.
	Next    string
	Changed bool
	Notes   []Note
}

// Judge looks at every instance the config places (targets) once at now:
// it records what went down or came back, applies the meltdown guard, and
// chooses the instance to try next unless busy (an attempt runs).
func (s *State) Judge(now time.Time, targets [][2]string, r Rules, obs Observer, busy bool) Verdict {
	var v Verdict
	total := s.see(now, targets, r, obs, &v)
	changed, notes := s.Meltdown.Judge(s.Instances, total, r, r.Enabled && s.Enabled, now)
	v.Changed = v.Changed || changed
	v.Notes = append(v.Notes, notes...)
	if r.Enabled && s.Enabled && !s.Meltdown.Holds() && !s.Meltdown.Gathering(s.Instances, total, r, now) && !busy {
		v.Next = s.next(now, r, obs)
	}
	return v
}

// see records what the heartbeats say of each watched instance: one seen
// down starts to count, one seen running again is let go. It returns how
// many instances are watched: neither the components the rules turn off
// nor the nodes in maintenance are; what was known of them is forgotten.
func (s *State) see(now time.Time, targets [][2]string, r Rules, obs Observer, v *Verdict) int {
	total := 0
	watched := map[string]bool{}
	for _, t := range targets {
		comp, ip := t[0], t[1]
		if slices.Contains(r.Off, comp) || r.Maintenance[ip] {
			continue
		}
		total++
		k := Key(comp, ip)
		watched[k] = true
		o, why := obs.Of(comp, ip, now)
		in := s.Instances[k]
		heldSince, held := s.Held[k]
		switch o {
		case observe.Up:
			// Started again by someone (a deploy, by hand): no longer held.
			// Heartbeats lag the stop, so a "running" seen soon after it
			// says nothing.
			if held && now.Sub(heldSince) > obs.Settling(ip) {
				delete(s.Held, k)
				v.Changed = true
			}
			if in != nil && in.State != contract.HealHealing {
				if in.Attempts > 0 || in.State == contract.HealFailing {
					v.Notes = append(v.Notes, Note{Kind: "recovered", Component: comp, IP: ip, Attempt: in.Attempts, Result: "ok",
						Message: fmt.Sprintf("%s on %s runs again", comp, ip)})
				}
				delete(s.Instances, k)
				v.Changed = true
			}
		case observe.Down, observe.Silent:
			if held {
				continue
			}
			if in == nil {
				in = &Instance{Component: comp, IP: ip, State: contract.HealDown, DownSince: now}
				s.Instances[k] = in
				v.Changed = true
			}
			if in.State == contract.HealDown {
				in.Reason = why
			}
		}
	}
	for k := range s.Instances {
		if !watched[k] {
			delete(s.Instances, k)
			v.Changed = true
		}
	}
	return total
}

// next is the key of the instance to heal now: the one down longest whose
// grace and back-off have passed, on a node that reports; "" when none is.
func (s *State) next(now time.Time, r Rules, obs Observer) string {
	var ready []*Instance
	for _, in := range s.Instances {
		if in.State != contract.HealDown || now.Sub(in.DownSince) < r.Grace || now.Before(in.Next) {
			continue
		}
		if o, _ := obs.Of(in.Component, in.IP, now); o != observe.Down {
			continue
		}
		ready = append(ready, in)
	}
	if len(ready) == 0 {
		return ""
	}
	sort.Slice(ready, func(a, b int) bool { return ready[a].DownSince.Before(ready[b].DownSince) })
	for _, in := range s.Instances {
		if in != ready[0] {
			in.Waiting = "" // only the next one waits on the planner
		}
	}
	return Key(ready[0].Component, ready[0].IP)
}
