package contract

import (
	"strings"
	"time"
)

// Auth is how the installer logs in to nodes as root: a password, or a
// private key (PEM text, or a path on the machine running the installer).
// It travels only in request/reply commands on the engine's own bus, never
// in a stream, an event or a log.
type Auth struct {
	Password string `json:"password,omitempty"`
	Key      string `json:"key,omitempty"`
	// PasswordHosts, when Restricted, are the only nodes the password is
	// offered to (see SecretHosts); the others get the key alone.
	Restricted    bool     `json:"restricted,omitempty"`
	PasswordHosts []string `json:"password_hosts,omitempty"`
	// Gateway, when set, is the jump host every connection to a node
	// goes through, its Key filled in (Properties.JumpHost).
	Gateway *Gateway `json:"gateway,omitempty"`
	// Keys are the nodes with a key of their own, by IP (Properties.NodeKeys):
	// each is offered that key in place of Key.
	Keys map[string]string `json:"keys,omitempty"`
	// Users are the nodes logged in to as another user than root, by IP
	// (Properties.NodeUsers): the engine's commands run there through
	// sudo -n.
	Users map[string]string `json:"users,omitempty"`
}

// UserFor is the user ip is logged in to as: its own, else root.
func (a Auth) UserFor(ip string) string {
	if u := a.Users[ip]; u != "" {
		return u
	}
	return "root"
}

// KeyFor is the key offered to ip: its own, else Key.
func (a Auth) KeyFor(ip string) string {
	if k, ok := a.Keys[ip]; ok {
		return k
	}
	return a.Key
}

// OffersPassword tells whether the password may be offered to ip.
func (a Auth) OffersPassword(ip string) bool {
	if a.Password == "" {
		return false
	}
	if !a.Restricted {
		return true
	}
	for _, h := range a.PasswordHosts {
		if h == ip {
			return true
		}
	}
	return false
}

// ProbeParallel bounds the nodes the probes of an engine contact at once,
// all its clusters' together: SSH handshakes cost CPU on both ends, and a
// hundred at once on a small control machine miss their deadline. Each
// node's TimeoutMS runs from its turn, so a probe of n nodes may take
// ProbeRounds(n) of them, and more while other clusters' probes hold
// turns.
const ProbeParallel = 16

// ProbeTries is how many turns one node's check may take: a check that
// reached the node but ran out of time gets one more, with twice the time
// (a node that answered the handshake is there; it, or this machine, is
// busy).
const ProbeTries = 2

// ProbeRounds is how many timeouts a probe of n nodes takes at most: its
// turns, the second of a node's twice as long as the first.
func ProbeRounds(n int) int {
	return ProbeTries * (ProbeTries + 1) / 2 * max(1, (n+ProbeParallel-1)/ProbeParallel)
}

// Probe asks the installer to contact nodes (de.cmd.installer.probe): can it
// log in, what hardware does the node have, which engine owns it.
//
//	{"v": 1, "nodes": ["10.0.0.1"], "auth": {"password": "..."}, "timeout_ms": 10000}
type Probe struct {
	V         int      `json:"v"`
	Nodes     []string `json:"nodes"`
	Auth      Auth     `json:"auth"`
	TimeoutMS int      `json:"timeout_ms,omitempty"`
	// Resolve names host names each node's own resolver is asked for
	// (the DNS pre-check): {"resolve": ["cf.local", "x-1f2e.cf.local"]}.
	Resolve []string `json:"resolve,omitempty"`
	// Fetch names http URLs each node fetches as its apt would (the
	// engine's address as the nodes use it), at most MaxProbeFetch:
	// {"fetch": ["http://10.0.0.1:8080/healthz"]}.
	Fetch []string `json:"fetch,omitempty"`
	// Unclaim, an engine id, removes the node's owner file when it names
	// that engine (a takeover); the result's Unclaimed says it did.
	Unclaim string `json:"unclaim,omitempty"`
	// Leave, an engine id, removes the engine's state on the node
	// (nodefs.State: markers, claim, agent config) when the node names
	// that engine as its owner, or none: the last of a cluster's delete.
	// The result's Left says it did.
	Leave string `json:"leave,omitempty"`
}

// ProbeReply has one result per node, in the order asked.
//
//	{"v": 1, "nodes": [{"ip": "10.0.0.1", "reachable": true, "hardware": {...}, "owner": "e-1f2a"}]}
type ProbeReply struct {
	V     int           `json:"v"`
	Nodes []ProbeResult `json:"nodes"`
}

// ProbeResult is what the installer found on one node. Error says what went
// wrong and what to do; HostKeyChanged marks the one error that is not a
// network problem.
type ProbeResult struct {
	IP             string       `json:"ip"`
	Reachable      bool         `json:"reachable"`
	Error          string       `json:"error,omitempty"`
	HostKeyChanged bool         `json:"host_key_changed,omitempty"`
	Hardware       NodeHardware `json:"hardware"`
	// Owner is the id of the engine that installed the node, "" if none.
	Owner string `json:"owner,omitempty"`
	// OS is the node's /etc/os-release; Monit the version of its monit,
	// "" when it has none.
	OS    NodeOS `json:"os"`
	Monit string `json:"monit,omitempty"`
	// Names answers Probe.Resolve, in the same order.
	Names []NameLookup `json:"names,omitempty"`
	// Fetched answers Probe.Fetch, in the same order.
	Fetched []FetchResult `json:"fetched,omitempty"`
	// Unclaimed is Probe.Unclaim when the node's claim by it was removed.
	Unclaimed string `json:"unclaimed,omitempty"`
	// Left says Probe.Leave removed the engine's state from the node.
	Left bool `json:"left,omitempty"`
}

// MaxProbeFetch bounds Probe.Fetch: each URL may take a node 4 s.
const MaxProbeFetch = 1

// FetchResult is how a node's fetch of a URL ended: Error is "" when it
// got the URL, else the reason (connection refused, 404, ...).
//
//	{"url": "http://10.0.0.1:8080/healthz", "error": "Could not connect to 10.0.0.1:8080 ..."}
type FetchResult struct {
	URL   string `json:"url"`
	Error string `json:"error,omitempty"`
}

// NodeOS is what a node's /etc/os-release says.
//
//	{"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"}
type NodeOS struct {
	ID         string `json:"id"`
	VersionID  string `json:"version_id"`
	PrettyName string `json:"pretty_name,omitempty"`
}

// NameLookup is one name as a node's resolver answered it: its IPv4
// addresses, none when it did not resolve.
//
//	{"name": "cf.local", "addrs": ["10.0.0.1"]}
type NameLookup struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
}

// StepFile is a file a step puts on its node. Content travels inline;
// LocalPath names a file on the machine running the installer instead,
// which the installer streams (no step the engine plans has one now: the
// nodes fetch large files over HTTP). SHA256 is of the content, hex.
type StepFile struct {
	Path      string `json:"path"`
	Mode      uint32 `json:"mode"`
	Content   []byte `json:"content,omitempty"`
	LocalPath string `json:"local_path,omitempty"`
	SHA256    string `json:"sha256"`
	// Sealed says Content is sealed with the engine's key as it rests in
	// the bus and travels on it (a rendered file may hold a job's secrets);
	// the installer opens it. SHA256 is of the opened content.
	Sealed bool `json:"sealed,omitempty"`
}

// Step is one unit of work on one node, as it waits in the DE_STEPS work
// queue on de.step.<deployment>.<node>. The installer uploads Files, then
// runs Script with bash as root (fed on stdin, never in argv), within
// Timeout. Key names what the step makes true on the node and Hash what it
// makes it into: when the node already records Hash for Key, the step has
// nothing to do and the installer reports it unchanged without running it.
// Attempt is the number of the step's first try from this message: 1, or
// one past the tries the planner has seen when it queues the step again;
// the installer counts on from it when it tries again.
// Steps carry no secrets: the installer logs in with the credentials of the
// stored config (KV DE_CONFIG), and a script that needs a secret names the
// config property in SecretEnv; the installer exports it as DE_SECRET_<NAME>
// (upper case) on the script's stdin, never in argv, a file or a log.
//
//	{"v": 1, "deployment": "d-20261124-1a2b", "id": "10.0.0.1/nats/install", "node": "10.0.0.1",
//	 "component": "nats", "action": "install", "attempt": 1, "key": "nats.install",
//	 "hash": "9f2c...", "script": "apt-get install -y nats-server", "timeout_s": 600}
type Step struct {
	V          int        `json:"v"`
	Deployment string     `json:"deployment"`
	ID         string     `json:"id"`
	Node       string     `json:"node"`
	Component  string     `json:"component"`
	Action     string     `json:"action"`
	Attempt    int        `json:"attempt"`
	Key        string     `json:"key"`
	Hash       string     `json:"hash"`
	Files      []StepFile `json:"files,omitempty"`
	Script     string     `json:"script"`
	SecretEnv  []string   `json:"secret_env,omitempty"`
	TimeoutS   int        `json:"timeout_s"`
	Engine     string     `json:"engine"`
	// Claim makes the step take the node for Engine: the installer fails
	// it without running it when another engine owns the node, and records
	// Engine as the owner before the script runs (nodefs.Owner).
	Claim bool `json:"claim,omitempty"`
	// KeepOutput asks for the last lines of the step's output, stdout and
	// stderr, redacted, in its final event (StepEvent.Output): an exec's
	// result shows them.
	KeepOutput bool `json:"keep_output,omitempty"`
	// KeepStreams, when above 0, asks for stdout and stderr each kept
	// apart, redacted, up to that many bytes each (at most MaxStreamBytes;
	// the end of a longer one, saying how much was cut), in the step's
	// final event (StepEvent.Stdout, .Stderr): an errand's result shows
	// them.
	KeepStreams int `json:"keep_streams,omitempty"`
	// ReadBack, when set, makes the step a read of the file at that path
	// (copy --from): the installer runs no Script, reads the file (at most
	// MaxCopyBytes), checks it against the SHA-256 and size the node
	// computed, keeps it in the bus's copies store, and reports
	// "<sha256> <size>" as the step's output.
	ReadBack string `json:"read_back,omitempty"`
	// Chain are the node's steps that follow this one with nothing between
	// them that needs the engine: the installer runs them after it, in
	// order, in the same SSH session, each reported as its own step. The
	// chain stops at a step that fails; the steps after it are not run
	// and go back to the planner, which decides again.
	Chain []Step `json:"chain,omitempty"`
	// Holds, when set, is a shell command run on the node before the
	// step's marker is read: when it fails, the marker is forgotten and
	// the step runs, whatever its hash. A start step's marker says it
	// started the process once; Holds says whether it still runs (a node
	// rebooted, a process gone under a check that only alerts).
	Holds string `json:"holds,omitempty"`
	// AwaitsBoot marks a step that waits for its node to come back from a
	// reboot: a connection that cannot be made or drops is tried again
	// every few seconds until the step's deadline, not MaxAttempts times.
	AwaitsBoot bool `json:"awaits_boot,omitempty"`
	// Bare marks a script of the engine's own that sets no trap on EXIT,
	// replaces its shell with no command and leaves no process running
	// when it ends: it runs in the step's own shell, after its prelude,
	// where any other script gets a subshell of its own (a fork of the
	// shell on the node for every step).
	Bare bool `json:"bare,omitempty"`
}

// Step states.
const (
	StatePending   = "pending"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateUnchanged = "unchanged"
	StateFailed    = "failed"
	StateSkipped   = "skipped"
	// StateHeld is a step not run because its node is in maintenance: the
	// next deployment after the maintenance ends runs it.
	StateHeld = "held"
)

// StepEvent reports a step's progress on de.evt.deploy.<id>.step.
//
//	{"v": 1, "deployment": "d-1", "id": "10.0.0.1/nats/install", "node": "10.0.0.1", "component": "nats",
//	 "action": "install", "state": "succeeded", "attempt": 1, "started": "...", "finished": "...", "exit_code": 0}
type StepEvent struct {
	V          int        `json:"v"`
	Deployment string     `json:"deployment"`
	ID         string     `json:"id"`
	Node       string     `json:"node"`
	Component  string     `json:"component"`
	Action     string     `json:"action"`
	State      string     `json:"state"`
	Attempt    int        `json:"attempt"`
	Started    *time.Time `json:"started,omitempty"`
	Finished   *time.Time `json:"finished,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Error      string     `json:"error,omitempty"`
	// Final is set when the installer will not try this attempt again.
	Final bool `json:"final,omitempty"`
	// Output is the last lines of the step's output, redacted, in its
	// final event when the step asked for them (Step.KeepOutput).
	Output string `json:"output,omitempty"`
	// Stdout and Stderr are the step's streams, redacted, in its final
	// event when the step asked for them (Step.KeepStreams).
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
}

// MaxStreamBytes bounds each stream a step keeps (Step.KeepStreams).
const MaxStreamBytes = 64 << 10

// LogLine is one line of output on de.evt.log.<id>.<node>.<component>.
// Seq orders the lines of one step attempt.
//
//	{"v": 1, "deployment": "d-1", "node": "10.0.0.1", "component": "nats", "step": "10.0.0.1/nats/install",
//	 "stream": "stdout", "seq": 12, "time": "...", "line": "Setting up nats-server ..."}
type LogLine struct {
	V          int       `json:"v"`
	Deployment string    `json:"deployment"`
	Node       string    `json:"node"`
	Component  string    `json:"component"`
	Step       string    `json:"step,omitempty"`
	Stream     string    `json:"stream"`
	Seq        int64     `json:"seq"`
	Time       time.Time `json:"time"`
	Line       string    `json:"line"`
}

// DeploymentEvent marks a deployment's start and end on
// de.evt.deploy.<id>.started|finished.
//
//	{"v": 1, "id": "d-1", "state": "succeeded", "changed": 3, "time": "..."}
type DeploymentEvent struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	State   string    `json:"state"`
	Changed int       `json:"changed"`
	Time    time.Time `json:"time"`
	Error   string    `json:"error,omitempty"`
}

// Deployment is a deployment as GET /deployment-engine/deployments/{id}
// shows it: its summary, why it failed, and its steps.
type Deployment struct {
	DeploymentSummary
	Error string       `json:"error,omitempty"`
	Steps []StepStatus `json:"steps"`
	// Batches are its rollouts' batches, in order, when it has any.
	Batches []Batch `json:"batches,omitempty"`
}

// StepStatus is one step of a Deployment.
type StepStatus struct {
	ID        string     `json:"id"`
	Node      string     `json:"node"`
	Component string     `json:"component"`
	Action    string     `json:"action"`
	State     string     `json:"state"`
	Attempt   int        `json:"attempt"`
	Started   *time.Time `json:"started"`
	Finished  *time.Time `json:"finished"`
	ExitCode  *int       `json:"exit_code"`
	Error     string     `json:"error"`
	After     []string   `json:"after,omitempty"`
	// Output is the last lines of its output, redacted, when the step
	// keeps them (an exec's).
	Output string `json:"output,omitempty"`
	// Stdout and Stderr are its streams, redacted, each up to
	// MaxStreamBytes, when the step keeps them (an errand's run).
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
}

// Deployment states.
const (
	DeployPending   = "pending"
	DeployRunning   = "running"
	DeploySucceeded = "succeeded"
	DeployFailed    = "failed"
)

// StepBeat says an installer still works on a step, on de.beat.step.<id>,
// every few seconds while it runs (plain NATS, not stored).
//
//	{"v": 1, "deployment": "d-1", "id": "10.0.0.1/nats/install", "node": "10.0.0.1", "attempt": 2}
type StepBeat struct {
	V          int    `json:"v"`
	Deployment string `json:"deployment"`
	ID         string `json:"id"`
	Node       string `json:"node"`
	Attempt    int    `json:"attempt"`
}

// StepCancel tells every installer to stop the steps of a deployment that
// was cancelled or given up (de.cmd.installer.cancel, plain publish): their
// process groups are killed on the nodes.
//
//	{"v": 1, "deployment": "d-1", "reason": "cancelled by request"}
type StepCancel struct {
	V          int    `json:"v"`
	Deployment string `json:"deployment"`
	Reason     string `json:"reason,omitempty"`
}

// DeployCancel asks the planner to cancel a running deployment
// (de.cmd.deploy.cancel): 202 with the deployment as it ended, 404 for an
// unknown id, 409 when it has already ended.
//
//	{"v": 1, "id": "d-20261124-223905-1a2b", "reason": "cancelled by request"}
type DeployCancel struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// Takeover asks the planner to clear the claim another engine left on the
// config's nodes (de.cmd.deploy.takeover), so that this engine's next
// deploy claims them: only a node whose owner is From is changed. Nodes
// defaults to every node of the stored config; others are refused. For an
// engine that no longer runs: one that still does fails its next claim.
//
//	{"v": 1, "from": "e-013048c3775d", "nodes": ["10.0.0.1"]}
type Takeover struct {
	V     int      `json:"v"`
	From  string   `json:"from"`
	Nodes []string `json:"nodes,omitempty"`
}

// TakeoverReply says, node by node, whose the node was and whether its
// claim was cleared.
//
//	{"v": 1, "from": "e-013048c3775d", "cleared": 1, "nodes": [{"ip": "10.0.0.1", "owner": "e-013048c3775d", "cleared": true}]}
type TakeoverReply struct {
	V       int              `json:"v"`
	From    string           `json:"from"`
	Cleared int              `json:"cleared"`
	Nodes   []TakeoverResult `json:"nodes"`
}

// TakeoverResult is one node of a takeover: Owner is the engine the node
// named before (none: it was unclaimed), Error why it was not reached.
type TakeoverResult struct {
	IP      string `json:"ip"`
	Owner   string `json:"owner,omitempty"`
	Cleared bool   `json:"cleared"`
	Error   string `json:"error,omitempty"`
}

// ValidEngineID tells whether id has the form of an engine's id: "e-"
// and 1 to 64 lowercase hex digits or letters, nothing a shell would read.
func ValidEngineID(id string) bool {
	rest, ok := strings.CutPrefix(id, "e-")
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

// Final tells whether a deployment's or a step's state is an end state:
// nothing will change it any more.
func Final(state string) bool {
	switch state {
	case StateSucceeded, StateUnchanged, StateFailed, StateSkipped, StateHeld:
		return true
	}
	return false
}

// DeployStarted answers a deployment's start (de.cmd.deploy.start, scale).
//
//	{"id": "d-20261124-223905-1a2b"}
type DeployStarted struct {
	ID string `json:"id"`
}

// DeployGet asks for one deployment (de.cmd.deploy.get, report).
//
//	{"id": "d-20261124-223905-1a2b"}
type DeployGet struct {
	ID string `json:"id"`
	// Page, when set, asks for a DeploymentPage rather than the
	// deployment with every step.
	Page *StepQuery `json:"page,omitempty"`
}

// DeploymentSummary is one line of the deployment list (de.cmd.deploy.list)
// and the head of a Deployment.
type DeploymentSummary struct {
	ID       string     `json:"id"`
	State    string     `json:"state"`
	Changed  int        `json:"changed"`
	Created  time.Time  `json:"created"`
	Finished *time.Time `json:"finished,omitempty"`
	// Kind is what started it when not a deploy: restart, revert,
	// rollback, exec, copy, errand, maintenance.
	Kind string `json:"kind,omitempty"`
	// Schedule names the schedule whose run started it, if one did.
	Schedule string `json:"schedule,omitempty"`
	// Held are the nodes in maintenance whose steps it held, and why.
	Held []HeldNode `json:"held,omitempty"`
}

// HeldNode is a node whose steps a deployment held, and why (its
// maintenance, in words).
//
//	{"ip": "10.0.0.2", "reason": "maintenance: disk replaced (by alice, since 2026-11-24T10:00:00Z)"}
type HeldNode struct {
	IP     string `json:"ip"`
	Reason string `json:"reason"`
}

// ScaleItem adds one instance: a component on a new IP (de.cmd.deploy.scale
// takes one or a list).
//
//	{"Comp": "web", "Ip": "10.0.0.7"}
type ScaleItem struct {
	Comp string `json:"Comp"`
	Ip   string `json:"Ip"` //nolint:revive // the manual's field name
}
