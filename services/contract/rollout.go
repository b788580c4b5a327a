package contract

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// UpdateSettings say how changes to running instances roll out (BOSH's
// update block): Canaries instances first, then batches of MaxInFlight
// (a number or a percentage of the component's instances, never below 1),
// each instance watched after its start for CanaryWatchTime or
// UpdateWatchTime ("low-high" in ms: wait low, then require health until
// high). AutoRevert re-applies what the changed instances ran before when
// a canary or batch fails. Unset fields fall back to the next level: the
// component's, then the config's, then the catalog's, then the defaults.
//
//	{"canaries": 1, "max_in_flight": "50%", "canary_watch_time": "1000-30000",
//	 "update_watch_time": "1000-30000", "auto_revert": true}
type UpdateSettings struct {
	Canaries        *int   `json:"canaries,omitempty"`
	MaxInFlight     string `json:"max_in_flight,omitempty"`
	CanaryWatchTime string `json:"canary_watch_time,omitempty"`
	UpdateWatchTime string `json:"update_watch_time,omitempty"`
	AutoRevert      *bool  `json:"auto_revert,omitempty"`
}

// UpdateConfig is the config's properties.update: settings for every
// component, and per component ("components": {"web": {...}}).
//
//	{"canaries": 1, "max_in_flight": 1, "components": {"web": {"max_in_flight": "50%"}}}
type UpdateConfig struct {
	UpdateSettings
	Components map[string]UpdateSettings `json:"components,omitempty"`
}

// UnmarshalJSON takes max_in_flight as a number or a string.
func (u *UpdateSettings) UnmarshalJSON(b []byte) error {
	type plain UpdateSettings
	var raw struct {
		plain
		MaxInFlight json.RawMessage `json:"max_in_flight,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*u = UpdateSettings(raw.plain)
	m, err := flexString(raw.MaxInFlight)
	if err != nil {
		return fmt.Errorf("max_in_flight: %w", err)
	}
	u.MaxInFlight = m
	return nil
}

// UnmarshalJSON reads the global settings beside "components".
func (u *UpdateConfig) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &u.UpdateSettings); err != nil {
		return err
	}
	var raw struct {
		Components map[string]UpdateSettings `json:"components"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	u.Components = raw.Components
	return nil
}

func flexString(b json.RawMessage) (string, error) {
	if len(b) == 0 || string(b) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", fmt.Errorf("want a number or a percentage, got %s", b)
	}
	return n.String(), nil
}

// Merge fills u's unset fields from base.
func (u UpdateSettings) Merge(base UpdateSettings) UpdateSettings {
	if u.Canaries == nil {
		u.Canaries = base.Canaries
	}
	if u.MaxInFlight == "" {
		u.MaxInFlight = base.MaxInFlight
	}
	if u.CanaryWatchTime == "" {
		u.CanaryWatchTime = base.CanaryWatchTime
	}
	if u.UpdateWatchTime == "" {
		u.UpdateWatchTime = base.UpdateWatchTime
	}
	if u.AutoRevert == nil {
		u.AutoRevert = base.AutoRevert
	}
	return u
}

// Problems names what is wrong with u, under path.
func (u UpdateSettings) Problems(path string) []Problem {
	var out []Problem
	if u.Canaries != nil && *u.Canaries < 0 {
		out = append(out, Problem{Path: path + ".canaries", Reason: "want a number >= 0"})
	}
	if u.MaxInFlight != "" {
		if _, err := InFlight(u.MaxInFlight, 1); err != nil {
			out = append(out, Problem{Path: path + ".max_in_flight", Reason: err.Error()})
		}
	}
	for name, w := range map[string]string{"canary_watch_time": u.CanaryWatchTime, "update_watch_time": u.UpdateWatchTime} {
		if w != "" {
			if _, _, err := WatchTime(w); err != nil {
				out = append(out, Problem{Path: path + "." + name, Reason: err.Error()})
			}
		}
	}
	return out
}

// InFlight is how many of n instances a batch takes for a max_in_flight of
// s: a number, or a percentage of n; never below 1.
func InFlight(s string, n int) (int, error) {
	s = strings.TrimSpace(s)
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || p <= 0 || p > 100 {
			return 0, fmt.Errorf("%q: want a number >= 1 or a percentage in (0, 100]", s)
		}
		return max(1, int(float64(n)*p/100)), nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%q: want a number >= 1 or a percentage in (0, 100]", s)
	}
	return v, nil
}

// WatchTime reads "low-high" (or one number, low = high) in milliseconds.
func WatchTime(s string) (low, high int, err error) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		b = a
	}
	low, err1 := strconv.Atoi(strings.TrimSpace(a))
	high, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || low < 0 || high < low || high > 3600000 {
		return 0, 0, fmt.Errorf("%q: want \"low-high\" in ms, 0 <= low <= high <= 3600000", s)
	}
	return low, high, nil
}

// Batch is one batch of a rollout, as a deployment shows it: the instances
// of one component that change together, the canaries first. State is
// pending, running, healthy, failed or skipped (a halt left it untouched).
//
//	{"component": "web", "index": 0, "canary": true, "nodes": ["10.0.0.2"], "state": "healthy",
//	 "steps": ["10.0.0.1/haproxy/drain-web-10.0.0.2", "10.0.0.2/web/upload", ...]}
type Batch struct {
	Component string   `json:"component"`
	Index     int      `json:"index"`
	Canary    bool     `json:"canary"`
	Nodes     []string `json:"nodes"`
	State     string   `json:"state"`
	Error     string   `json:"error,omitempty"`
	Steps     []string `json:"steps"`
}

// Batch states.
const (
	BatchPending = "pending"
	BatchRunning = "running"
	BatchHealthy = "healthy"
	BatchFailed  = "failed"
	BatchSkipped = "skipped"
)

// BatchEvent is a batch that changed state, on de.evt.deploy.<id>.batch:
// a canary's verdict, a batch started, healthy or failed.
//
//	{"v": 1, "id": "d-...", "time": "...", "batch": {"component": "web", "index": 0, "canary": true, "state": "healthy", ...}}
type BatchEvent struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	Time  string `json:"time"`
	Batch Batch  `json:"batch"`
}

// RollingRestart restarts a component's instances batch by batch
// (de.cmd.deploy.restart): IP names one instance, or "0.0.0.0" every one.
//
//	{"v": 1, "component": "web", "ip": "0.0.0.0", "max_in_flight": "1"}
type RollingRestart struct {
	V           int    `json:"v"`
	Component   string `json:"component"`
	IP          string `json:"ip"`
	MaxInFlight string `json:"max_in_flight"`
}
