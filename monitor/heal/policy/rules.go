// Package policy decides what auto-heal does with the instances it sees down.
package policy

import (
	"math/rand/v2"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// Defaults of the heal property.
const (
	DefaultBackoff       = 15 * time.Second
	DefaultMaxBackoff    = 10 * time.Minute
	DefaultMaxAttempts   = 5
	DefaultGrace         = 8 * time.Second
	DefaultTimeThreshold = 600 * time.Second
	DefaultPercent       = 20
)

// Rules are the heal property with defaults filled in.
type Rules struct {
	Enabled                         bool
	Off                             []string
	Backoff, MaxBackoff, Grace, TTL time.Duration
	MaxAttempts, Percent, MinDown   int
	// Maintenance holds the nodes in maintenance: their instances are
	// neither healed nor counted by the meltdown guard.
	Maintenance map[string]bool
}

// RulesOf reads the heal property of cfg.
func RulesOf(cfg contract.Config) Rules {
	r := Rules{Enabled: true, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff, Grace: DefaultGrace,
		TTL: DefaultTimeThreshold, MaxAttempts: DefaultMaxAttempts, Percent: DefaultPercent, MinDown: 1}
	if len(cfg.Nodes()) >= 10 {
		r.MinDown = 5
	}
	hc := cfg.Properties.Heal
	if hc == nil {
		return r
	}
	if hc.Enabled != nil {
		r.Enabled = *hc.Enabled
	}
	r.Off = hc.Off
	sec := func(dst *time.Duration, s int) {
		if s > 0 {
			*dst = time.Duration(s) * time.Second
		}
	}
	sec(&r.Backoff, hc.BackoffS)
	sec(&r.MaxBackoff, hc.MaxBackoffS)
	sec(&r.Grace, hc.GraceS)
	sec(&r.TTL, hc.Meltdown.TimeThresholdS)
	if hc.MaxAttempts > 0 {
		r.MaxAttempts = hc.MaxAttempts
	}
	if hc.Meltdown.PercentThreshold > 0 {
		r.Percent = hc.Meltdown.PercentThreshold
	}
	if hc.Meltdown.MinimumDown != nil {
		r.MinDown = *hc.Meltdown.MinimumDown
	}
	return r
}

// Wait is the wait after the n-th failed attempt: the base doubling each
// time, ±20% jitter, capped.
func (r Rules) Wait(n int) time.Duration {
	d := r.Backoff
	for i := 1; i < n && d < r.MaxBackoff; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, r.MaxBackoff)
}
