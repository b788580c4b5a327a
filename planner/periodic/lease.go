package periodic

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
)

// KeyLease is the schedules' lease in DE_SCHEDULER, beside the deploy
// lock: the one planner that holds it runs the schedules. It has the deploy
// lock's shape and habits: a holder named as the planner names itself in
// the deploy lock, renewed every third of its lifetime, taken over once
// expired by a planner that has seen the store answer for a whole
// lifetime, taken back at once by a planner started again under its name.
const KeyLease = "schedule-lock"

type leaseDoc struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// lease is one planner's side of the schedules' lease. Its times are the
// machine's (time.Now), as every holder compares them: the runner's clock
// says only when schedules are due.
type lease struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration

	held      bool
	rev       uint64
	renewed   time.Time
	expires   time.Time
	calmSince time.Time
}

// hold tells whether this planner holds the lease now, taking or renewing
// it as due; taken is true when it has just been taken.
func (l *lease) hold(ctx context.Context) (held, taken bool) {
	now := time.Now()
	if l.held && now.Sub(l.renewed) < l.ttl/3 {
		return true, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	val, _ := json.Marshal(leaseDoc{Holder: l.holder, Expires: now.Add(l.ttl).UTC()})
	e, err := l.kv.Get(ctx, KeyLease)
	var rev uint64
	switch {
	case bus.IsNotFound(err):
		l.calm(now, true)
		rev, err = l.kv.Create(ctx, KeyLease, val)
	case err != nil:
		l.calm(now, false)
		return l.stillHeld(now), false
	default:
		calm := l.calm(now, true)
		var d leaseDoc
		mine := json.Unmarshal(e.Value(), &d) == nil && d.Holder == l.holder
		if !mine && (now.Before(d.Expires) || !calm) {
			l.held = false
			return false, false
		}
		rev, err = l.kv.Update(ctx, KeyLease, val, e.Revision())
	}
	if bus.IsConflict(err) {
		l.held = false
		return false, false
	}
	if err != nil {
		l.calm(now, false)
		return l.stillHeld(now), false
	}
	taken = !l.held
	l.held, l.rev, l.renewed, l.expires = true, rev, now, now.Add(l.ttl)
	return true, taken
}

// stillHeld: a lease not renewed for want of the store is this planner's
// until the expiry it wrote, and no longer.
func (l *lease) stillHeld(now time.Time) bool {
	if l.held && now.After(l.expires) {
		l.held = false
	}
	return l.held
}

// calm notes whether the store answered, and tells whether it has for a
// whole lifetime: a lease that expired while the store was away says
// nothing of its holder, who could not renew it either.
func (l *lease) calm(now time.Time, answered bool) bool {
	if !answered {
		l.calmSince = time.Time{}
		return false
	}
	if l.calmSince.IsZero() {
		l.calmSince = now
	}
	return now.Sub(l.calmSince) >= l.ttl
}

// release deletes the lease this planner holds, so that another takes it
// at once rather than at its expiry.
func (l *lease) release() {
	if !l.held {
		return
	}
	l.held = false
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.kv.Delete(ctx, KeyLease, jetstream.LastRevision(l.rev))
}
