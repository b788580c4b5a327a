package catalog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// NodeSystem is what a catalog needs of every node's system (the manual's
// 节点系统要求): the OS it supports and the monit it needs.
//
//	"nodes": {"os": [{"id": "debian", "versions": ["12"]}], "monit": "5.2", "mismatch": "problem"}
type NodeSystem struct {
	// OS lists the supported systems, by /etc/os-release ID and VERSION_ID;
	// empty supports any.
	OS []OSRelease `json:"os,omitempty"`
	// Monit is the oldest monit version that will do. A node without monit
	// gets it from the engine's mirror instead.
	Monit string `json:"monit,omitempty"`
	// Mismatch is "problem" (the config is refused) or "warning" (the
	// default: stored, with a warning).
	Mismatch string `json:"mismatch,omitempty"`
}

// OSRelease is one supported system; no Versions means any version.
type OSRelease struct {
	ID       string   `json:"id"`
	Versions []string `json:"versions,omitempty"`
}

// Mismatch kinds.
const (
	MismatchProblem = "problem"
	MismatchWarning = "warning"
)

func (s NodeSystem) check() []string {
	var out []string
	if s.Mismatch != "" && s.Mismatch != MismatchProblem && s.Mismatch != MismatchWarning {
		out = append(out, fmt.Sprintf("nodes.mismatch must be %q or %q, not %q", MismatchProblem, MismatchWarning, s.Mismatch))
	}
	if s.Monit != "" {
		if _, ok := parseVersion(s.Monit); !ok {
			out = append(out, fmt.Sprintf("nodes.monit %q is not a version like 5.2", s.Monit))
		}
	}
	for i, o := range s.OS {
		if o.ID == "" {
			out = append(out, fmt.Sprintf("nodes.os[%d] has no id", i))
		}
	}
	return out
}

// Refuses says whether a mismatch refuses the config.
func (s NodeSystem) Refuses() bool { return s.Mismatch == MismatchProblem }

// CheckNode compares a node's OS and monit with what the catalog needs and
// says what does not fit, one sentence each. A node without monit fits:
// the deployment installs it.
func (s NodeSystem) CheckNode(os contract.NodeOS, monit string) []string {
	var out []string
	if len(s.OS) > 0 && !slices.ContainsFunc(s.OS, func(o OSRelease) bool { return o.fits(os) }) {
		got := os.PrettyName
		if got == "" {
			got = strings.TrimSpace(os.ID + " " + os.VersionID)
		}
		if got == "" {
			got = "an unknown system (no /etc/os-release)"
		}
		out = append(out, fmt.Sprintf("runs %s; the catalog supports %s", got, s.supported()))
	}
	if s.Monit != "" && monit != "" {
		want, _ := parseVersion(s.Monit)
		have, ok := parseVersion(monit)
		if !ok || compareVersions(have, want) < 0 {
			out = append(out, fmt.Sprintf("has monit %s; the catalog needs monit %s or later", monit, s.Monit))
		}
	}
	return out
}

func (o OSRelease) fits(os contract.NodeOS) bool {
	if !strings.EqualFold(o.ID, os.ID) {
		return false
	}
	return len(o.Versions) == 0 || slices.Contains(o.Versions, os.VersionID)
}

func (s NodeSystem) supported() string {
	var parts []string
	for _, o := range s.OS {
		if len(o.Versions) == 0 {
			parts = append(parts, o.ID)
		} else {
			parts = append(parts, o.ID+" "+strings.Join(o.Versions, "/"))
		}
	}
	return strings.Join(parts, ", ")
}

// parseVersion reads "5.33.0" as [5 33 0].
func parseVersion(v string) ([]int, bool) {
	if v == "" {
		return nil, false
	}
	var out []int
	for _, p := range strings.Split(v, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

func compareVersions(a, b []int) int {
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
