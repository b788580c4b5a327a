package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// HealConfig is the config's "heal" property: auto-heal for the whole
// cluster (true or false) or an object that tunes it. Zero fields take the
// defaults below.
//
//	"heal": false
//	"heal": {"enabled": true, "off": ["postgres"], "backoff_s": 15, "max_backoff_s": 600, "max_attempts": 5,
//	         "meltdown": {"time_threshold_s": 600, "percent_threshold": 20, "minimum_down": 1}}
type HealConfig struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Off lists components auto-heal leaves alone.
	Off []string `json:"off,omitempty"`
	// BackoffS is the wait after the first failed attempt; each further
	// one doubles it (with jitter) up to MaxBackoffS.
	BackoffS    int `json:"backoff_s,omitempty"`
	MaxBackoffS int `json:"max_backoff_s,omitempty"`
	// MaxAttempts is how many attempts an instance gets before it is
	// marked failing.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// GraceS is how long an instance must be seen down before the first
	// attempt: failures that happen together are judged together.
	GraceS   int          `json:"grace_s,omitempty"`
	Meltdown MeltdownRule `json:"meltdown,omitzero"`
}

// MeltdownRule is BOSH's meltdown guard: within TimeThresholdS, heal
// whenever at most MinimumDown instances are down; beyond that, heal
// nothing once more than PercentThreshold percent are down.
type MeltdownRule struct {
	TimeThresholdS   int `json:"time_threshold_s,omitempty"`
	PercentThreshold int `json:"percent_threshold,omitempty"`
	// MinimumDown defaults to 1 for clusters under 10 nodes, else 5.
	MinimumDown *int `json:"minimum_down,omitempty"`
}

// UnmarshalJSON takes true, false or the object.
func (h *HealConfig) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "true", "false":
		on := string(b) == "true"
		*h = HealConfig{Enabled: &on}
		return nil
	}
	type plain HealConfig
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("want true, false or {\"enabled\", \"off\", \"backoff_s\", \"max_backoff_s\", \"max_attempts\", \"grace_s\", \"meltdown\"}: %v", err)
	}
	if p.BackoffS < 0 || p.MaxBackoffS < 0 || p.MaxAttempts < 0 || p.GraceS < 0 ||
		p.Meltdown.TimeThresholdS < 0 || p.Meltdown.PercentThreshold < 0 || p.Meltdown.PercentThreshold > 100 ||
		(p.Meltdown.MinimumDown != nil && *p.Meltdown.MinimumDown < 0) {
		return fmt.Errorf("numbers must be >= 0 (percent_threshold at most 100)")
	}
	*h = HealConfig(p)
	return nil
}

// HealSet turns auto-heal on or off at run time (de.cmd.heal.set). Turning
// it on lifts the meltdown guard and gives failing instances a new start.
//
//	{"v": 1, "enabled": false, "actor": "alice"}
type HealSet struct {
	V       int    `json:"v"`
	Enabled bool   `json:"enabled"`
	Actor   string `json:"actor"`
}

// HealSwitched answers a HealSet: the switch as it now is, and what the
// engine noted of the change.
//
//	{"enabled": false, "message": "auto-heal disabled by alice"}
type HealSwitched struct {
	Enabled bool   `json:"enabled"`
	Message string `json:"message"`
}

// HealState is auto-heal as GET /deployment-engine/heal shows it.
//
//	{"enabled": true, "config_enabled": true, "meltdown": {"active": true, "since": "...", "down": 3, "instances": 4,
//	 "reason": "3 of 4 instances down within 600 s (more than 20%): healing nothing until PUT /heal {\"enabled\": true}"},
//	 "instances": [{"component": "web", "ip": "10.0.0.1", "state": "failing", "attempts": 5, "reason": "..."}]}
type HealState struct {
	Enabled bool `json:"enabled"`
	// ConfigEnabled is the config's heal property; Enabled the switch.
	ConfigEnabled bool             `json:"config_enabled"`
	Meltdown      Meltdown         `json:"meltdown"`
	Instances     []HealedInstance `json:"instances"`
}

// Meltdown is the meltdown guard's verdict.
type Meltdown struct {
	Active    bool       `json:"active"`
	Since     *time.Time `json:"since,omitempty"`
	Down      int        `json:"down"`
	Instances int        `json:"instances"`
	Reason    string     `json:"reason,omitempty"`
}

// Heal states of an instance.
const (
	HealDown    = "down"    // seen down, waiting out the grace or a back-off
	HealHealing = "healing" // an attempt runs
	HealHeld    = "held"    // stopped through the API: left alone
	HealFailing = "failing" // out of attempts
)

// HealedInstance is an instance auto-heal is working on or gave up on.
type HealedInstance struct {
	Component string     `json:"component"`
	IP        string     `json:"ip"`
	State     string     `json:"state"`
	Attempts  int        `json:"attempts"`
	DownSince *time.Time `json:"down_since,omitempty"`
	Next      *time.Time `json:"next,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// HealEvent is published on de.evt.heal.<kind> (restart, reapply, failing,
// recovered, meltdown, enabled, disabled).
//
//	{"v": 1, "kind": "restart", "time": "...", "component": "web", "ip": "10.0.0.1", "attempt": 1,
//	 "result": "failed", "message": "restart through monit did not bring web back within 15s"}
type HealEvent struct {
	V         int       `json:"v"`
	Kind      string    `json:"kind"`
	Time      time.Time `json:"time"`
	Component string    `json:"component,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Result    string    `json:"result,omitempty"`
	Message   string    `json:"message"`
}

// Reapply asks the planner to apply one component on one node again, the
// same steps as a deploy of that instance (de.cmd.deploy.reapply). It
// answers 202 with the deployment's id, 409 while another runs.
//
//	{"v": 1, "component": "web", "ip": "10.0.0.1", "reason": "auto-heal attempt 2"}
type Reapply struct {
	V         int    `json:"v"`
	Component string `json:"component"`
	IP        string `json:"ip"`
	Reason    string `json:"reason,omitempty"`
}
