// Package subject is the only code that builds or parses the engine's NATS
// subjects. Tokens never hold a dot: an IP 10.0.0.1 becomes 10-0-0-1.
package subject

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Subjects that match whole families, for subscriptions and stream configs.
const (
	AllSteps  = "de.step.>"
	AllEvents = "de.evt.>"
)

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidToken tells whether s may stand as one subject token.
func ValidToken(s string) bool { return tokenRe.MatchString(s) }

// IPToken turns an IP into a subject token: dots become dashes.
func IPToken(ip string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return "", fmt.Errorf("subject: %q is not an IPv4 address", ip)
	}
	return strings.ReplaceAll(a.String(), ".", "-"), nil
}

// TokenIP turns a token made by IPToken back into an IP.
func TokenIP(tok string) (string, error) {
	ip := strings.ReplaceAll(tok, "-", ".")
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return "", fmt.Errorf("subject: token %q is not an IP token", tok)
	}
	return a.String(), nil
}

func mustIP(ip string) string {
	t, err := IPToken(ip)
	if err != nil {
		// Callers pass IPs that passed config validation; a bad one here
		// is a programming error, so make it visible but keep it routable.
		return "invalid"
	}
	return t
}

func check(kind, tok string) string {
	if !ValidToken(tok) {
		return "invalid"
	}
	return tok
}

// cmd is the request/reply subject of a service's verb: de.cmd.<service>.<verb>.
// Every command has its own function below; nothing else builds one.
func cmd(service, verb string) string { return cmdPrefix + service + "." + verb }

const cmdPrefix = "de.cmd."

// Commands of the planner.
func ConfigPut() string      { return cmd("config", "put") }
func ConfigGet() string      { return cmd("config", "get") }
func ConfigPrecheck() string { return cmd("config", "precheck") }
func ConfigSchema() string   { return cmd("config", "schema") }
func DeployStart() string    { return cmd("deploy", "start") }
func DeployGet() string      { return cmd("deploy", "get") }
func DeployReport() string   { return cmd("deploy", "report") }
func DeployReapply() string  { return cmd("deploy", "reapply") }
func DeployList() string     { return cmd("deploy", "list") }
func DeployScale() string    { return cmd("deploy", "scale") }
func DeployCancel() string   { return cmd("deploy", "cancel") }
func DeployPlan() string     { return cmd("deploy", "plan") }
func DeployRollback() string { return cmd("deploy", "rollback") }
func DeployRestart() string  { return cmd("deploy", "restart") }
func DeployTakeover() string { return cmd("deploy", "takeover") }
func DeployExec() string     { return cmd("deploy", "exec") }
func DeployCopy() string     { return cmd("deploy", "copy") }
func DeployPatch() string    { return cmd("deploy", "patch") }
func DeployErrand() string   { return cmd("deploy", "errand") }
func DeployErrands() string  { return cmd("deploy", "errands") }
func DiskList() string       { return cmd("disk", "list") }
func DiskDelete() string     { return cmd("disk", "delete") }
func ConfigHistory() string  { return cmd("config", "history") }

// Commands of the installer. InstallerCancel is a plain publish every
// installer hears.
func InstallerProbe() string  { return cmd("installer", "probe") }
func InstallerExec() string   { return cmd("installer", "exec") }
func InstallerCancel() string { return cmd("installer", "cancel") }

// Commands of the monitor.
func MonitorStatus() string    { return cmd("monitor", "status") }
func MonitorHardware() string  { return cmd("monitor", "hardware") }
func MonitorControl() string   { return cmd("monitor", "control") }
func MonitorTargets() string   { return cmd("monitor", "targets") }
func MonitorInstances() string { return cmd("monitor", "instances") }

// Commands of auto-heal.
func HealGet() string { return cmd("heal", "get") }
func HealSet() string { return cmd("heal", "set") }

// Commands of node maintenance (the planner's).
func MaintenanceSet() string  { return cmd("maintenance", "set") }
func MaintenanceGet() string  { return cmd("maintenance", "get") }
func MaintenanceList() string { return cmd("maintenance", "list") }

// Commands of schedules (the planner's).
func ScheduleAdd() string    { return cmd("schedule", "add") }
func ScheduleGet() string    { return cmd("schedule", "get") }
func ScheduleList() string   { return cmd("schedule", "list") }
func ScheduleDelete() string { return cmd("schedule", "delete") }

// Commands of the cloud config and of manifests (the planner's).
func CloudConfigGet() string     { return cmd("cloudconfig", "get") }
func CloudConfigPut() string     { return cmd("cloudconfig", "put") }
func ManifestDeploy() string     { return cmd("manifest", "deploy") }
func ManifestVariables() string  { return cmd("manifest", "variables") }
func ManifestRegenerate() string { return cmd("manifest", "regenerate") }

// Commands of problems and their fixes (the planner's).
func ProblemsList() string    { return cmd("problems", "list") }
func ProblemsResolve() string { return cmd("problems", "resolve") }

// CertificateRotate is the command that issues the certificate name
// (contract.CertAPI, contract.CertAgentsListener) again, answered by the
// process holding it: de.cmd.certificates.rotate-<name>.
func CertificateRotate(name string) string {
	return cmd("certificates", "rotate-"+check("certificate", name))
}

// Commands of the log store.
func LogsList() string { return cmd("logs", "list") }
func LogsRead() string { return cmd("logs", "read") }

// EndpointName turns a command subject into a micro endpoint name:
// de.cmd.config.put → config-put.
func EndpointName(subj string) string {
	return strings.ReplaceAll(strings.TrimPrefix(subj, cmdPrefix), ".", "-")
}

// Step is the work-queue subject of a deployment's steps on one node.
func Step(deployment, ip string) string {
	return "de.step." + check("deployment", deployment) + "." + mustIP(ip)
}

// DeployEventKind is what happened to a deployment.
type DeployEventKind string

const (
	DeployStarted  DeployEventKind = "started"
	DeployStep     DeployEventKind = "step"
	DeployFinished DeployEventKind = "finished"
	DeployBatch    DeployEventKind = "batch"
)

// DeployEvent is de.evt.deploy.<id>.<kind>.
func DeployEvent(id string, kind DeployEventKind) string {
	return "de.evt.deploy." + check("deployment", id) + "." + string(kind)
}

// Every deployment's start and end, and every component going down.
const (
	AllDeployStarted  = "de.evt.deploy.*." + string(DeployStarted)
	AllDeployFinished = "de.evt.deploy.*." + string(DeployFinished)
	AllComponentDown  = "de.evt.component.*.*.down"
	AllComponents     = "de.evt.component.>"
	// AllDeploySteps matches every deployment's step events.
	AllDeploySteps = "de.evt.deploy.*." + string(DeployStep)
)

// DeployEvents matches every event of one deployment.
func DeployEvents(id string) string { return "de.evt.deploy." + check("deployment", id) + ".>" }

// Log is de.evt.log.<id>.<node>.<component>: one line of output.
func Log(id, ip, component string) string {
	return "de.evt.log." + check("deployment", id) + "." + mustIP(ip) + "." + check("component", component)
}

// Logs matches every log line of one deployment.
func Logs(id string) string { return "de.evt.log." + check("deployment", id) + ".>" }

// ComponentEvent is de.evt.component.<name>.<ip>.up|down.
func ComponentEvent(name, ip string, up bool) string {
	s := "down"
	if up {
		s = "up"
	}
	return "de.evt.component." + check("component", name) + "." + mustIP(ip) + "." + s
}

// Node is an agent's subject: de.node.<ip>.<verb>.
func Node(ip, verb string) string { return "de.node." + mustIP(ip) + "." + check("verb", verb) }

// NodeAll is every subject one node's agent may use: its permission boundary.
func NodeAll(ip string) string { return "de.node." + mustIP(ip) + ".>" }

// LogSubject is a parsed de.evt.log subject.
type LogSubject struct{ Deployment, IP, Component string }

// ParseLog parses a subject built by Log.
func ParseLog(s string) (LogSubject, error) {
	p := strings.Split(s, ".")
	if len(p) != 6 || p[0] != "de" || p[1] != "evt" || p[2] != "log" || !ValidToken(p[3]) || !ValidToken(p[5]) {
		return LogSubject{}, fmt.Errorf("subject: %q is not a log subject", s)
	}
	ip, err := TokenIP(p[4])
	if err != nil {
		return LogSubject{}, err
	}
	return LogSubject{Deployment: p[3], IP: ip, Component: p[5]}, nil
}

// StepSubject is a parsed de.step subject.
type StepSubject struct{ Deployment, IP string }

// ParseStep parses a subject built by Step.
func ParseStep(s string) (StepSubject, error) {
	p := strings.Split(s, ".")
	if len(p) != 4 || p[0] != "de" || p[1] != "step" || !ValidToken(p[2]) {
		return StepSubject{}, fmt.Errorf("subject: %q is not a step subject", s)
	}
	ip, err := TokenIP(p[3])
	if err != nil {
		return StepSubject{}, err
	}
	return StepSubject{Deployment: p[2], IP: ip}, nil
}

// NodeSubject is a parsed de.node subject.
type NodeSubject struct{ IP, Verb string }

// ParseNode parses a subject built by Node.
func ParseNode(s string) (NodeSubject, error) {
	p := strings.Split(s, ".")
	if len(p) != 4 || p[0] != "de" || p[1] != "node" || !ValidToken(p[3]) {
		return NodeSubject{}, fmt.Errorf("subject: %q is not a node subject", s)
	}
	ip, err := TokenIP(p[2])
	if err != nil {
		return NodeSubject{}, err
	}
	return NodeSubject{IP: ip, Verb: p[3]}, nil
}

// ComponentSubject is a parsed de.evt.component subject.
type ComponentSubject struct {
	Component, IP string
	Up            bool
}

// ParseComponent parses a subject built by ComponentEvent.
func ParseComponent(s string) (ComponentSubject, error) {
	p := strings.Split(s, ".")
	if len(p) != 6 || p[0] != "de" || p[1] != "evt" || p[2] != "component" || (p[5] != "up" && p[5] != "down") || !ValidToken(p[3]) {
		return ComponentSubject{}, fmt.Errorf("subject: %q is not a component subject", s)
	}
	ip, err := TokenIP(p[4])
	if err != nil {
		return ComponentSubject{}, err
	}
	return ComponentSubject{Component: p[3], IP: ip, Up: p[5] == "up"}, nil
}

// Agent verbs: what a node agent publishes and answers on de.node.<ip>.<verb>.
const (
	// VerbHeartbeat carries the agent's periodic report.
	VerbHeartbeat = "heartbeat"
	// VerbControl is the request the agent answers: restart or stop.
	VerbControl = "control"
	// VerbHello is the request the agent answers with its version and
	// whether it runs commands for the installer.
	VerbHello = "hello"
	// VerbExec is the installer's signed request to run a command on the
	// node; VerbExecClose closes one, as a dropped SSH session would.
	VerbExec      = "exec"
	VerbExecClose = "exec-close"
	// VerbTrust is the engine's signed request that the agent trust
	// another CA bundle for the engine's NATS: a rotation of the agents' CA.
	VerbTrust = "trust"
	// VerbExecOut and VerbLog start longer subjects, built by ExecOutput
	// and NodeLog.
	VerbExecOut = "exec-out"
	VerbLog     = "log"
)

// NodeVerbs are every verb of de.node.<ip>.<verb>...: the engine's
// protocol with its agents, which the AsyncAPI document describes.
func NodeVerbs() []string {
	return []string{VerbHeartbeat, VerbLog, VerbControl, VerbHello, VerbExec, VerbExecOut, VerbExecClose, VerbTrust}
}

// ExecOutput is de.node.<ip>.exec-out.<run>: where the agent streams the
// output and exit status of one command it runs for the installer. It is in
// the agent's own namespace, the only place its user may publish.
func ExecOutput(ip, run string) string {
	return "de.node." + mustIP(ip) + "." + VerbExecOut + "." + check("run", run)
}

// AllHeartbeats matches every agent's heartbeat.
const AllHeartbeats = "de.node.*." + VerbHeartbeat

// NodeLog is de.node.<ip>.log.<component>: a runtime log line the agent read
// from one of the component's log files.
func NodeLog(ip, component string) string {
	return "de.node." + mustIP(ip) + "." + VerbLog + "." + check("component", component)
}

// AllNodeLogs matches every runtime log line of every node.
const AllNodeLogs = "de.node.*.log.*"

// NodeLogsOf matches the runtime log lines of one component on every node.
func NodeLogsOf(component string) string {
	return "de.node.*.log." + check("component", component)
}

// NodeLogSubject is a parsed de.node.<ip>.log.<component> subject.
type NodeLogSubject struct{ IP, Component string }

// ParseNodeLog parses a subject built by NodeLog.
func ParseNodeLog(s string) (NodeLogSubject, error) {
	p := strings.Split(s, ".")
	if len(p) != 5 || p[0] != "de" || p[1] != "node" || p[3] != "log" || !ValidToken(p[4]) {
		return NodeLogSubject{}, fmt.Errorf("subject: %q is not a node log subject", s)
	}
	ip, err := TokenIP(p[2])
	if err != nil {
		return NodeLogSubject{}, err
	}
	return NodeLogSubject{IP: ip, Component: p[4]}, nil
}

// EngineEvent is de.evt.engine.<kind>: an operation of the engine itself
// (config accepted, restart, stop), the source of the operations log.
func EngineEvent(kind string) string { return "de.evt.engine." + check("kind", kind) }

// Audit is de.evt.audit.<action>: one change to the cluster.
func Audit(action string) string { return "de.evt.audit." + check("action", action) }

// AllAudit matches every audit entry.
const AllAudit = "de.evt.audit.>"

// HealEvent is de.evt.heal.<kind>: what auto-heal did or decided.
func HealEvent(kind string) string { return "de.evt.heal." + check("kind", kind) }

// AllHeal matches every heal event.
const AllHeal = "de.evt.heal.>"

// StepBeat is de.beat.step.<deployment>: an installer's sign of life while
// it works on one of the deployment's steps. Plain NATS, never stored: a
// lost beat only makes the scheduler look at the step sooner.
func StepBeat(deployment string) string { return "de.beat.step." + check("deployment", deployment) }

// AllStepBeats matches the beats of every deployment's steps.
const AllStepBeats = "de.beat.step.*"

// Steps matches every node's steps of one deployment in the work queue.
func Steps(deployment string) string { return "de.step." + check("deployment", deployment) + ".*" }

// Family is what an event subject de.evt.<family>.... is about.
type Family string

const (
	FamilyDeploy    Family = "deploy"
	FamilyLog       Family = "log"
	FamilyComponent Family = "component"
	FamilyEngine    Family = "engine"
	FamilyAudit     Family = "audit"
	FamilyHeal      Family = "heal"
)

// Families are every family of event subjects, in the order the README
// lists them.
func Families() []Family {
	return []Family{FamilyDeploy, FamilyLog, FamilyComponent, FamilyAudit, FamilyHeal, FamilyEngine}
}

// Event is a parsed de.evt subject: its family, and its kind (the last
// token: a deployment's started, step or finished; a component's up or
// down; an engine, audit or heal event's kind; a log line's component).
type Event struct {
	Family Family
	Kind   string
}

// eventTokens is how many tokens each family's subjects have.
var eventTokens = map[Family]int{
	FamilyDeploy: 5, FamilyLog: 6, FamilyComponent: 6,
	FamilyEngine: 4, FamilyAudit: 4, FamilyHeal: 4,
}

// ParseEvent reads an event subject built by this package.
func ParseEvent(s string) (Event, error) {
	p := strings.Split(s, ".")
	if len(p) < 4 || p[0] != "de" || p[1] != "evt" {
		return Event{}, fmt.Errorf("subject: %q is not an event subject", s)
	}
	f := Family(p[2])
	n, ok := eventTokens[f]
	if !ok || len(p) != n {
		return Event{}, fmt.Errorf("subject: %q is not an event subject", s)
	}
	for _, t := range p[3:] {
		if !ValidToken(t) {
			return Event{}, fmt.Errorf("subject: %q is not an event subject", s)
		}
	}
	ev := Event{Family: f, Kind: p[n-1]}
	switch f {
	case FamilyDeploy:
		switch DeployEventKind(ev.Kind) {
		case DeployStarted, DeployStep, DeployFinished, DeployBatch:
		default:
			return Event{}, fmt.Errorf("subject: %q is not a deployment event", s)
		}
	case FamilyComponent:
		if _, err := ParseComponent(s); err != nil {
			return Event{}, err
		}
	case FamilyLog:
		if _, err := ParseLog(s); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
}

// A named cluster's events, as the global account sees them: its
// de.evt.<...> is de.cluster.<name>.evt.<...> there, so that one
// subscription follows one cluster (the default's are de.evt.>).
const AllClusterEvents = "de.cluster.*.evt.>"

// ClusterEvents matches every event of named cluster name, as the global
// account sees them.
func ClusterEvents(name string) string { return "de.cluster." + check("cluster", name) + ".evt.>" }

// Commands of a named cluster's planner that take the cluster off its
// nodes: the delete deployment, then the engine's state on its nodes.
func ClusterDelete() string { return cmd("cluster", "delete") }
func ClusterLeave() string  { return cmd("cluster", "leave") }
