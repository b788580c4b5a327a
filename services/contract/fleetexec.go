package contract

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// KindExec is the kind of a deployment that runs an operator's command on
// nodes (FleetExec).
const KindExec = "exec"

// Bounds of a FleetExec.
const (
	// MaxExecCommand bounds a command's text, in bytes.
	MaxExecCommand = 4096
	// DefaultExecTimeout and MaxExecTimeout are a command's deadline on
	// each node, in seconds, when none is given and at most.
	DefaultExecTimeout = 60
	MaxExecTimeout     = 3600
	// MaxExecNodes bounds the nodes one request names.
	MaxExecNodes = 1000
)

// FleetExec runs an operator's command on nodes (de.cmd.deploy.exec): on
// every node of the stored config with an instance of Component, or on the
// Nodes named (one of the two). It is a deployment of kind exec, one step a
// node, MaxInFlight nodes at a time (a number, or a percentage of the
// nodes; default 1), each within Timeout seconds (default 60, at most
// 3600): one that outlives it is killed on its node with all it started
// and fails with exit code 124. A node whose command fails does not stop
// the others unless HaltOnFailure: then the batches after it are not run.
// The command runs as root under bash, fed on stdin, never in argv.
//
//	{"v": 1, "component": "web", "command": "systemctl is-active nginx", "max_in_flight": "50%",
//	 "timeout": 30, "halt_on_failure": false, "actor": "alice"}
type FleetExec struct {
	V             int      `json:"v,omitempty"`
	Component     string   `json:"component,omitempty"`
	Nodes         []string `json:"nodes,omitempty"`
	Command       string   `json:"command"`
	MaxInFlight   string   `json:"max_in_flight,omitempty"`
	Timeout       *int     `json:"timeout,omitempty"`
	HaltOnFailure bool     `json:"halt_on_failure,omitempty"`
	// Actor is who asked, as the API's token names them (the API sets it).
	Actor string `json:"actor,omitempty"`
}

// FleetExecRequest is a FleetExec as a client gives it (POST /exec's
// body, a scheduled exec's args): without what the API sets (v, actor).
type FleetExecRequest struct {
	Component     string          `json:"component,omitempty"`
	Nodes         []string        `json:"nodes,omitempty"`
	Command       string          `json:"command"`
	MaxInFlight   json.RawMessage `json:"max_in_flight,omitempty"`
	Timeout       *int            `json:"timeout,omitempty"`
	HaltOnFailure bool            `json:"halt_on_failure,omitempty"`
}

// DecodeFleetExec reads a client's FleetExec (POST /exec's body, a
// scheduled exec's args): one JSON object of the client's fields, any
// other field an error (a misspelt halt_on_failure must not run a command
// on every node unhalted).
func DecodeFleetExec(raw []byte) (FleetExec, error) {
	if err := strictJSON(raw, &FleetExecRequest{}); err != nil {
		return FleetExec{}, err
	}
	var x FleetExec
	err := json.Unmarshal(raw, &x)
	return x, err
}

// UnmarshalJSON takes max_in_flight as a number or a string.
func (x *FleetExec) UnmarshalJSON(b []byte) error {
	type plain FleetExec
	var raw struct {
		plain
		MaxInFlight json.RawMessage `json:"max_in_flight,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*x = FleetExec(raw.plain)
	m, err := flexString(raw.MaxInFlight)
	if err != nil {
		return fmt.Errorf("max_in_flight: %w", err)
	}
	x.MaxInFlight = m
	return nil
}

// TimeoutS is the command's deadline on each node, in seconds.
func (x FleetExec) TimeoutS() int {
	if x.Timeout == nil {
		return DefaultExecTimeout
	}
	return *x.Timeout
}

// InFlightOr is MaxInFlight, "1" when unset.
func (x FleetExec) InFlightOr() string {
	if x.MaxInFlight == "" {
		return "1"
	}
	return x.MaxInFlight
}

// Problems names what is wrong with x on its own, field by field; whether
// its component and nodes are the config's is the planner's to say.
func (x FleetExec) Problems() []Problem {
	var out []Problem
	switch {
	case x.Command == "":
		out = append(out, Problem{Path: "command", Reason: "empty: name the command to run"})
	case len(x.Command) > MaxExecCommand:
		out = append(out, Problem{Path: "command", Reason: fmt.Sprintf("%d bytes, more than %d: put a longer script on the nodes and run that", len(x.Command), MaxExecCommand)})
	}
	out = append(out, fleetTargetProblems(x.Component, x.Nodes, x.InFlightOr())...)
	if t := x.TimeoutS(); t < 1 || t > MaxExecTimeout {
		out = append(out, Problem{Path: "timeout", Reason: fmt.Sprintf("%d: want seconds from 1 to %d", t, MaxExecTimeout)})
	}
	return out
}

// FleetExecStarted answers a FleetExec: the deployment that runs it, and
// the command as the audit records it (the config's secrets redacted,
// clipped).
//
//	{"id": "d-20261124-223905-1a2b", "command": "systemctl is-active nginx"}
type FleetExecStarted struct {
	ID      string `json:"id"`
	Command string `json:"command"`
}

// fleetTargetProblems names what is wrong with the nodes a fleet command
// runs on (a component, or nodes named) and with its max_in_flight.
func fleetTargetProblems(component string, nodes []string, maxInFlight string) []Problem {
	var out []Problem
	switch {
	case component != "" && len(nodes) > 0:
		out = append(out, Problem{Path: "component", Reason: "give a component or nodes, not both"})
	case component == "" && len(nodes) == 0:
		out = append(out, Problem{Path: "component", Reason: "missing: give a component, or nodes"})
	case len(nodes) > MaxExecNodes:
		out = append(out, Problem{Path: "nodes", Reason: fmt.Sprintf("%d nodes, more than %d", len(nodes), MaxExecNodes)})
	}
	if len(nodes) <= MaxExecNodes {
		for i, ip := range nodes {
			if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
				out = append(out, Problem{Path: fmt.Sprintf("nodes[%d]", i), IP: Clip(ip), Reason: "not an IPv4 address"})
			}
		}
	}
	if _, err := InFlight(maxInFlight, 1); err != nil {
		out = append(out, Problem{Path: "max_in_flight", Reason: err.Error()})
	}
	return out
}
