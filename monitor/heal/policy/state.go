package policy

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// State is what auto-heal keeps across restarts. Its methods change it
// and say what to publish; the caller holds whatever lock guards it.
type State struct {
	Enabled  bool  `json:"enabled"`
	Meltdown Guard `json:"meltdown"`
	// Held are the instances stopped through the API, since when.
	Held      map[string]time.Time `json:"held,omitempty"`
	Instances map[string]*Instance `json:"instances,omitempty"`
}

// Instance is one instance auto-heal is working on.
type Instance struct {
	Component string    `json:"component"`
	IP        string    `json:"ip"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	DownSince time.Time `json:"down_since"`
	Next      time.Time `json:"next"`
	Reason    string    `json:"reason,omitempty"`
	// Waiting says why its attempt, due, has not started.
	Waiting string `json:"waiting,omitempty"`
	// Acked marks an instance that was down when the operator switched
	// auto-heal on again: the meltdown guard counts only new failures.
	Acked bool `json:"acked,omitempty"`
}

// Note is an event auto-heal publishes (none when Kind is empty), with
// the audit entry it records, if any.
type Note struct {
	Kind, Component, IP string
	Attempt             int
	Result, Message     string
	Level               slog.Level
	Audit               *contract.AuditEntry
}

// Key names an instance in State.
func Key(comp, ip string) string { return comp + "@" + ip }

// Fresh is the state of an engine that kept none: on, nothing held.
func Fresh() State {
	return State{Enabled: true, Held: map[string]time.Time{}, Instances: map[string]*Instance{}}
}

// Resume readies a kept state for a new run: an attempt that was under
// way ended with the process that ran it, and is tried again.
func (s *State) Resume() {
	if s.Instances == nil {
		s.Instances = map[string]*Instance{}
	}
	if s.Held == nil {
		s.Held = map[string]time.Time{}
	}
	for _, in := range s.Instances {
		if in.State == contract.HealHealing {
			in.State = contract.HealDown
		}
	}
}

// DeploymentStarted forgets what was seen down and not yet tried: a
// deployment installs and starts things, and what it leaves down is
// judged afresh once it has ended. While an attempt runs nothing is
// forgotten: the deployment is, most often, the attempt's own re-apply of
// one instance, which leaves the others down, and forgetting them let the
// meltdown guard go while they still were.
func (s *State) DeploymentStarted() {
	for _, in := range s.Instances {
		if in.State == contract.HealHealing {
			return
		}
	}
	for k, in := range s.Instances {
		if in.State == contract.HealDown && in.Attempts == 0 {
			delete(s.Instances, k)
		}
	}
}

// Operator follows an operator's stop (hold is true) or restart of the
// instance k at now: a stopped instance is left down until it is
// restarted or runs again.
func (s *State) Operator(k string, hold bool, now time.Time) {
	if hold {
		s.Held[k] = now
	} else {
		delete(s.Held, k)
	}
	delete(s.Instances, k)
}

// Begin starts the attempt on k unless something changed since it was
// chosen (a stop, auto-heal switched off, the guard) or waiting says why
// it must wait. It tells whether the attempt starts.
func (s *State) Begin(k, waiting string) bool {
	in := s.Instances[k]
	if in == nil || in.State != contract.HealDown || !s.Enabled || s.Meltdown.Holds() {
		return false
	}
	if waiting != "" {
		in.Waiting = waiting
		return false
	}
	in.State, in.Waiting = contract.HealHealing, ""
	return true
}

// Attempt is the number the next attempt on k carries.
func (s *State) Attempt(k string) int {
	if in := s.Instances[k]; in != nil {
		return in.Attempts + 1
	}
	return 1
}

// Outcome is how one attempt ended.
type Outcome struct {
	Component, IP string
	Attempt       int
	// Interrupted: auto-heal stopped during the attempt, which does not
	// count.
	Interrupted bool
	OK          bool
	Reason      string
}

// Finish records how an attempt ended at now: recovered, failing at the
// limit, or down with its next attempt backed off. It tells whether the
// state changed, and what to publish.
func (s *State) Finish(o Outcome, r Rules, now time.Time) (bool, []Note) {
	k := Key(o.Component, o.IP)
	in := s.Instances[k]
	if in == nil {
		return false, nil
	}
	n := o.Attempt
	note := Note{Component: o.Component, IP: o.IP, Attempt: n, Result: "failed"}
	switch {
	case o.Interrupted:
		in.State, in.Reason = contract.HealDown, "attempt interrupted: auto-heal stopped"
		return true, nil
	case o.OK:
		delete(s.Instances, k)
		note.Kind, note.Result = "recovered", "ok"
		note.Message = fmt.Sprintf("%s on %s runs again after attempt %d", o.Component, o.IP, n)
	case n >= r.MaxAttempts:
		in.Attempts, in.State = n, contract.HealFailing
		in.Reason = fmt.Sprintf("failing after %d attempts: %s", n, o.Reason)
		note.Kind, note.Message = "failing", in.Reason
		note.Audit = &contract.AuditEntry{Action: contract.AuditHealFailing, Object: k, Component: o.Component, IP: o.IP, Result: "failed", Detail: in.Reason}
	default:
		wait := r.Wait(n)
		in.Attempts, in.Reason, in.State, in.Next = n, o.Reason, contract.HealDown, now.Add(wait)
		note.Kind = "backoff"
		note.Message = fmt.Sprintf("attempt %d of %d failed (%s); next in %s", n, r.MaxAttempts, o.Reason, wait.Round(time.Second))
	}
	return true, []Note{note}
}

// Switch turns auto-heal on or off at now, as PUT /heal does: on lifts
// the meltdown guard and gives every instance down or failing a new
// start, its grace counted from now. It returns the message to publish.
func (s *State) Switch(on bool, actor string, now time.Time) Note {
	s.Enabled = on
	if !on {
		return Note{Kind: "disabled", Result: "ok", Message: "auto-heal switched off by " + actor}
	}
	msg := "auto-heal switched on by " + actor
	if s.Meltdown.Lift() {
		msg += "; the meltdown guard is lifted"
	}
	for k, i := range s.Instances {
		if i.State == contract.HealFailing || i.State == contract.HealDown {
			s.Instances[k] = &Instance{Component: i.Component, IP: i.IP, State: contract.HealDown, DownSince: now, Acked: true}
		}
	}
	return Note{Kind: "enabled", Result: "ok", Message: msg}
}

// View is the state as GET /heal shows it; configEnabled is the heal
// property's switch.
func (s *State) View(configEnabled bool) contract.HealState {
	out := contract.HealState{Enabled: s.Enabled, ConfigEnabled: configEnabled, Meltdown: s.Meltdown.Meltdown, Instances: []contract.HealedInstance{}}
	for _, k := range contract.SortedKeys(s.Held) {
		comp, ip, _ := strings.Cut(k, "@")
		out.Instances = append(out.Instances, contract.HealedInstance{Component: comp, IP: ip, State: contract.HealHeld, Reason: "stopped through the API"})
	}
	for _, k := range contract.SortedKeys(s.Instances) {
		in := s.Instances[k]
		hi := contract.HealedInstance{Component: in.Component, IP: in.IP, State: in.State, Attempts: in.Attempts, Reason: in.Reason}
		if in.Waiting != "" {
			hi.Reason = in.Waiting + "; " + in.Reason
		}
		ds := in.DownSince.UTC()
		hi.DownSince = &ds
		if in.State == contract.HealDown && !in.Next.IsZero() {
			nx := in.Next.UTC()
			hi.Next = &nx
		}
		out.Instances = append(out.Instances, hi)
	}
	return out
}
