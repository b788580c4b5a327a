// Package observe keeps the last heartbeat of each node for auto-heal.
package observe

import (
	"fmt"
	"sync"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeclient"
)

// Observation is what the heartbeats say of one instance.
type Observation int

// What an instance is seen as.
const (
	Unknown Observation = iota // no agent, not deployed there, monit unreadable
	Up
	Down
	Silent // its node stopped reporting
)

// defaultInterval stands for a node never heard from.
const defaultInterval = 5 * time.Second

type report struct {
	hb contract.Heartbeat
	at time.Time
}

// Nodes is the last report of each node. It has a lock of its own, so a
// heartbeat is recorded without waiting on anything auto-heal decides.
type Nodes struct {
	missed int

	mu   sync.Mutex
	last map[string]report
	// settled is when the last deployment ended: reports from before say
	// nothing of what it started.
	settled time.Time
}

// New returns an empty table whose nodes may miss missed heartbeat
// intervals before they count as silent (nodeclient.Missed when 0).
func New(missed int) *Nodes {
	if missed <= 0 {
		missed = nodeclient.Missed
	}
	return &Nodes{missed: missed, last: map[string]report{}}
}

// Record keeps hb, received at at, as its node's last report.
func (n *Nodes) Record(hb contract.Heartbeat, at time.Time) {
	hb.IntervalS = min(max(hb.IntervalS, 1), 3600)
	n.mu.Lock()
	n.last[hb.IP] = report{hb: hb, at: at}
	n.mu.Unlock()
}

// Settle marks the end of a deployment at t.
func (n *Nodes) Settle(t time.Time) {
	n.mu.Lock()
	n.settled = t
	n.mu.Unlock()
}

// Last is the last report of the node at ip and when it came.
func (n *Nodes) Last(ip string) (contract.Heartbeat, time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.last[ip]
	return r.hb, r.at, ok
}

// Settling is how long after a change on the node at ip its reports may
// still show the state before: its allowed silence, and a second for
// delivery.
func (n *Nodes) Settling(ip string) time.Duration {
	iv := defaultInterval
	if hb, _, ok := n.Last(ip); ok {
		iv = time.Duration(hb.IntervalS) * time.Second
	}
	return time.Duration(n.missed)*iv + time.Second
}

// Of tells what the last report says of comp on ip at now, and why when
// it is down or silent. A node is silent by nodeclient.Reporting, the
// rule the rest of the engine uses.
func (n *Nodes) Of(comp, ip string, now time.Time) (Observation, string) {
	n.mu.Lock()
	r, ok := n.last[ip]
	settled := n.settled
	n.mu.Unlock()
	if !ok {
		return Unknown, ""
	}
	if !nodeclient.Reporting(r.hb, r.at, now, n.missed) {
		return Silent, fmt.Sprintf("its node has not reported for %s", now.Sub(r.at).Round(time.Second))
	}
	if r.hb.MonitError != "" || r.at.Before(settled) {
		return Unknown, ""
	}
	for _, c := range r.hb.Components {
		if c.Name == comp {
			if c.Running {
				return Up, ""
			}
			return Down, "monit: " + c.Monit
		}
	}
	return Unknown, ""
}
