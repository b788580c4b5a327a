package contract

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// KindPatch is the kind of a deployment that upgrades the nodes' packages
// from the engine's mirror, batch by batch (POST /patch).
const KindPatch = "patch"

// Reboot policies of a patch: reboot a node that asks for it
// (/var/run/reboot-required; the default), every node, or none.
const (
	PatchRebootIfRequired = "if-required"
	PatchRebootAlways     = "always"
	PatchRebootNever      = "never"
)

// Patch asks for the rolling upgrade of the nodes' packages from the
// engine's mirror: max_in_flight nodes at a time (1 by default), each
// node's balanced instances drained first, rebooted as Reboot says,
// waited for and put back; every node of the config, or those named.
//
//	{"v": 1, "nodes": ["10.0.0.2"], "max_in_flight": "25%", "reboot": "if-required", "actor": "alice"}
type Patch struct {
	V           int      `json:"v,omitempty"`
	Nodes       []string `json:"nodes,omitempty"`
	MaxInFlight string   `json:"max_in_flight,omitempty"`
	Reboot      string   `json:"reboot,omitempty"`
	// Actor is who asked, as the API's token names them (the API sets it).
	Actor string `json:"actor,omitempty"`
}

// UnmarshalJSON takes max_in_flight as a number or a string.
func (x *Patch) UnmarshalJSON(b []byte) error {
	type plain Patch
	var raw struct {
		plain
		MaxInFlight json.RawMessage `json:"max_in_flight,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*x = Patch(raw.plain)
	m, err := flexString(raw.MaxInFlight)
	if err != nil {
		return fmt.Errorf("max_in_flight: %w", err)
	}
	x.MaxInFlight = m
	return nil
}

// InFlightOr is MaxInFlight, "1" when unset.
func (x Patch) InFlightOr() string {
	if x.MaxInFlight == "" {
		return "1"
	}
	return x.MaxInFlight
}

// RebootOr is Reboot, PatchRebootIfRequired when unset.
func (x Patch) RebootOr() string {
	if x.Reboot == "" {
		return PatchRebootIfRequired
	}
	return x.Reboot
}

// Problems names what is wrong with x on its own, field by field; whether
// its nodes are the config's is the planner's to say.
func (x Patch) Problems() []Problem {
	var out []Problem
	if len(x.Nodes) > MaxExecNodes {
		out = append(out, Problem{Path: "nodes", Reason: fmt.Sprintf("%d nodes, more than %d", len(x.Nodes), MaxExecNodes)})
	} else {
		for i, ip := range x.Nodes {
			if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
				out = append(out, Problem{Path: fmt.Sprintf("nodes[%d]", i), IP: Clip(ip), Reason: "not an IPv4 address"})
			}
		}
	}
	if _, err := InFlight(x.InFlightOr(), 1); err != nil {
		out = append(out, Problem{Path: "max_in_flight", Reason: err.Error()})
	}
	switch x.RebootOr() {
	case PatchRebootIfRequired, PatchRebootAlways, PatchRebootNever:
	default:
		out = append(out, Problem{Path: "reboot", Reason: fmt.Sprintf("%q: want %s, %s or %s", Clip(x.Reboot), PatchRebootIfRequired, PatchRebootAlways, PatchRebootNever)})
	}
	return out
}

// PatchStarted answers a Patch: the deployment that runs it and the nodes
// it patches, in order.
//
//	{"id": "d-20261206-081500-1a2b", "nodes": ["10.0.0.2", "10.0.0.3"], "batches": 2}
type PatchStarted struct {
	ID      string   `json:"id"`
	Nodes   []string `json:"nodes"`
	Batches int      `json:"batches"`
	// Held are the nodes in maintenance: their steps are held, not run.
	Held []string `json:"held,omitempty"`
}
