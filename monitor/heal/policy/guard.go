package policy

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// Guard is the meltdown guard, as BOSH's: it holds all healing while many
// instances are down at once, and keeps that verdict across restarts.
type Guard struct {
	contract.Meltdown
}

// Holds tells whether the guard holds auto-heal now.
func (g *Guard) Holds() bool { return g.Active }

// Lift lets auto-heal go, as the operator's PUT /heal does; it tells
// whether the guard held.
func (g *Guard) Lift() bool {
	held := g.Active
	g.Meltdown = contract.Meltdown{}
	return held
}

// Judge applies the guard to instances, of total watched, at now. Within
// the time threshold it lets auto-heal go whenever at most minimum_down
// instances are down; beyond that it holds once more than
// percent_threshold of them are. An instance counts once its grace has
// passed (an operator's stop seen down before its audit entry arrives is
// held by then, and counts for nothing), and not when the operator saw it
// down already. The guard lifts itself as soon as its condition no longer
// holds; it takes hold only while auto-heal is on (on). Judge tells
// whether the guard changed, with the note to publish if it held or let go.
func (g *Guard) Judge(instances map[string]*Instance, total int, r Rules, on bool, now time.Time) (bool, []Note) {
	recent := 0
	for _, in := range instances {
		if !in.Acked && now.Sub(in.DownSince) >= r.Grace && now.Sub(in.DownSince) <= r.TTL {
			recent++
		}
	}
	melting := recent > r.MinDown && recent*100 > r.Percent*total
	switch {
	case !g.Active && melting && on:
		since := now.UTC()
		g.Meltdown = contract.Meltdown{Active: true, Since: &since, Down: recent, Instances: total,
			Reason: fmt.Sprintf("%d of %d instances went down within %s (more than %d%%, more than %d): auto-heal holds until fewer are down or PUT /deployment-engine/heal {\"enabled\": true}",
				recent, total, r.TTL, r.Percent, r.MinDown)}
		return true, []Note{g.note("held", slog.LevelError, g.Reason)}
	case g.Active && !melting:
		msg := fmt.Sprintf("the meltdown guard is lifted: %d of %d instances down within %s", recent, total, r.TTL)
		g.Meltdown = contract.Meltdown{}
		return true, []Note{g.note("lifted", slog.LevelInfo, msg)}
	case g.Active && g.Down != recent:
		g.Down = recent
		return true, nil
	}
	return false, nil
}

// Gathering tells whether the guard would take hold once the grace of
// every instance down now has passed: while it would, no attempt starts,
// so that of instances that went down together the first seen is not
// healed in the moments before the others count.
func (g *Guard) Gathering(instances map[string]*Instance, total int, r Rules, now time.Time) bool {
	down := 0
	for _, in := range instances {
		if !in.Acked && now.Sub(in.DownSince) <= r.TTL {
			down++
		}
	}
	return down > r.MinDown && down*100 > r.Percent*total
}

func (g *Guard) note(result string, level slog.Level, msg string) Note {
	return Note{Kind: "meltdown", Result: result, Message: msg, Level: level,
		Audit: &contract.AuditEntry{Action: contract.AuditHealMeltdown, Object: "cluster", Result: result, Detail: msg}}
}
