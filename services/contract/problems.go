package contract

import (
	"regexp"
	"slices"
)

// Kinds of a ClusterProblem, most urgent first.
const (
	// ProblemUnreachable is a node of the config the engine cannot read
	// over SSH.
	ProblemUnreachable = "node-unreachable"
	// ProblemHostKey is a node that presents another SSH host key than the
	// one pinned at first contact: reinstalled, or someone in the middle.
	ProblemHostKey = "host-key-changed"
	// ProblemNotRunning is an instance whose process monit does not run.
	ProblemNotRunning = "process-not-running"
	// ProblemCheckMissing is an instance whose monit check is gone.
	ProblemCheckMissing = "monit-check-missing"
	// ProblemUnmonitored is an instance monit no longer watches.
	ProblemUnmonitored = "monit-unmonitored"
	// ProblemAgentSilent is a node whose agent stopped reporting while
	// the node answers over SSH.
	ProblemAgentSilent = "agent-not-reporting"
	// ProblemAgentVersion is an agent at another version than the engine.
	ProblemAgentVersion = "agent-version"
	// ProblemDrift is a file the engine wrote that no longer holds what it
	// wrote (the plan's drift).
	ProblemDrift = "drift"
	// ProblemDiskFull is a node whose disk is over DiskFullPct used.
	ProblemDiskFull = "disk-full"
	// ProblemOrphan is an instance on a node the config no longer places.
	ProblemOrphan = "orphan"
	// ProblemCertificate is a certificate of the engine that expires
	// within CertificateProblemDays.
	ProblemCertificate = "certificate-expiring"
)

// Fixes a ClusterProblem may offer. Each is applied as a deployment.
const (
	// FixRestart restarts the instance through monit (a rolling restart
	// of it alone), which also has monit watch it again.
	FixRestart = "restart"
	// FixReapply applies the component on the node again: its files, its
	// install script, its monit check, its start.
	FixReapply = "reapply"
	// FixDeploy deploys the stored config.
	FixDeploy = "deploy"
	// FixRemove deploys the stored config, which removes what the config
	// no longer places.
	FixRemove = "remove"
	// FixRestartAgent restarts the node agent through monit (a deployment
	// of kind exec on that node).
	FixRestartAgent = "restart-agent"
	// FixForgetHostKey forgets the node's pinned host key and deploys the
	// stored config, which pins the key the node now presents. Never
	// recommended: a person must know why the key changed.
	FixForgetHostKey = "forget-host-key"
)

// Thresholds of the scan.
const (
	DiskFullPct            = 90
	CertificateProblemDays = 30
)

// ProblemFix is one way to fix a problem.
type ProblemFix struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Recommended bool   `json:"recommended"`
}

// ClusterProblem is one problem a scan of the cluster found, with the
// fixes that apply (none when a person must act). ID is the same for the
// same problem in every scan: POST /problems/{id}/resolve names it.
//
//	{"id": "pb-3fa1c2d4e5f6", "kind": "process-not-running", "node": "10.0.0.2", "component": "web",
//	 "detail": "monit: Does not exist",
//	 "fixes": [{"name": "restart", "description": "restart web on 10.0.0.2 through monit", "recommended": true},
//	           {"name": "reapply", "description": "apply web on 10.0.0.2 again", "recommended": false}]}
type ClusterProblem struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind"`
	Node        string       `json:"node,omitempty"`
	Component   string       `json:"component,omitempty"`
	Certificate string       `json:"certificate,omitempty"`
	Detail      string       `json:"detail"`
	Fixes       []ProblemFix `json:"fixes"`
}

// Fix is p's fix of that name.
func (p ClusterProblem) Fix(name string) (ProblemFix, bool) {
	i := slices.IndexFunc(p.Fixes, func(f ProblemFix) bool { return f.Name == name })
	if i < 0 {
		return ProblemFix{}, false
	}
	return p.Fixes[i], true
}

// Recommended is p's recommended fix, if it has one.
func (p ClusterProblem) Recommended() (ProblemFix, bool) {
	for _, f := range p.Fixes {
		if f.Recommended {
			return f, true
		}
	}
	return ProblemFix{}, false
}

// ProblemList is GET /problems' answer (de.cmd.problems.list). Unread
// names the sources of facts the scan could not read, and why: what they
// would have shown is missing from Problems.
//
//	{"v": 1, "problems": [{"id": "pb-3fa1c2d4e5f6", "kind": "drift", ...}], "unread": []}
type ProblemList struct {
	V        int              `json:"v"`
	Problems []ClusterProblem `json:"problems"`
	Unread   []string         `json:"unread"`
}

// ProblemResolve applies one fix of one problem
// (de.cmd.problems.resolve); the reply is DeployStarted.
//
//	{"v": 1, "id": "pb-3fa1c2d4e5f6", "fix": "restart", "actor": "alice"}
type ProblemResolve struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	Fix   string `json:"fix"`
	Actor string `json:"actor,omitempty"`
}

var problemIDRe = regexp.MustCompile(`^pb-[0-9a-f]{12}$`)

// ValidProblemID tells whether id has the form of a problem's id.
func ValidProblemID(id string) bool { return problemIDRe.MatchString(id) }
