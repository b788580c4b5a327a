package contract

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxMaintenanceReason bounds a maintenance reason, in bytes.
const MaxMaintenanceReason = 200

// MaintenanceSet puts a node in maintenance or takes it out
// (de.cmd.maintenance.set). A node in maintenance is held out of automatic
// work: auto-heal leaves its instances alone, a deployment holds its
// steps, and /status shows its instances as MAINTENANCE. The node must be
// one of the stored config's to be put in; any node in maintenance may be
// taken out.
//
//	{"v": 1, "ip": "10.0.0.2", "on": true, "reason": "disk replaced by hand", "actor": "alice"}
type MaintenanceSet struct {
	V      int    `json:"v"`
	IP     string `json:"ip"`
	On     bool   `json:"on"`
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor"`
}

// MaintenanceGet asks whether a node is in maintenance
// (de.cmd.maintenance.get); an empty IP lists every node that is
// (de.cmd.maintenance.list answers the same).
//
//	{"ip": "10.0.0.2"}
type MaintenanceGet struct {
	IP string `json:"ip,omitempty"`
}

// NodeMaintenance is one node's maintenance as the API shows it: On false
// and nothing else for a node in service.
//
//	{"ip": "10.0.0.2", "on": true, "reason": "disk replaced by hand", "actor": "alice", "since": "2026-11-24T10:00:00Z"}
type NodeMaintenance struct {
	IP     string     `json:"ip"`
	On     bool       `json:"on"`
	Reason string     `json:"reason,omitempty"`
	Actor  string     `json:"actor,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
	// Deployment, in the answer to a change, is the deployment (of kind
	// maintenance) that takes the node's instances out of their balancers,
	// or watches them healthy and puts them back; Warning says why there
	// is none when one was needed.
	Deployment string `json:"deployment,omitempty"`
	Warning    string `json:"warning,omitempty"`
}

// Describe is the node's maintenance in words, as /status and a held step
// say it: "maintenance: <reason> (by <actor>, since <time>)".
func (m NodeMaintenance) Describe() string {
	since := ""
	if m.Since != nil {
		since = ", since " + m.Since.UTC().Format(time.RFC3339)
	}
	reason := m.Reason
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Sprintf("maintenance: %s (by %s%s)", reason, m.Actor, since)
}

// Maintenances is what the store keeps: every node in maintenance, by IP.
//
//	{"v": 1, "nodes": {"10.0.0.2": {"ip": "10.0.0.2", "on": true, "reason": "...", "actor": "alice", "since": "..."}}}
type Maintenances struct {
	V     int                        `json:"v"`
	Nodes map[string]NodeMaintenance `json:"nodes"`
}

// Holds tells whether the node at ip is in maintenance.
func (m Maintenances) Holds(ip string) bool {
	_, ok := m.Nodes[ip]
	return ok
}

// List is every node in maintenance, by IP.
func (m Maintenances) List() []NodeMaintenance {
	out := make([]NodeMaintenance, 0, len(m.Nodes))
	for _, ip := range SortedKeys(m.Nodes) {
		out = append(out, m.Nodes[ip])
	}
	return out
}

// CheckMaintenanceReason tells what is wrong with a maintenance reason:
// more than MaxMaintenanceReason bytes, not UTF-8, or a control character
// (it is shown in /status, logs and terminals as it is).
func CheckMaintenanceReason(s string) error {
	if len(s) > MaxMaintenanceReason {
		return fmt.Errorf("the reason is %d bytes; at most %d", len(s), MaxMaintenanceReason)
	}
	if !utf8.ValidString(s) {
		return errors.New("the reason is not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("the reason holds a control character (%U)", r)
		}
	}
	return nil
}

// CheckNodeIP tells whether s is written as a node's IP: an IPv4 or IPv6
// address, nothing else (no zone, no port).
func CheckNodeIP(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.String() != s {
		return fmt.Errorf("%q is not an IP address", Clip(s))
	}
	return nil
}
